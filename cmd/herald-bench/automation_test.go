package main

import (
	"regexp"
	"strings"
	"testing"

	"github.com/herald-mail/herald/internal/testdb"
)

// TestRunBenchAutomationSmall runs the automation benchmark on a few
// hundred people: all of them enter and get their first message queued,
// and the next advance queues nothing more.
func TestRunBenchAutomationSmall(t *testing.T) {
	args := [][]string{{"-n", "500"}}
	if dsn := testdb.PostgresDSN(); dsn != "" {
		args = append(args, []string{"-n", "500", "-database-url", dsn})
	}
	for _, a := range args {
		var out strings.Builder
		if err := runBenchAutomation(a, &out); err != nil {
			t.Fatalf("runBenchAutomation(%v) = %v\n%s", a, err, out.String())
		}
		for _, re := range []string{`500 people entered and their first message queued`, `nobody due: [0-9.]+s \(entered 0, queued 0\)`} {
			if !regexp.MustCompile(re).MatchString(out.String()) {
				t.Errorf("output lacks %s:\n%s", re, out.String())
			}
		}
	}
}
