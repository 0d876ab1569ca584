package mailer_test

import (
	"context"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/herald-mail/herald/internal/testdb"
	"github.com/herald-mail/herald/mailer"
	"github.com/herald-mail/herald/models"
)

// stampMX is a receiver that records, for every transaction, the
// connection it came on (and when that was opened), when MAIL arrived and
// when the message was answered; decide picks each answer.
type stampMX struct {
	Addr string

	mu     sync.Mutex
	conns  int
	txs    []stampTx
	decide func(c *stampConn, mail time.Time) *smtp.SMTPError // nil: accept all; called without mu
}

type stampConn struct {
	id     int
	opened time.Time
}

type stampTx struct {
	conn     *stampConn
	mail, at time.Time
	code     int // 250, or the refusal's code
}

func startStampMX(t testing.TB, addr string) *stampMX {
	t.Helper()
	m := &stampMX{}
	s := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		m.mu.Lock()
		m.conns++
		sc := &stampConn{id: m.conns, opened: time.Now()}
		m.mu.Unlock()
		return &stampSession{m: m, c: sc}, nil
	}))
	s.Domain = "mx.test"
	s.ReadTimeout, s.WriteTimeout = 30*time.Second, 30*time.Second
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen %s: %v", addr, err)
	}
	m.Addr = l.Addr().String()
	go s.Serve(l)
	t.Cleanup(func() { s.Close() })
	return m
}

func (m *stampMX) transactions() []stampTx {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]stampTx(nil), m.txs...)
}

// accepted returns when each accepted message was answered, in order.
func (m *stampMX) accepted() []time.Time {
	var out []time.Time
	for _, tx := range m.transactions() {
		if tx.code == 250 {
			out = append(out, tx.at)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Before(out[j]) })
	return out
}

type stampSession struct {
	m    *stampMX
	c    *stampConn
	mail time.Time
}

func (s *stampSession) Reset()        {}
func (s *stampSession) Logout() error { return nil }
func (s *stampSession) Mail(string, *smtp.MailOptions) error {
	s.mail = time.Now()
	return nil
}
func (s *stampSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (s *stampSession) Data(r io.Reader) error {
	io.Copy(io.Discard, r)
	var verdict *smtp.SMTPError
	if s.m.decide != nil {
		verdict = s.m.decide(s.c, s.mail)
	}
	tx := stampTx{conn: s.c, mail: s.mail, at: time.Now(), code: 250}
	if verdict != nil {
		tx.code = verdict.Code
	}
	s.m.mu.Lock()
	s.m.txs = append(s.m.txs, tx)
	s.m.mu.Unlock()
	if verdict != nil {
		return verdict
	}
	return nil
}

// setRule sets the default domain rule's limits.
func setRule(t testing.TB, s *models.Store, mod func(r *models.DomainRule)) {
	t.Helper()
	ctx := context.Background()
	rules, err := s.DomainRules(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rules {
		if r.IsDefault {
			r.PerSecond, r.PerMinute, r.PerHour, r.MaxPerConnection = 0, 0, 0, 0
			mod(&r)
			if err := s.UpdateDomainRule(ctx, &r); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// suspensionLog keeps the engine's "destination suspended" records.
type suspensionLog struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (h *suspensionLog) Enabled(context.Context, slog.Level) bool { return true }
func (h *suspensionLog) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *suspensionLog) WithGroup(string) slog.Handler            { return h }
func (h *suspensionLog) Handle(_ context.Context, r slog.Record) error {
	if r.Message == "destination suspended" {
		h.mu.Lock()
		h.recs = append(h.recs, r.Clone())
		h.mu.Unlock()
	}
	return nil
}

// pauses returns, for each suspension logged, how long it was for
// (measured from the log line, a moment after it began).
func (h *suspensionLog) pauses() []time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []time.Duration
	for _, r := range h.recs {
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "until" {
				out = append(out, a.Value.Time().Sub(r.Time))
			}
			return true
		})
	}
	return out
}

// A 421 "slow down" stops the destination's other connections before
// their next message: during the pause the receiver sees no transaction
// except at most one per connection opened before the 421 (the message
// already on the wire), and no new connection. The refusals of those
// messages belong to the same event: one suspension, not one per refusal,
// and the backoff doubles once per event (1 s, then 2 s).
func TestSlowDownPausesOncePerEvent(t *testing.T) {
	ctx := context.Background()
	s := testdb.SQLite(t)
	const minBackoff = time.Second
	setRule(t, s, func(r *models.DomainRule) {
		r.MaxConnections, r.BackoffMinSeconds, r.BackoffMaxSeconds = 5, 1, 8
	})
	mx := startStampMX(t, "127.0.0.1:0")
	slow := &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: "Too many messages, slow down"}
	var (
		pmu      sync.Mutex
		epoch    int // 0 before the first event, 1 between the events, 2 after
		held     int // messages held back at the first event
		release  chan struct{}
		events   []time.Time // when the receiver answered each event's first 421
		accepted int
	)
	mx.decide = func(_ *stampConn, mail time.Time) *smtp.SMTPError {
		pmu.Lock()
		switch {
		case epoch > 0 && mail.Before(events[epoch-1].Add(minBackoff/2)):
			// Begun before the last event, or so soon after it that the
			// client cannot have seen it yet (no new message can begin
			// before its pause ends): on the wire, refused with it.
			pmu.Unlock()
			return slow
		case epoch == 0 && accepted < 30:
			accepted++
			pmu.Unlock()
			return nil
		case epoch == 0:
			// The first event: hold this message until two more arrive
			// on other connections, then refuse all three at once.
			held++
			if release == nil {
				release = make(chan struct{})
				go func(ch chan struct{}) {
					time.Sleep(3 * time.Second)
					pmu.Lock()
					if epoch == 0 {
						epoch = 1
						events = append(events, time.Now())
						close(ch)
					}
					pmu.Unlock()
				}(release)
			}
			ch := release
			if held >= 3 {
				epoch = 1
				events = append(events, time.Now())
				close(ch)
			}
			pmu.Unlock()
			<-ch
			return slow
		case epoch == 1:
			// The first message after the pause: refused again, a second
			// event with no success between.
			epoch = 2
			events = append(events, time.Now())
			pmu.Unlock()
			return slow
		}
		pmu.Unlock()
		return nil
	}
	const n = 120
	list := seed(t, s, n, []string{"slow.test"})
	cid := campaign(t, s, list, "news@sender.test", nil, nil)
	logs := &suspensionLog{}
	e := mailer.New(mailer.Options{Logger: slog.New(logs), Secrets: []string{"s"},
		Transport: mailer.NewDirect(mailer.DirectOptions{MXOverride: mx.Addr})}, s)
	runEngine(t, e)
	if err := e.StartCampaign(ctx, cid); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "campaign to finish", func() bool { return progress(t, s, cid).Status == models.CampaignFinished })

	pmu.Lock()
	ev, nheld := append([]time.Time(nil), events...), held
	pmu.Unlock()
	txs := mx.transactions()
	refused := 0
	for _, tx := range txs {
		if tx.code == 421 && !tx.at.After(ev[0].Add(500*time.Millisecond)) {
			refused++
		}
	}
	t.Logf("first event: %d messages held and refused together, %d refused in all; %d connections", nheld, refused, mx.conns)
	if nheld < 2 {
		t.Fatalf("only %d message(s) were on the wire at the first 421; the test needs concurrent connections", nheld)
	}
	if len(ev) != 2 {
		t.Fatalf("receiver saw %d slow-down events, want 2", len(ev))
	}
	// The pauses: the engine's own records, one per event.
	pauses := logs.pauses()
	t.Logf("suspensions logged: %v", pauses)
	if len(pauses) != 2 {
		t.Errorf("suspensions = %d (%v), want 2: one per event, not one per refusal", len(pauses), pauses)
	}
	// Measured from the log line, a moment after the pause began: at most
	// the backoff, and (the second) more than the first's.
	for i, want := range []time.Duration{minBackoff, 2 * minBackoff} {
		if i < len(pauses) && (pauses[i] > want || pauses[i] <= want/2) {
			t.Errorf("suspension %d lasts %v, want %v (doubled once per event)", i+1, pauses[i], want)
		}
	}
	// During each pause, only messages already on the wire.
	for i, start := range ev {
		end := start.Add(minBackoff << i)
		perConn := map[int]int{}
		for _, tx := range txs {
			if tx.mail.Before(start) || !tx.mail.Before(end) {
				continue
			}
			perConn[tx.conn.id]++
			if !tx.conn.opened.Before(start) {
				t.Errorf("event %d: a message began %v into the pause on a connection opened %v into it",
					i+1, tx.mail.Sub(start), tx.conn.opened.Sub(start))
			}
		}
		for id, k := range perConn {
			if k > 1 {
				t.Errorf("event %d: connection %d began %d messages during the pause, want at most the one on the wire", i+1, id, k)
			}
		}
	}
	if p := progress(t, s, cid); p.Sent != n {
		t.Errorf("sent = %d, want %d (the refused messages retried after the pause)", p.Sent, n)
	}
}

// A warm-up cap holds exactly with many connections at once: on day 1 of a
// schedule of 25, the receiver gets 25 messages and no more.
func TestWarmupCapUnderConcurrency(t *testing.T) {
	ctx := context.Background()
	s := testdb.SQLite(t)
	setRule(t, s, func(r *models.DomainRule) { r.MaxConnections = 10 })
	mx := startStampMX(t, "127.0.0.1:0")
	mx.decide = func(*stampConn, time.Time) *smtp.SMTPError {
		time.Sleep(time.Duration(20+rand.IntN(60)) * time.Millisecond) // many messages on the wire at once
		return nil
	}
	pool := &models.IPPool{Name: "new"}
	if err := s.CreateIPPool(ctx, pool); err != nil {
		t.Fatal(err)
	}
	today := time.Now().UTC().Truncate(24 * time.Hour)
	if err := s.AddSendingIP(ctx, &models.SendingIP{PoolID: pool.ID, Address: "127.0.0.2", HELO: "out.sender.test", Active: true,
		WarmupStart: &today}); err != nil {
		t.Fatal(err)
	}
	const limit = 25
	list := seed(t, s, 120, []string{"a.test", "b.test", "c.test"})
	cid := campaign(t, s, list, "news@sender.test", nil, func(c *models.Campaign) { c.IPPoolID = &pool.ID })
	e := mailer.New(mailer.Options{Logger: testLogger(t), Secrets: []string{"s"}, Warmup: []int{limit, 100},
		Transport: mailer.NewDirect(mailer.DirectOptions{MXOverride: mx.Addr})}, s)
	runEngine(t, e)
	if err := e.StartCampaign(ctx, cid); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the day's cap to be sent", func() bool { return len(mx.accepted()) >= limit })
	time.Sleep(2 * time.Second) // anything let through past the cap arrives by now
	got := len(mx.accepted())
	t.Logf("received from the new address on its first day: %d (cap %d)", got, limit)
	if got > limit {
		t.Errorf("received %d messages on day 1, want <= %d (the warm-up cap)", got, limit)
	}
	if p := progress(t, s, cid); p.Sent > limit {
		t.Errorf("campaign counters say %d sent, want <= %d", p.Sent, limit)
	}
}

// The rule's limits hold in every sliding window of the receiver's
// timestamps, with several connections and a receiver whose answers take a
// random time: at most 20 in any second, and at most 45 in the minute
// (the test runs for less than one).
func TestRulesHoldAtTheReceiver(t *testing.T) {
	ctx := context.Background()
	s := testdb.SQLite(t)
	setRule(t, s, func(r *models.DomainRule) { r.PerSecond, r.PerMinute, r.MaxConnections = 20, 45, 4 })
	mx := startStampMX(t, "127.0.0.1:0")
	mx.decide = func(*stampConn, time.Time) *smtp.SMTPError {
		time.Sleep(time.Duration(rand.IntN(40)) * time.Millisecond)
		return nil
	}
	list := seed(t, s, 80, []string{"r.test"})
	cid := campaign(t, s, list, "news@sender.test", nil, nil)
	e := mailer.New(mailer.Options{Logger: testLogger(t), Secrets: []string{"s"},
		Transport: mailer.NewDirect(mailer.DirectOptions{MXOverride: mx.Addr})}, s)
	runEngine(t, e)
	if err := e.StartCampaign(ctx, cid); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the minute's 45 messages", func() bool { return len(mx.accepted()) >= 45 })
	time.Sleep(1500 * time.Millisecond)
	at := mx.accepted()
	first := at[0]
	peakSecond, lo := 0, 0
	for hi := range at {
		for at[hi].Sub(at[lo]) >= time.Second {
			lo++
		}
		peakSecond = max(peakSecond, hi-lo+1)
	}
	t.Logf("%d messages in %v, peak %d in one second", len(at), at[len(at)-1].Sub(first).Round(time.Millisecond), peakSecond)
	if peakSecond > 20 {
		t.Errorf("peak = %d messages in a one-second window, want <= 20", peakSecond)
	}
	if time.Since(first) < time.Minute && len(at) > 45 {
		t.Errorf("%d messages within %v, want <= 45 (45 a minute)", len(at), time.Since(first).Round(time.Millisecond))
	}
}
