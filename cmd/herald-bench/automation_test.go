package main

import (
	"regexp"
	"strings"
	"testing"

	"github.com/herald-mail/herald/internal/testdb"
)

// TestRunBenchAutomationSmall runs the automation benchmark on a few
// hundred people: all of them enter and get their first message queued,
// the next advance queues nothing more, and with -send the sink gets the
// 500 first messages and the 500 of the same message as a campaign (the
// benchmark fails unless it got exactly 1,000).
func TestRunBenchAutomationSmall(t *testing.T) {
	args := [][]string{{"-n", "500", "-send"}}
	if dsn := testdb.PostgresDSN(); dsn != "" {
		args = append(args, []string{"-n", "500", "-send", "-database-url", dsn})
	}
	for _, a := range args {
		var out strings.Builder
		if err := runBenchAutomation(a, &out); err != nil {
			t.Fatalf("runBenchAutomation(%v) = %v\n%s", a, err, out.String())
		}
		for _, re := range []string{`500 people entered and their first message queued`, `nobody due: [0-9.]+s \(entered 0, queued 0\)`,
			`first step sent 500 messages in`, `the same message as a campaign: 500 messages in`, `automation / campaign send rate: [0-9]+%`} {
			if !regexp.MustCompile(re).MatchString(out.String()) {
				t.Errorf("output lacks %s:\n%s", re, out.String())
			}
		}
	}
}
