package main

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/herald-mail/herald/models"
)

func TestRunBenchImportSmall(t *testing.T) {
	var out strings.Builder
	if err := runBenchImport([]string{"-n", "3000", "-runs", "2"}, &out); err != nil {
		t.Fatalf("runBenchImport() = %v\n%s", err, out.String())
	}
	for _, want := range []string{"imported 3000 rows", "failed 0", "peak RSS:", "list + search", "median"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

// On PostgreSQL the benchmark works in a schema of its own and drops it,
// so runs repeat and nothing else in the database is touched.
func TestRunBenchImportPostgres(t *testing.T) {
	dsn := os.Getenv("HERALD_TEST_POSTGRES")
	if dsn == "" {
		t.Skip("HERALD_TEST_POSTGRES not set")
	}
	schemas := func() int64 {
		s, err := models.Open(context.Background(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		var n int64
		if err := s.DB().Raw("SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'herald_bench_%'").Scan(&n).Error; err != nil {
			t.Fatal(err)
		}
		return n
	}
	before := schemas()
	for range 2 {
		var out strings.Builder
		if err := runBenchImport([]string{"-n", "3000", "-runs", "1", "-database-url", dsn}, &out); err != nil {
			t.Fatalf("runBenchImport() = %v\n%s", err, out.String())
		}
		for _, want := range []string{"database: postgres", "imported 3000 rows", "failed 0", "rows per server CPU-second"} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("output lacks %q:\n%s", want, out.String())
			}
		}
	}
	if after := schemas(); after != before {
		t.Errorf("%d bench schemas left behind", after-before)
	}
}
