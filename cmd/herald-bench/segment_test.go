package main

import (
	"regexp"
	"strings"
	"testing"

	"github.com/herald-mail/herald/internal/testdb"
)

// TestRunBenchSegmentSmall runs the segment benchmark on a few thousand
// subscribers: the count finds the people it should (a tenth in Paris, a
// twentieth opened lately: 1 in 20, since both ids end in 0) and every
// materialisation reports its recipients.
func TestRunBenchSegmentSmall(t *testing.T) {
	args := [][]string{{"-n", "2000", "-runs", "2"}}
	if dsn := testdb.PostgresDSN(); dsn != "" {
		args = append(args, []string{"-n", "2000", "-runs", "2", "-database-url", dsn})
	}
	for _, a := range args {
		var out strings.Builder
		if err := runBenchSegment(a, &out); err != nil {
			t.Fatalf("runBenchSegment(%v) = %v\n%s", a, err, out.String())
		}
		if !strings.Contains(out.String(), "(100 people)") {
			t.Errorf("count: want 100 people:\n%s", out.String())
		}
		for _, re := range []string{`the list:\s+2000 recipients`, `segment of the list.*:\s+2000 recipients`, `segment of everyone.*:\s+2000 recipients`, `3-condition segment:\s+100 recipients`, `list of its twentieth:\s+100 recipients`, `per recipient against a list of the same people`} {
			if !regexp.MustCompile(re).MatchString(out.String()) {
				t.Errorf("output lacks %s:\n%s", re, out.String())
			}
		}
	}
}
