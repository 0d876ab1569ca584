package views

import (
	"testing"
	"time"
)

func TestETA(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	ago := func(d time.Duration) *time.Time { t := now.Add(-d); return &t }
	for _, tc := range []struct {
		done, total int64
		started     *time.Time
		want        string
	}{
		{50, 100, ago(time.Minute), "about 1 min left"},
		{10, 100, ago(20 * time.Second), "about 3 min left"},
		{99, 100, ago(time.Minute), "about a few seconds left"},
		{1, 100, ago(time.Hour), "about 99 h 0 min left"},
		{0, 100, ago(time.Second), "estimating the time left…"},
		{100, 100, ago(time.Minute), ""},
		{5, 100, nil, ""},
	} {
		if got := ETA(tc.done, tc.total, tc.started, now); got != tc.want {
			t.Errorf("ETA(%d, %d) = %q, want %q", tc.done, tc.total, got, tc.want)
		}
	}
}
