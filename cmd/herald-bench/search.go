package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/herald-mail/herald/models"
)

// runBenchSearch fills a new database with generated subscribers through
// the CSV import and times the subscribers page's contains-searches and
// result counts on it: SQLite by default, PostgreSQL with -database-url (in a
// schema of its own, dropped afterwards).
func runBenchSearch(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("bench search", flag.ContinueOnError)
	fs.SetOutput(stdout)
	n := fs.Int("n", 1_000_000, "subscribers to generate and import")
	database := fs.String("database-url", "", "postgres:// URL to run on (default: a new SQLite file in a temporary folder)")
	runs := fs.Int("runs", 30, "times each search is run")
	existing := fs.Bool("existing", false, "search the data set a previous run left at -database-url (its search_path) instead of making one")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *n < 1 {
		return errors.New("bench search: -n must be at least 1")
	}
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "herald-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	dsn := filepath.Join(dir, "bench.db")
	if *existing && *database == "" {
		return errors.New("bench search: -existing needs -database-url")
	}
	if *existing {
		dsn = *database
	} else if *database != "" {
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
	var list int64
	if *existing {
		err = store.DB().Raw("SELECT min(id) FROM lists").Scan(&list).Error
	} else {
		list, err = benchSeed(ctx, store, dir, *n)
	}
	if err != nil {
		return err
	}
	if err := benchStatuses(ctx, store); err != nil {
		return err
	}
	var count int64
	if err := store.DB().Raw("SELECT count(*) FROM subscribers").Scan(&count).Error; err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: %d subscribers ready in %.1fs\n", store.Dialect(), count, time.Since(start).Seconds())
	if store.Dialect() == models.Postgres {
		if err := store.DB().Exec("ANALYZE").Error; err != nil {
			return err
		}
	}
	shapes := []struct {
		name string
		q    models.SubscriberQuery
	}{
		{"surname inside name \"nguyen\"", models.SubscriberQuery{Search: "nguyen"}},
		{"inside address \"ria.kow\"", models.SubscriberQuery{Search: "ria.kow"}},
		{"number inside address \"4242\"", models.SubscriberQuery{Search: "4242"}},
		{"domain \"acme.example\"", models.SubscriberQuery{Search: "acme.example"}},
		{"common \"user\"", models.SubscriberQuery{Search: "user"}},
		{"rare \"zzzq\"", models.SubscriberQuery{Search: "zzzq"}},
		{"accented \"lefèvre\"", models.SubscriberQuery{Search: "lefèvre"}},
		{"short prefix \"jo\"", models.SubscriberQuery{Search: "jo"}},
		{"list + \"nguyen\"", models.SubscriberQuery{ListID: list, Search: "nguyen"}},
		{"list + unconfirmed + \"smith\"", models.SubscriberQuery{ListID: list, Status: models.SubUnconfirmed, Search: "smith"}},
		{"attribute city=Oslo", models.SubscriberQuery{AttrKey: "city", AttrValue: "Oslo"}},
		{"\"garcia\" + city=Lyon", models.SubscriberQuery{Search: "garcia", AttrKey: "city", AttrValue: "Lyon"}},
	}
	fmt.Fprintf(stdout, "search (the 50 rows a page answers with) and result count (fetched after them, up to %d), %d runs each:\n", models.CountCap, *runs)
	for _, sh := range shapes {
		search, rows, err := benchTimes(*runs, func() (int, error) {
			p, err := store.SearchSubscribers(ctx, sh.q)
			if err != nil {
				return 0, err
			}
			return len(p.Rows), nil
		})
		if err != nil {
			return fmt.Errorf("bench search: %s: %w", sh.name, err)
		}
		count, total, err := benchTimes(*runs, func() (int, error) {
			c, _, err := store.CountSubscribers(ctx, sh.q)
			return c, err
		})
		if err != nil {
			return fmt.Errorf("bench search: count %s: %w", sh.name, err)
		}
		fmt.Fprintf(stdout, "  %-32s search median %6.2f ms p95 %6.2f ms (%2d rows)  count median %6.2f ms p95 %6.2f ms (%d)\n",
			sh.name, benchMS(search[len(search)/2]), benchMS(search[(len(search)*95+99)/100-1]), rows,
			benchMS(count[len(count)/2]), benchMS(count[(len(count)*95+99)/100-1]), total)
	}
	return nil
}

// benchTimes runs fn runs times and returns the sorted durations and what
// fn returned the last time.
func benchTimes(runs int, fn func() (int, error)) ([]time.Duration, int, error) {
	times := make([]time.Duration, 0, runs)
	var got int
	for range runs {
		t := time.Now()
		n, err := fn()
		if err != nil {
			return nil, 0, err
		}
		times = append(times, time.Since(t))
		got = n
	}
	slices.Sort(times)
	return times, got, nil
}

// benchSeed imports n generated subscribers into a new list and gives the
// list a real mix of statuses; it returns the list's id.
func benchSeed(ctx context.Context, store *models.Store, dir string, n int) (int64, error) {
	csvPath := filepath.Join(dir, "subscribers.csv")
	size, err := benchWriteCSV(csvPath, n)
	if err != nil {
		return 0, err
	}
	list := &models.List{Name: "Newsletter", Optin: models.OptinDouble, Visibility: models.ListPublic}
	if err := store.CreateList(ctx, list); err != nil {
		return 0, err
	}
	f, err := os.Open(csvPath)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	header, err := models.ReadCSVHeader(f)
	if err != nil {
		return 0, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return 0, err
	}
	im := &models.Import{Filename: "subscribers.csv", ListID: list.ID, Mode: models.ImportUpdate,
		LawfulBasis: models.BasisConsent, Source: "bench", TotalBytes: size}
	if err := store.CreateImport(ctx, im); err != nil {
		return 0, err
	}
	opts := models.ImportOptions{
		ListID: list.ID, Mode: models.ImportUpdate, LawfulBasis: models.BasisConsent, Source: "herald-bench search",
		EmailColumn: slices.Index(header, "email"), NameColumn: slices.Index(header, "name"),
		AttributeColumns: map[string]int{"city": slices.Index(header, "city"), "plan": slices.Index(header, "plan")},
		Status:           models.SubConfirmed,
		Evidence:         models.Evidence{Actor: "bench", IP: "127.0.0.1"},
	}
	if err := store.RunImport(ctx, im.ID, f, size, opts); err != nil {
		return 0, err
	}
	return list.ID, nil
}

// benchStatuses gives the list the mix of statuses a real one has (the
// import makes everyone confirmed), in batches: the per-row trigger that
// keeps the list's counts updates one row per change, and one huge
// transaction would make PostgreSQL walk an ever longer chain of its
// versions.
func benchStatuses(ctx context.Context, store *models.Store) error {
	var top int64
	if err := store.DB().Raw("SELECT coalesce(max(subscriber_id), 0) FROM subscriptions").Scan(&top).Error; err != nil {
		return err
	}
	for lo := int64(0); lo <= top; lo += 20000 {
		err := store.DB().WithContext(ctx).Exec(`UPDATE subscriptions SET status = CASE WHEN subscriber_id % 10 = 0 THEN 'unconfirmed' ELSE 'unsubscribed' END
			WHERE subscriber_id >= ? AND subscriber_id < ? AND status = 'confirmed' AND (subscriber_id % 10 = 0 OR subscriber_id % 25 = 1)`, lo, lo+20000).Error
		if err != nil {
			return err
		}
	}
	return nil
}
