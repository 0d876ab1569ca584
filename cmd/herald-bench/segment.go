package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"time"

	"github.com/herald-mail/herald/models"
)

// runBenchSegment fills a new database with n subscribers on one list,
// with a city and an age attribute each and opens by people (and some by
// machines) for a tenth of them, then times a segment's live count with
// three conditions, one on engagement, and materialising a campaign from
// segments and from lists of the same people, per recipient.
func runBenchSegment(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("bench segment", flag.ContinueOnError)
	fs.SetOutput(stdout)
	n := fs.Int("n", 1_000_000, "subscribers to generate")
	database := fs.String("database-url", "", "postgres:// URL to run on (default: a new SQLite file in a temporary folder)")
	runs := fs.Int("runs", 10, "times the count is run")
	rounds := fs.Int("rounds", 3, "times each audience is materialised, in turn")
	keep := fs.String("keep", "", "write the SQLite database to this file and keep it (to study it afterwards)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the materialisations to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *n < 100 {
		return errors.New("bench segment: -n must be at least 100")
	}
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "herald-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	dsn := filepath.Join(dir, "bench.db")
	if *keep != "" {
		dsn = *keep
	}
	if *database != "" {
		var drop func()
		if dsn, drop, err = benchSchema(ctx, *database); err != nil {
			return err
		}
		defer drop()
	}
	store, err := models.Open(ctx, dsn)
	if err != nil {
		return err
	}
	defer store.Close()
	if _, err := store.Migrate(ctx); err != nil {
		return err
	}
	start := time.Now()
	list, err := segmentSeed(ctx, store, *n)
	if err != nil {
		return err
	}
	// A second list with the people the 3-condition segment matches (one
	// in twenty: in Paris and opened 5 days ago), to compare it with.
	tw := &models.List{Name: "Paris openers", Optin: models.OptinSingle, Visibility: models.ListPublic}
	if err := store.CreateList(ctx, tw); err != nil {
		return err
	}
	if err := store.DB().WithContext(ctx).Exec(`INSERT INTO subscriptions (subscriber_id, list_id, status, created_at, updated_at)
		SELECT id, ?, 'confirmed', created_at, created_at FROM subscribers WHERE id % 20 = 0`, tw.ID).Error; err != nil {
		return err
	}
	twentieth := tw.ID
	fmt.Fprintf(stdout, "%s: %d subscribers, with opens, ready in %.1fs\n", store.Dialect(), *n, time.Since(start).Seconds())
	if store.Dialect() == models.Postgres {
		if err := store.DB().Exec("ANALYZE").Error; err != nil {
			return err
		}
	}

	three := models.Conditions{Groups: []models.ConditionGroup{{Conditions: []models.Condition{
		{Field: models.FieldList, Op: "in", ListID: list},
		{Field: models.FieldAttribute, Key: "city", Op: "equals", Value: "Paris"},
		{Field: models.FieldOpened, Op: "in_last_days", Days: 30},
	}}}}
	times, got, err := benchTimes(*runs, func() (int, error) {
		c, err := store.CountSegment(ctx, three)
		return int(c), err
	})
	if err != nil {
		return fmt.Errorf("bench segment: count: %w", err)
	}
	fmt.Fprintf(stdout, "segment live count, 3 conditions (on the list, city = Paris, opened by a person in 30 days), %d runs: median %.1f ms, max %.1f ms (%d people)\n",
		*runs, benchMS(times[len(times)/2]), benchMS(times[len(times)-1]), got)

	// Materialisation per recipient: the list alone (its indexed path);
	// two segments of the same people, one through a list condition and
	// one through two attribute conditions (the segment path); and the
	// three-condition segment, a twentieth of them. Each is materialised
	// rounds times, in turn, into a deliveries table emptied after each
	// run, so that none inserts into a larger table than the others.
	everyone := models.Conditions{Groups: []models.ConditionGroup{{Conditions: []models.Condition{
		{Field: models.FieldAttribute, Key: "city", Op: "is_set"},
		{Field: models.FieldAttribute, Key: "age", Op: "less_than", Value: "1000"},
	}}}}
	onList := models.Conditions{Groups: []models.ConditionGroup{{Conditions: []models.Condition{
		{Field: models.FieldList, Op: "in", ListID: list},
	}}}}
	auds := []struct {
		name string
		a    models.Audience
		cpu  []float64 // µs per recipient, a run each
		n    int64
	}{
		{name: "the list", a: models.Audience{Lists: []int64{list}}},
		{name: "a segment of the list (1 list condition)"},
		{name: "a segment of everyone (2 attribute conditions)"},
		{name: "the 3-condition segment"},
		{name: "a list of its twentieth", a: models.Audience{Lists: []int64{twentieth}}},
	}
	for i, c := range []models.Conditions{onList, everyone, three} {
		seg := &models.Segment{Name: auds[i+1].name, Conditions: c}
		if err := store.CreateSegment(ctx, seg); err != nil {
			return err
		}
		auds[i+1].a = models.Audience{Segments: []int64{seg.ID}}
	}
	if *cpuProfile != "" {
		pf, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer pf.Close()
		if err := pprof.StartCPUProfile(pf); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	for r := range *rounds {
		// Each round starts with the next audience: a run costs a few per
		// cent more or less by its place in the round.
		for k := range auds {
			m := &auds[(r+k)%len(auds)]
			c := &models.Campaign{Name: fmt.Sprintf("Bench %s %d", m.name, r), FromEmail: "news@example.com"}
			if err := store.CreateCampaign(ctx, c, nil); err != nil {
				return err
			}
			if err := store.SetCampaignAudience(ctx, c.ID, m.a); err != nil {
				return err
			}
			if err := store.StartCampaign(ctx, c.ID); err != nil {
				return err
			}
			cpu0, server0 := benchCPU(), segmentServerCPU(ctx, store)
			for done := false; !done; {
				if done, err = store.MaterializeCampaign(ctx, c.ID, 5000); err != nil {
					return err
				}
			}
			cpu := benchCPU() - cpu0 + segmentServerCPU(ctx, store) - server0
			p, err := store.CampaignProgress(ctx, c.ID)
			if err != nil {
				return err
			}
			if m.n = p.Total(); m.n > 0 {
				m.cpu = append(m.cpu, float64(cpu.Nanoseconds())/float64(m.n)/1000)
			}
			// Empty the table, and leave none of the cleaning up to the
			// next run: SQLite checkpoints its log at a commit, and
			// PostgreSQL's scans prune dead rows.
			db := store.DB().WithContext(ctx)
			if err := db.Exec("DELETE FROM deliveries WHERE campaign_id = ?", c.ID).Error; err != nil {
				return err
			}
			clean := "PRAGMA wal_checkpoint(TRUNCATE)"
			if store.Dialect() == models.Postgres {
				clean = "VACUUM deliveries"
			}
			if err := db.Exec(clean).Error; err != nil {
				return err
			}
		}
	}
	fmt.Fprintf(stdout, "materialise, CPU µs per recipient (process and database server), %d rounds in turn: median (min–max)\n", *rounds)
	median := func(v []float64) float64 {
		if len(v) == 0 {
			return 0
		}
		v = slices.Clone(v)
		slices.Sort(v)
		return v[len(v)/2]
	}
	for _, m := range auds {
		lo, hi := 0.0, 0.0
		if len(m.cpu) > 0 {
			lo, hi = slices.Min(m.cpu), slices.Max(m.cpu)
		}
		fmt.Fprintf(stdout, "  from %-48s %8d recipients: %6.2f µs (%.2f–%.2f)\n", m.name+":", m.n, median(m.cpu), lo, hi)
	}
	if l := median(auds[0].cpu); l > 0 {
		fmt.Fprintf(stdout, "  per recipient against a list of the same people: all of them by a list condition %.2f×, by attribute conditions %.2f×; a twentieth of them by 3 conditions %.2f× (%.2f× the whole list)\n",
			median(auds[1].cpu)/l, median(auds[2].cpu)/l, median(auds[3].cpu)/median(auds[4].cpu), median(auds[3].cpu)/l)
	}
	return nil
}

// segmentSeed writes n subscribers confirmed on a new list, in SQL: ten
// cities in turn and ages 18 to 97; opens by people 5 days ago for one in
// twenty, 50 days ago for another one in twenty, and by a machine for one
// in thirty. It returns the list's id.
func segmentSeed(ctx context.Context, store *models.Store, n int) (int64, error) {
	l := &models.List{Name: "Newsletter", Optin: models.OptinSingle, Visibility: models.ListPublic}
	if err := store.CreateList(ctx, l); err != nil {
		return 0, err
	}
	db := store.DB().WithContext(ctx)
	now := time.Now().UTC()
	const chunk = 100_000
	for lo := 0; lo < n; lo += chunk {
		err := db.Exec(`WITH RECURSIVE g(i) AS (SELECT CAST(? AS integer) UNION ALL SELECT i + 1 FROM g WHERE i < CAST(? AS integer))
			INSERT INTO subscribers (email, name, attributes, status, created_at, updated_at)
			SELECT 'user' || i || '@example' || (i % 50) || '.com', 'User ' || i,
				'{"city":"' || (CASE i % 10 WHEN 0 THEN 'Paris' WHEN 1 THEN 'Lyon' WHEN 2 THEN 'Berlin' WHEN 3 THEN 'Oslo' WHEN 4 THEN 'Madrid'
					WHEN 5 THEN 'Rome' WHEN 6 THEN 'Lisbon' WHEN 7 THEN 'Vienna' WHEN 8 THEN 'Prague' ELSE 'Dublin' END) ||
				'","age":' || (18 + i % 80) || '}', 'active', ?, ?
			FROM g`, lo+1, min(lo+chunk, n), now, now).Error
		if err != nil {
			return 0, fmt.Errorf("seed subscribers: %w", err)
		}
	}
	steps := []struct {
		q    string
		args []any
	}{
		{`INSERT INTO subscriptions (subscriber_id, list_id, status, created_at, updated_at) SELECT id, ?, 'confirmed', ?, ? FROM subscribers`,
			[]any{l.ID, now, now}},
		{`INSERT INTO events (delivery_id, subscriber_id, kind, machine, created_at) SELECT id, id, 'open', FALSE, ? FROM subscribers WHERE id % 20 = 0`,
			[]any{now.Add(-5 * 24 * time.Hour)}},
		{`INSERT INTO events (delivery_id, subscriber_id, kind, machine, created_at) SELECT id, id, 'open', FALSE, ? FROM subscribers WHERE id % 20 = 10`,
			[]any{now.Add(-50 * 24 * time.Hour)}},
		{`INSERT INTO events (delivery_id, subscriber_id, kind, machine, created_at) SELECT id, id, 'open', TRUE, ? FROM subscribers WHERE id % 30 = 0`,
			[]any{now.Add(-24 * time.Hour)}},
	}
	for _, st := range steps {
		if err := db.Exec(st.q, st.args...).Error; err != nil {
			return 0, fmt.Errorf("seed: %w", err)
		}
	}
	return l.ID, nil
}

// segmentServerCPU is the PostgreSQL server CPU of the run's sessions
// (zero on SQLite, where the work is the process's own), so that the CPU
// per recipient counts the database's work on both.
func segmentServerCPU(ctx context.Context, store *models.Store) time.Duration {
	if store.Dialect() != models.Postgres {
		return 0
	}
	d, err := benchServerCPU(ctx, store)
	if err != nil {
		return 0
	}
	return d
}
