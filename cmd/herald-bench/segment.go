package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/herald-mail/herald/models"
)

// runBenchSegment fills a new database with n subscribers on one list,
// with a city and an age attribute each and opens by people (and some by
// machines) for a tenth of them, then times a segment's live count with
// three conditions, one on engagement, and materialising a campaign from a
// segment and from the list, per recipient.
func runBenchSegment(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("bench segment", flag.ContinueOnError)
	fs.SetOutput(stdout)
	n := fs.Int("n", 1_000_000, "subscribers to generate")
	database := fs.String("database-url", "", "postgres:// URL to run on (default: a new SQLite file in a temporary folder)")
	runs := fs.Int("runs", 10, "times the count is run")
	keep := fs.String("keep", "", "write the SQLite database to this file and keep it (to study it afterwards)")
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

	// Materialisation per recipient: the list alone (its indexed path),
	// a segment of everyone on it with two attribute conditions (the
	// segment path, same recipients), and the three-condition segment.
	everyone := models.Conditions{Groups: []models.ConditionGroup{{Conditions: []models.Condition{
		{Field: models.FieldAttribute, Key: "city", Op: "is_set"},
		{Field: models.FieldAttribute, Key: "age", Op: "less_than", Value: "1000"},
	}}}}
	for _, m := range []struct {
		name string
		a    func() (models.Audience, error)
	}{
		{"the list", func() (models.Audience, error) { return models.Audience{Lists: []int64{list}}, nil }},
		{"a segment of everyone (2 attribute conditions)", func() (models.Audience, error) {
			seg := &models.Segment{Name: "Everyone", Conditions: everyone}
			return models.Audience{Segments: []int64{seg.ID}}, store.CreateSegment(ctx, seg)
		}},
		{"the 3-condition segment", func() (models.Audience, error) {
			seg := &models.Segment{Name: "Paris openers", Conditions: three}
			return models.Audience{Segments: []int64{seg.ID}}, store.CreateSegment(ctx, seg)
		}},
	} {
		a, err := m.a()
		if err != nil {
			return err
		}
		c := &models.Campaign{Name: "Bench " + m.name, FromEmail: "news@example.com"}
		if err := store.CreateCampaign(ctx, c, nil); err != nil {
			return err
		}
		if err := store.SetCampaignAudience(ctx, c.ID, a); err != nil {
			return err
		}
		if err := store.StartCampaign(ctx, c.ID); err != nil {
			return err
		}
		t, cpu0, server0 := time.Now(), benchCPU(), segmentServerCPU(ctx, store)
		for done := false; !done; {
			if done, err = store.MaterializeCampaign(ctx, c.ID, 5000); err != nil {
				return err
			}
		}
		el, cpu := time.Since(t), benchCPU()-cpu0+segmentServerCPU(ctx, store)-server0
		p, err := store.CampaignProgress(ctx, c.ID)
		if err != nil {
			return err
		}
		per, perCPU := 0.0, 0.0
		if p.Total() > 0 {
			per = float64(el.Nanoseconds()) / float64(p.Total()) / 1000
			perCPU = float64(cpu.Nanoseconds()) / float64(p.Total()) / 1000
		}
		fmt.Fprintf(stdout, "materialise from %-48s %8d recipients in %6.2fs: %.2f µs per recipient, %.2f µs CPU\n",
			m.name+":", p.Total(), el.Seconds(), per, perCPU)
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
