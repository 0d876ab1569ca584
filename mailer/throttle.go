package mailer

import (
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/herald-mail/herald/models"
)

// gcra is a generic cell rate algorithm limiter: one message per interval
// on average, at most burst at once. The zero value is unlimited. The relay
// transport paces its hosts with it; domain rules use window, which holds
// in every sliding window.
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

// burstFor keeps the burst to a fortieth of the rate, so no one-second
// window carries more than about 2.5% over it (network jitter adds some).
func burstFor(perSecond float64) int {
	return max(1, int(perSecond/40))
}

// clockBase anchors the windows' int64 clock: offsets from it keep the
// monotonic readings of time.Now, so a wall-clock step moves nothing.
var clockBase = time.Now()

func clockOf(t time.Time) int64 { return int64(t.Sub(clockBase)) }
func timeOf(c int64) time.Time  { return clockBase.Add(time.Duration(c)) }

// maxWindow bounds a window's memory (8 bytes a message): a rule of more
// messages per span is held as k spans of a k-th of it (see newWindow).
const maxWindow = 1 << 16

// window holds messages to at most n in every span of length per, counted
// as a receiver counts them. A message may begin only while fewer than n
// others are on the wire or ended less than per ago. A receiver stamps a
// message between its beginning and its end here, so of any n+1 messages it
// stamps, the last to begin began at least per after one of the others
// ended: no span shorter than per holds them all, whatever the network
// delays and however many connections run at once. (A token bucket lets its
// burst through on top of the rate in some windows: 105 in a minute under
// 100 a minute with a burst of 5.) A message stalled on the wire holds one
// place, not the window. The zero value is unlimited; a nil *window too.
// Guarded by its owner's mutex.
type window struct {
	n        int   // 0: unlimited
	per      int64 // span, in clock units (nanoseconds)
	inflight int   // messages begun and not ended
	ends     []int64
	head     int   // ends[head:head+size] (mod len) are the ends of the last span, oldest first
	size     int   //
	clock    int64 // latest time seen (times read before the lock may be older)
	// gap paces beginnings: one at most every gap (0: none), so the
	// window's messages are spread over the span instead of sent in one
	// burst at its start, and a message that jumps the queue (a
	// transactional one) waits for the next gap, not for the next span.
	gap, last int64
}

// newWindow is a window of n messages per span. Past maxWindow, n per span
// is held as n/k per span/k (rounded so k short spans cover a span): still
// at most n in every span, at the price of a smoother pace.
func newWindow(n int, per time.Duration) *window {
	if n <= 0 || per <= 0 {
		return nil
	}
	if n > maxWindow {
		k := (n + maxWindow - 1) / maxWindow
		n, per = n/k, (per+time.Duration(k)-1)/time.Duration(k)
	}
	return &window{n: n, per: int64(per), clock: math.MinInt64, last: math.MinInt64}
}

// perSecondWindow is a rate's window: r per second when r is whole, else
// one message every 1/r (so no one-second window holds more than ⌈r⌉).
func perSecondWindow(r float64) *window {
	switch {
	case r <= 0:
		return nil
	case r == math.Trunc(r) && r <= math.MaxInt32:
		w := newWindow(int(r), time.Second)
		w.gap = w.per / int64(w.n)
		return w
	default:
		return newWindow(1, max(time.Duration(float64(time.Second)/r), 1))
	}
}

// retuned returns w changed to the limit of n (a window from newWindow or
// perSecondWindow, nil for none), keeping w's history: a rule edited
// mid-campaign must not open a burst.
func (w *window) retuned(n *window) *window {
	if w == nil || n == nil {
		return n
	}
	w.n, w.per, w.gap = n.n, n.per, n.gap
	return w
}

// next is the earliest clock at which a message may begin; false while the
// window is full of messages still on the wire (when one ends is not known
// yet).
func (w *window) next(now int64) (int64, bool) {
	now = max(now, w.clock)
	w.clock = now
	for w.size > 0 && w.ends[w.head]+w.per <= now {
		w.head = (w.head + 1) % len(w.ends)
		w.size--
	}
	paced := now
	if w.gap > 0 && w.last != math.MinInt64 {
		paced = max(now, w.last+w.gap)
	}
	over := w.inflight + w.size - w.n + 1 // how many must leave first
	switch {
	case over <= 0:
		return paced, true
	case over > w.size:
		return 0, false
	}
	return max(paced, w.ends[(w.head+over-1)%len(w.ends)]+w.per), true
}

// begin counts a message that begins now, at the clock next last saw
// (next allowed it).
func (w *window) begin() {
	w.inflight++
	w.last = w.clock
}

// end records that a begun message ended at a clock.
func (w *window) end(at int64) {
	w.inflight--
	if w.size > 0 {
		// Ends are kept in order; a time read just before the lock may be
		// a hair older than the last one: recording it later is safe.
		at = max(at, w.ends[(w.head+w.size-1)%len(w.ends)])
	}
	if w.size == len(w.ends) {
		grown := make([]int64, max(4, 2*len(w.ends)))
		for i := 0; i < w.size; i++ {
			grown[i] = w.ends[(w.head+i)%len(w.ends)]
		}
		w.ends, w.head = grown, 0
	}
	w.ends[(w.head+w.size)%len(w.ends)] = at
	w.size++
}

// void gives back the place of a message that did not go out.
func (w *window) void() { w.inflight-- }

// retry is how long to wait before asking again when next reports the
// window full of messages on the wire.
func (w *window) retry() time.Duration {
	return min(max(time.Duration(w.per)/time.Duration(w.n), time.Millisecond), 20*time.Millisecond)
}

// limits are a rule's rate limits for one lane (destination × source IP).
type limits struct {
	second, minute, hour *window // nil: no limit
}

// newLimits are one node's part of a rule's limits when nodes share them
// (see cluster.go).
func newLimits(r *models.DomainRule, nodes int) limits {
	return limits{
		second: perSecondWindow(partPerSecond(r.PerSecond, nodes)),
		minute: partWindow(r.PerMinute, time.Minute, nodes),
		hour:   partWindow(r.PerHour, time.Hour, nodes),
	}
}

// retune applies a changed rule or number of nodes, keeping each window's
// history.
func (l *limits) retune(r *models.DomainRule, nodes int) {
	n := newLimits(r, nodes)
	l.second, l.minute, l.hour = l.second.retuned(n.second), l.minute.retuned(n.minute), l.hour.retuned(n.hour)
}

// sourceIP is one address messages leave from, shared by every destination.
type sourceIP struct {
	addr   string // "" lets the OS choose
	helo   string
	weight int

	mu        sync.Mutex
	rate      *window // the address's own per-second limit; nil: none
	warmStart *time.Time
	schedule  []int
	day       int64
	sentToday int64 // messages begun today or about to be (reserved)
}

// setRate applies the address's per-second limit, keeping its history when
// the limit did not change.
func (s *sourceIP) setRate(perSecond float64) {
	s.rate = s.rate.retuned(perSecondWindow(perSecond))
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
	return s.sentToday >= s.dailyCap(now), endOfDay(now)
}

func endOfDay(now time.Time) time.Time {
	return now.UTC().Truncate(24 * time.Hour).Add(24 * time.Hour)
}

func (s *sourceIP) rollDay(now time.Time) {
	d := now.Unix() / 86400 // the UTC day: checked for every message, so no date string
	if d != s.day {
		s.day, s.sentToday = d, 0
	}
}

// DefaultWarmup is the daily cap of a new address, day by day; past the
// last day the address is warm.
var DefaultWarmup = []int{50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 40000, 70000, 100000, 150000, 250000}

// lane is one destination seen from one source address: its own windows,
// connection count and suspension.
type lane struct {
	src *sourceIP

	mu        sync.Mutex
	lim       limits
	conns     int
	suspended time.Time     // no message begins before
	events    uint64        // suspension events so far
	backoff   time.Duration // of the latest suspension; 0 after a message got through
	// pause is the latest suspension as handOver sees it, without the
	// lock: its end and its number in one value, so that a message handed
	// over is either stopped by an event or known to have begun before it.
	pause atomic.Pointer[pause]
}

// pause is a lane's latest suspension event.
type pause struct {
	until  int64  // on the windows' clock
	events uint64 // its number: the lane's events so far
}

// seen is the number of the latest suspension event visible now.
func (l *lane) seen() uint64 {
	if p := l.pause.Load(); p != nil {
		return p.events
	}
	return 0
}

// ticket is one message's claim on a lane, taken right before it is
// handed to the connection: a place in each of the lane's windows and its
// source's, and one of the source's warm-up messages for the day. A message
// sent settles it; one that is not gives it back with cancel. It lives on
// the worker's stack.
type ticket struct {
	w       [4]*window // the windows counted in (nil: unlimited)
	day     int64      // the warm-up day counted on
	counted bool       // a warm-up message is counted
	began   time.Time  // when the message was handed to the connection
	seen    uint64     // the suspension events seen by then
}

// slot is what reserve decided.
type slot int

const (
	slotBooked  slot = iota // the message may go now: the ticket holds its places
	slotWait                // a window is full: ask again at the time returned
	slotDial                // it could go now but there is no connection yet: dial, then ask again
	slotStopped             // the lane is suspended or at its daily cap until the time returned
)

// reserve is the last check before a message goes out. Unless the lane is
// suspended or its source at today's warm-up cap, and when every window has
// room now, it counts the message in them and in the source's warm-up day
// (before it is sent, so concurrent workers never pass a cap together) and
// fills tk. connected false stops short of booking with slotDial: a
// connection is opened before a place is taken, not while holding it.
func (l *lane) reserve(now time.Time, tk *ticket, connected bool) (slot, time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.suspended.After(now) {
		return slotStopped, l.suspended
	}
	s := l.src
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rollDay(now)
	if s.sentToday >= s.dailyCap(now) {
		return slotStopped, endOfDay(now)
	}
	ws := [4]*window{l.lim.second, l.lim.minute, l.lim.hour, s.rate}
	c := clockOf(now)
	t := c
	for _, w := range ws {
		if w == nil {
			continue
		}
		n, ok := w.next(c)
		if !ok {
			n = c + int64(w.retry())
		}
		t = max(t, n)
	}
	switch {
	case t > c:
		return slotWait, timeOf(t)
	case !connected:
		return slotDial, now
	}
	for _, w := range ws {
		if w != nil {
			w.begin()
		}
	}
	s.sentToday++
	*tk = ticket{w: ws, day: s.day, counted: true, began: now, seen: l.events}
	return slotBooked, now
}

// cancel gives a reservation back: the message did not go out.
func (l *lane) cancel(tk *ticket) {
	l.mu.Lock()
	l.src.mu.Lock()
	for _, w := range tk.w {
		if w != nil {
			w.void()
		}
	}
	if s := l.src; tk.counted && tk.day == s.day && s.sentToday > 0 {
		s.sentToday--
	}
	l.src.mu.Unlock()
	l.mu.Unlock()
	*tk = ticket{}
}

// settle records that the message ended at now (the server's answer, or a
// broken connection: it counts against the limits either way). accepted
// says the server took it, which ends a run of backoffs unless the message
// was handed over before the latest suspension (the receiver was
// throttling then).
func (l *lane) settle(tk *ticket, now time.Time, accepted bool) {
	c := clockOf(now)
	l.mu.Lock()
	for _, w := range tk.w[:3] {
		if w != nil {
			w.end(c)
		}
	}
	if accepted && tk.seen == l.events {
		l.backoff = 0
	}
	l.mu.Unlock()
	if w := tk.w[3]; w != nil {
		l.src.mu.Lock()
		w.end(c)
		l.src.mu.Unlock()
	}
	tk.w = [4]*window{}
}

// slowDown suspends the lane after a refusal that asks us to slow down (or
// a failed connection) of a message or connection attempt begun when seen
// suspension events had been seen. One event suspends once: a refusal of
// something begun before the latest suspension belongs to it (the other
// connections' messages already on the wire), so it neither extends the
// pause nor doubles the backoff. A new event suspends for the backoff,
// which doubles from min up to max with each event not separated by a
// message getting through. fresh reports a new event.
func (l *lane) slowDown(seen uint64, now time.Time, min, max time.Duration) (until time.Time, fresh bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if seen < l.events {
		return l.suspended, false
	}
	if l.backoff < min {
		l.backoff = min
	} else {
		l.backoff = minDur(l.backoff*2, max)
	}
	l.events++
	l.suspended = now.Add(l.backoff)
	l.pause.Store(&pause{until: clockOf(l.suspended), events: l.events})
	return l.suspended, true
}

// handOver is the last look before a reserved message goes out (after it
// was rendered and signed, which takes a while): false when the lane was
// suspended meanwhile. It marks when the message began and the events it
// began after.
func (l *lane) handOver(tk *ticket, now time.Time) bool {
	p := l.pause.Load()
	if p != nil && clockOf(now) < p.until {
		return false
	}
	tk.began, tk.seen = now, 0
	if p != nil {
		tk.seen = p.events
	}
	return true
}

// surplus reports whether the lane has more connections than limit (the
// cap shrank: another node joined).
func (l *lane) surplus(limit int) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.conns > limit
}

func (l *lane) suspendedUntil(now time.Time) (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.suspended, l.suspended.After(now)
}

// rateBound reports whether the lane's windows keep its next message
// waiting more than a moment while it has a connection (another one would
// not help).
func (l *lane) rateBound(now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conns == 0 {
		return false
	}
	c := clockOf(now)
	for _, w := range [3]*window{l.lim.second, l.lim.minute, l.lim.hour} {
		if w == nil {
			continue
		}
		if n, ok := w.next(c); !ok || n > c+int64(50*time.Millisecond) {
			return true
		}
	}
	return false
}

func minDur(a, b time.Duration) time.Duration {
	if a < b {
		return a
	}
	return b
}
