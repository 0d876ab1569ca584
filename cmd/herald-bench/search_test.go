package main

import (
	"regexp"
	"strings"
	"testing"

	"github.com/herald-mail/herald/internal/testdb"
)

// TestRunBenchSearchSmall runs the search benchmark on a few thousand
// subscribers, on SQLite and (when configured) PostgreSQL: every shape
// answers, and the contains-searches find people.
func TestRunBenchSearchSmall(t *testing.T) {
	args := [][]string{{"-n", "3000", "-runs", "2"}}
	if dsn := testdb.PostgresDSN(); dsn != "" {
		args = append(args, []string{"-n", "3000", "-runs", "2", "-database-url", dsn})
	}
	for _, a := range args {
		var out strings.Builder
		if err := runBenchSearch(a, &out); err != nil {
			t.Fatalf("runBenchSearch(%v) = %v\n%s", a, err, out.String())
		}
		for _, want := range []string{"3000 subscribers ready", "surname inside name \"nguyen\"", "count median"} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("output lacks %q:\n%s", want, out.String())
			}
		}
		if !regexp.MustCompile(`"nguyen"\s+search median\s+[\d.]+ ms p95\s+[\d.]+ ms \(50 rows\)`).MatchString(out.String()) {
			t.Errorf("the surname search found no full page:\n%s", out.String())
		}
	}
}
