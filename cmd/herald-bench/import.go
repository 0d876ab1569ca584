package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/herald-mail/herald/models"
)

// runBenchImport generates a realistic CSV, imports it into a new SQLite
// database (or a new schema of a PostgreSQL database), and then times the
// subscriber searches the dashboard runs, so the figures in the README can
// be reproduced on any machine.
func runBenchImport(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("bench import", flag.ContinueOnError)
	fs.SetOutput(stdout)
	n := fs.Int("n", 1_000_000, "rows to generate and import")
	dbPath := fs.String("db", "", "new SQLite file to import into (default: one in a temporary folder, removed afterwards)")
	pgURL := fs.String("database-url", "", "a postgres:// URL: import into a new schema there (dropped afterwards) instead of SQLite")
	runs := fs.Int("runs", 50, "times each search is run")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the import to this file")
	if err := fs.Parse(args); err != nil {
		return err
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
	if *n < 1 {
		return errors.New("bench import: -n must be at least 1")
	}
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "herald-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	path := *dbPath
	switch {
	case *pgURL != "" && path != "":
		return errors.New("bench import: give -db (SQLite) or -database-url (PostgreSQL), not both")
	case *pgURL != "":
		dsn, drop, err := benchSchema(ctx, *pgURL)
		if err != nil {
			return err
		}
		defer drop()
		path = dsn
	case path == "":
		path = filepath.Join(dir, "bench.db")
	default:
		if _, err := os.Stat(path); err == nil {
			return fmt.Errorf("bench import: %s exists; give the path of a new file", path)
		}
	}

	csvPath := filepath.Join(dir, "subscribers.csv")
	start := time.Now()
	size, err := benchWriteCSV(csvPath, *n)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "generated %d rows (%.1f MiB) in %.1fs\n", *n, float64(size)/(1<<20), time.Since(start).Seconds())

	store, err := models.Open(ctx, path)
	if err != nil {
		return err
	}
	defer store.Close()
	if _, err := store.Migrate(ctx); err != nil {
		return err
	}
	list := &models.List{Name: "Newsletter", Optin: models.OptinDouble, Visibility: models.ListPublic}
	if err := store.CreateList(ctx, list); err != nil {
		return err
	}
	f, err := os.Open(csvPath)
	if err != nil {
		return err
	}
	defer f.Close()
	header, err := models.ReadCSVHeader(f)
	if err != nil {
		return err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	im := &models.Import{Filename: "subscribers.csv", ListID: list.ID, Mode: models.ImportUpdate,
		LawfulBasis: models.BasisConsent, Source: "bench", TotalBytes: size}
	if err := store.CreateImport(ctx, im); err != nil {
		return err
	}
	opts := models.ImportOptions{
		ListID: list.ID, Mode: models.ImportUpdate, LawfulBasis: models.BasisConsent, Source: "herald-bench import",
		EmailColumn: slices.Index(header, "email"), NameColumn: slices.Index(header, "name"),
		AttributeColumns: map[string]int{"city": slices.Index(header, "city"), "plan": slices.Index(header, "plan")},
		Status:           models.SubConfirmed,
		Evidence:         models.Evidence{Actor: "bench", IP: "127.0.0.1"},
	}
	start, cpu0 := time.Now(), benchCPU()
	if err := store.RunImport(ctx, im.ID, f, size, opts); err != nil {
		return err
	}
	elapsed, cpu := time.Since(start), benchCPU()-cpu0
	if im, err = store.Import(ctx, im.ID); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "database: %s\n", store.Dialect())
	fmt.Fprintf(stdout, "imported %d rows in %.1fs: %.0f rows/s (inserted %d, updated %d, skipped %d, failed %d); CPU %.1fs\n",
		im.RowsRead, elapsed.Seconds(), float64(im.RowsRead)/elapsed.Seconds(), im.Inserted, im.Updated, im.Skipped, im.Failed, cpu.Seconds())
	fmt.Fprintf(stdout, "peak RSS: %s\n", benchPeakRSS())
	if store.Dialect() == models.Postgres {
		if server, err := benchServerCPU(ctx, store); err != nil {
			fmt.Fprintf(stdout, "PostgreSQL server CPU: unknown (%v)\n", err)
		} else {
			fmt.Fprintf(stdout, "PostgreSQL server CPU %.1fs: %.0f rows per server CPU-second, %.0f per CPU-second in all\n",
				server.Seconds(), float64(im.RowsRead)/server.Seconds(), float64(im.RowsRead)/(server+cpu).Seconds())
		}
	}

	// Give the list the mix of statuses a real one has: the import makes
	// everyone confirmed.
	if err := store.DB().Exec(`UPDATE subscriptions SET status = CASE WHEN subscriber_id % 10 = 0 THEN 'unconfirmed' ELSE 'unsubscribed' END
		WHERE subscriber_id % 10 = 0 OR subscriber_id % 25 = 1`).Error; err != nil {
		return err
	}
	page, err := store.SearchSubscribers(ctx, models.SubscriberQuery{Limit: 1})
	if err != nil || len(page.Rows) == 0 {
		return fmt.Errorf("bench import: no subscribers after the import: %v", err)
	}
	middle := page.Rows[0].ID / 2
	shapes := []struct {
		name string
		q    models.SubscriberQuery
	}{
		{"first page", models.SubscriberQuery{}},
		{"later page (cursor)", models.SubscriberQuery{Before: middle}},
		{"search \"user4\"", models.SubscriberQuery{Search: "user4"}},
		{"search \"maria.k\"", models.SubscriberQuery{Search: "maria.k"}},
		{"search \"Nguyen\"", models.SubscriberQuery{Search: "Nguyen"}},
		{"short prefix \"Zo\"", models.SubscriberQuery{Search: "Zo"}},
		{"rare \"zzz\"", models.SubscriberQuery{Search: "zzz"}},
		{"list", models.SubscriberQuery{ListID: list.ID}},
		{"list, later page", models.SubscriberQuery{ListID: list.ID, Before: middle}},
		{"list + status confirmed", models.SubscriberQuery{ListID: list.ID, Status: models.SubConfirmed}},
		{"list + status unconfirmed", models.SubscriberQuery{ListID: list.ID, Status: models.SubUnconfirmed}},
		{"list + search \"maria\"", models.SubscriberQuery{ListID: list.ID, Search: "maria"}},
		{"list + status + prefix \"j\"", models.SubscriberQuery{ListID: list.ID, Status: models.SubUnconfirmed, Search: "j"}},
		{"subscriber status blocklisted", models.SubscriberQuery{Status: models.SubscriberBlocklisted}},
	}
	fmt.Fprintf(stdout, "search, %d runs each, 50 rows a page:\n", *runs)
	for _, sh := range shapes {
		times := make([]time.Duration, 0, *runs)
		var got int
		for range *runs {
			t := time.Now()
			p, err := store.SearchSubscribers(ctx, sh.q)
			if err != nil {
				return fmt.Errorf("bench import: %s: %w", sh.name, err)
			}
			times = append(times, time.Since(t))
			got = len(p.Rows)
		}
		slices.Sort(times)
		fmt.Fprintf(stdout, "  %-32s median %6.2f ms  p95 %6.2f ms  (%d rows)\n", sh.name,
			benchMS(times[len(times)/2]), benchMS(times[(len(times)*95+99)/100-1]), got)
	}
	return nil
}

func benchMS(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// benchWriteCSV writes n subscribers with the look of a real export:
// several address shapes, shared and company domains, names, a city and a
// plan. Addresses are unique and come in no particular order.
func benchWriteCSV(path string, n int) (int64, error) {
	f, err := os.Create(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	first := []string{"Maria", "José", "Anna", "John", "Mohammed", "Wei", "Olga", "Pierre", "Aisha", "Lars", "Yuki", "Carlos",
		"Emma", "Noah", "Zoë", "Ivan", "Fatima", "Luca", "Sofia", "Kwame", "Hannah", "Raj", "Ingrid", "Tomás", "Jean", "Chloé"}
	last := []string{"Garcia", "Smith", "Nguyen", "Müller", "Rossi", "Kowalski", "Dubois", "Silva", "Kim", "Andersson",
		"Okafor", "Tanaka", "Novak", "Haddad", "Jensen", "Martin", "Zhang", "O'Brien", "Petrov", "Costa", "Brown", "Lefèvre"}
	domains := []string{"gmail.com", "yahoo.com", "outlook.com", "hotmail.com", "icloud.com", "gmx.de", "orange.fr",
		"example.org", "acme.example", "mail.example.net", "web.de", "proton.me"}
	cities := []string{"Lyon", "Berlin", "Lisbon", "Kraków", "Osaka", "Toronto", "Nairobi", "São Paulo", "Oslo", ""}
	plans := []string{"free", "free", "free", "pro", "team"}
	rng := rand.New(rand.NewPCG(1, 2))
	// A permutation of 0..n-1 through an affine map keeps the numbers that
	// make addresses unique out of order without holding a shuffled slice.
	mul := uint64(2654435761)
	for benchGCD(mul, uint64(n)) != 1 {
		mul += 2
	}
	w := bufio.NewWriterSize(f, 1<<20)
	w.WriteString("email,name,city,plan\n")
	var line []byte
	for i := range n {
		k := (uint64(i)*mul + 12345) % uint64(n)
		fn, ln := first[rng.IntN(len(first))], last[rng.IntN(len(last))]
		local := ""
		switch rng.IntN(4) {
		case 0, 1:
			local = benchASCII(fn) + "." + benchASCII(ln)
		case 2:
			local = benchASCII(fn[:1]) + benchASCII(ln)
		default:
			local = "user"
		}
		line = line[:0]
		line = append(line, local...)
		line = strconv.AppendUint(line, k, 10)
		line = append(line, '@')
		line = append(line, domains[rng.IntN(len(domains))]...)
		line = append(line, ',')
		name := fn + " " + ln
		if strings.ContainsAny(name, `",`) {
			name = `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
		}
		line = append(line, name...)
		line = append(line, ',')
		line = append(line, cities[rng.IntN(len(cities))]...)
		line = append(line, ',')
		line = append(line, plans[rng.IntN(len(plans))]...)
		line = append(line, '\n')
		if _, err := w.Write(line); err != nil {
			return 0, err
		}
	}
	if err := w.Flush(); err != nil {
		return 0, err
	}
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	return st.Size(), f.Close()
}

func benchGCD(a, b uint64) uint64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// benchASCII lower-cases a name and drops its accents and apostrophes, as
// people do when they pick an address.
func benchASCII(s string) string { return strings.ToLower(benchAccents.Replace(s)) }

var benchAccents = strings.NewReplacer("é", "e", "è", "e", "ë", "e", "ü", "u", "ö", "o", "á", "a", "ã", "a", "'", "")

// benchCPU is the CPU time the process has used, user and system: on a
// shared machine it varies less than the wall clock.
func benchCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchPeakRSS is the process's peak resident memory, from /proc.
func benchPeakRSS() string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "unknown (" + err.Error() + ")"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return fmt.Sprintf("%.0f MiB", float64(kb)/1024)
		}
	}
	return "unknown"
}

// benchSchema creates a schema of its own in the PostgreSQL database at
// dsn, so runs repeat on an empty database without touching anything else
// there, and returns a DSN that uses it and a function that drops it.
func benchSchema(ctx context.Context, dsn string) (string, func(), error) {
	if !strings.HasPrefix(dsn, "postgres://") && !strings.HasPrefix(dsn, "postgresql://") {
		return "", nil, fmt.Errorf("bench: -database-url %q is not a postgres:// URL", dsn)
	}
	u, err := url.Parse(dsn)
	if err != nil {
		return "", nil, fmt.Errorf("bench: -database-url: %w", err)
	}
	admin, err := models.Open(ctx, dsn)
	if err != nil {
		return "", nil, err
	}
	schema := fmt.Sprintf("herald_bench_%d_%d", os.Getpid(), time.Now().UnixNano()%1e9)
	if err := admin.DB().Exec("CREATE SCHEMA " + schema).Error; err != nil {
		admin.Close()
		return "", nil, fmt.Errorf("bench: create schema %s: %w", schema, err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	q.Set("application_name", schema) // finds the run's server processes: benchServerCPU
	u.RawQuery = q.Encode()
	drop := func() {
		if err := admin.DB().Exec("DROP SCHEMA " + schema + " CASCADE").Error; err != nil {
			fmt.Fprintf(os.Stderr, "herald-bench: drop schema %s: %v\n", schema, err)
		}
		admin.Close()
	}
	return u.String(), drop, nil
}

// benchServerCPU is the CPU time PostgreSQL's server processes spent on
// this run's connections (found by the application name benchSchema
// gave them), read from /proc: so it works only with a server on this
// machine. On a machine shared with other work the wall clock measures the
// machine; this measures the import.
func benchServerCPU(ctx context.Context, store *models.Store) (time.Duration, error) {
	var pids []int
	err := store.DB().WithContext(ctx).Raw(`SELECT pid FROM pg_stat_activity WHERE application_name = current_setting('application_name')`).
		Scan(&pids).Error
	if err != nil {
		return 0, err
	}
	var ticks int64
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return 0, fmt.Errorf("the server is not on this machine: %w", err)
		}
		// Fields after the command name (which may hold spaces): utime
		// and stime are the 12th and 13th.
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		if len(f) < 13 {
			return 0, fmt.Errorf("unexpected /proc/%d/stat", pid)
		}
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		ticks += ut + st
	}
	return time.Duration(ticks) * (time.Second / 100), nil // USER_HZ is 100 on Linux
}
