package mailer

import "time"

// WarmupCap is a sending address's warm-up cap on the day of now:
// schedule[n] on the n-th day (UTC) since start, 0 before the start (day
// -1).
// limited is false when there is no cap: no start date, or past the
// schedule's last day. The engine's throttle applies the same rule.
func WarmupCap(schedule []int, start *time.Time, now time.Time) (limit int64, day int, limited bool) {
	if start == nil || len(schedule) == 0 {
		return 0, 0, false
	}
	if now.Before(*start) {
		// Not started: nothing from this address yet. (Integer division
		// alone would round the last day before the start up to day 0.)
		return 0, -1, true
	}
	day = int(now.Sub(*start) / (24 * time.Hour))
	if day >= len(schedule) {
		return 0, day, false
	}
	return int64(schedule[day]), day, true
}
