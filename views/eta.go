package views

import (
	"fmt"
	"time"
)

// ETA says how long a job that has done done of total since started still
// needs at its average pace so far: "about 3 min left". It is "" when the
// job is not running (started nil) or done, and says it is estimating
// until there is a pace to go by.
func ETA(done, total int64, started *time.Time, now time.Time) string {
	if started == nil || total <= 0 || done >= total {
		return ""
	}
	elapsed := now.Sub(*started)
	if done <= 0 || elapsed <= 0 {
		return "estimating the time left…"
	}
	left := time.Duration(float64(elapsed) * float64(total-done) / float64(done))
	return "about " + roughDuration(left) + " left"
}

// roughDuration is d as a person says it: "40 s", "3 min", "2 h 10 min".
func roughDuration(d time.Duration) string {
	switch {
	case d < 5*time.Second:
		return "a few seconds"
	case d < time.Minute:
		return fmt.Sprintf("%d s", int(d.Round(5*time.Second).Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%d min", int(d.Round(time.Minute).Minutes()))
	}
	d = d.Round(10 * time.Minute)
	return fmt.Sprintf("%d h %d min", int(d.Hours()), int(d.Minutes())%60)
}
