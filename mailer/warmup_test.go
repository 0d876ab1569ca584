package mailer_test

import (
	"testing"
	"time"

	"github.com/herald-mail/herald/mailer"
)

func TestWarmupCap(t *testing.T) {
	start := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	sched := []int{50, 100, 200}
	cases := []struct {
		now     time.Time
		start   *time.Time
		limit   int64
		day     int
		limited bool
	}{
		{start.Add(time.Hour), &start, 50, 0, true},
		{start.Add(47 * time.Hour), &start, 100, 1, true},
		{start.Add(48 * time.Hour), &start, 200, 2, true},
		{start.Add(72 * time.Hour), &start, 0, 3, false}, // past the schedule: warm
		{start.Add(-time.Hour), &start, 0, -1, true},     // before the start: nothing yet
		{start.Add(-50 * time.Hour), &start, 0, -1, true},
		{start, nil, 0, 0, false}, // no warm-up
	}
	for _, c := range cases {
		limit, day, limited := mailer.WarmupCap(sched, c.start, c.now)
		if limit != c.limit || day != c.day || limited != c.limited {
			t.Errorf("WarmupCap(%v) = %d, %d, %v; want %d, %d, %v", c.now, limit, day, limited, c.limit, c.day, c.limited)
		}
	}
}
