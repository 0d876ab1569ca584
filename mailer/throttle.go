package mailer

import (
	"math"
	"sync"
	"time"

	"github.com/herald-mail/herald/models"
)

// gcra is a generic cell rate algorithm limiter: one message per interval
// on average, at most burst at once. The zero value is unlimited.
type gcra struct {
	interval time.Duration // 0: unlimited
	tau      time.Duration // burst tolerance: (burst-1) * interval
	tat      time.Time     // theoretical arrival time of the next message
}

func newGCRA(per time.Duration, n float64, burst int) gcra {
	if n <= 0 {
		return gcra{}
	}
	iv := time.Duration(float64(per) / n)
	if burst < 1 {
		burst = 1
	}
	return gcra{interval: iv, tau: time.Duration(burst-1) * iv}
}

// next is the earliest time a message conforms.
func (g *gcra) next(now time.Time) time.Time {
	if g.interval == 0 {
		return now
	}
	if t := g.tat.Add(-g.tau); t.After(now) {
		return t
	}
	return now
}

// book records a message sent at t (t >= next).
func (g *gcra) book(t time.Time) {
	if g.interval == 0 {
		return
	}
	if g.tat.Before(t) {
		g.tat = t
	}
	g.tat = g.tat.Add(g.interval)
}

// limits are a rule's rate limits for one lane (destination × source IP).
type limits struct {
	second, minute, hour gcra
}

// burstFor keeps the burst to a fortieth of the rate, so no one-second
// window carries more than about 2.5% over it (network jitter adds some).
func burstFor(perSecond float64) int {
	return max(1, int(perSecond/40))
}

func newLimits(r *models.DomainRule) limits {
	return limits{
		second: newGCRA(time.Second, r.PerSecond, burstFor(r.PerSecond)),
		minute: newGCRA(time.Minute, float64(r.PerMinute), max(1, r.PerMinute/20)),
		hour:   newGCRA(time.Hour, float64(r.PerHour), max(1, r.PerHour/20)),
	}
}

// sourceIP is one address messages leave from, shared by every destination.
type sourceIP struct {
	addr   string // "" lets the OS choose
	helo   string
	weight int

	mu        sync.Mutex
	rate      gcra
	warmStart *time.Time
	schedule  []int
	day       int64
	sentToday int64
}

// dailyCap is the warm-up cap for the day: schedule[n] on the n-th day since
// the warm-up started; no cap past the schedule or without a start.
func (s *sourceIP) dailyCap(now time.Time) int64 {
	// One reading of the schedule for the engine and the IP pool page.
	l, _, limited := WarmupCap(s.schedule, s.warmStart, now)
	if !limited {
		return math.MaxInt64
	}
	return l
}

// capped reports whether the address reached today's warm-up cap, and when
// the day ends.
func (s *sourceIP) capped(now time.Time) (bool, time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rollDay(now)
	tomorrow := now.UTC().Truncate(24 * time.Hour).Add(24 * time.Hour)
	return s.sentToday >= s.dailyCap(now), tomorrow
}

func (s *sourceIP) rollDay(now time.Time) {
	d := now.Unix() / 86400 // the UTC day: checked for every message, so no date string
	if d != s.day {
		s.day, s.sentToday = d, 0
	}
}

func (s *sourceIP) countSent(now time.Time) {
	s.mu.Lock()
	s.rollDay(now)
	s.sentToday++
	s.mu.Unlock()
}

// DefaultWarmup is the daily cap of a new address, day by day; past the
// last day the address is warm.
var DefaultWarmup = []int{50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 40000, 70000, 100000, 150000, 250000}

// lane is one destination seen from one source address: its own buckets,
// connection count and suspension.
type lane struct {
	src *sourceIP

	mu        sync.Mutex
	lim       limits
	conns     int
	suspended time.Time
	backoff   time.Duration
}

// reserve books the next send slot on the lane and its source address and
// returns when it is.
func (l *lane) reserve(now time.Time) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.src.mu.Lock()
	defer l.src.mu.Unlock()
	t := now
	for _, g := range []*gcra{&l.lim.second, &l.lim.minute, &l.lim.hour, &l.src.rate} {
		if n := g.next(now); n.After(t) {
			t = n
		}
	}
	for _, g := range []*gcra{&l.lim.second, &l.lim.minute, &l.lim.hour, &l.src.rate} {
		g.book(t)
	}
	return t
}

// suspend stops the lane until now plus its backoff, which doubles from min
// up to max on each consecutive suspension.
func (l *lane) suspend(now time.Time, min, max time.Duration) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.backoff < min {
		l.backoff = min
	} else {
		l.backoff = minDur(l.backoff*2, max)
	}
	l.suspended = now.Add(l.backoff)
	return l.suspended
}

// succeeded resets the backoff after a message went through.
func (l *lane) succeeded() {
	l.mu.Lock()
	l.backoff = 0
	l.mu.Unlock()
}

func (l *lane) suspendedUntil(now time.Time) (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.suspended, l.suspended.After(now)
}

func minDur(a, b time.Duration) time.Duration {
	if a < b {
		return a
	}
	return b
}
