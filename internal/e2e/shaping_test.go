package e2e_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/herald-mail/herald/internal/e2e"
	"github.com/herald-mail/herald/models"
)

// rule adds a domain rule through the dashboard's form.
func rule(t *testing.T, h *e2e.Herald, form url.Values) {
	t.Helper()
	if code, body := h.Dashboard(t).Post(t, "/deliverability/rules", form); code != http.StatusSeeOther {
		t.Fatalf("add rule %s = %d: %s", form.Get("name"), code, body)
	}
}

func addresses(n int, domain string) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("reader%d@%s", i, domain)
	}
	return out
}

// peakIn is the most stamps in any half-open window [t, t+span).
func peakIn(stamps []time.Time, span time.Duration) int {
	s := append([]time.Time(nil), stamps...)
	sort.Slice(s, func(i, j int) bool { return s[i].Before(s[j]) })
	best, lo := 0, 0
	for hi := range s {
		for s[hi].Sub(s[lo]) >= span {
			lo++
		}
		best = max(best, hi-lo+1)
	}
	return best
}

var suspendedLine = regexp.MustCompile(`time=(\S+) .*msg="destination suspended" destination=(\S+) .*until=(\S+)`)

// With the binary as `serve` runs it, a rule of 10 a second and 30 a
// minute holds in every sliding window of the receiver's timestamps
// (accepted and refused messages alike), and a 421 "slow down" pauses the
// destination: during the pause the receiver sees no message except those
// already on the wire (at most one per connection opened before the 421),
// and the messages refused with it make one suspension, not one each.
func TestShapingAtTheReceiver(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the built binary")
	}
	dns := e2e.StartDNS(t)
	port := e2e.FreePort(t)
	const backoff = 2 * time.Second
	slow := &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: "Too many messages, slow down"}
	var (
		mu      sync.Mutex
		first   time.Time // when the first 421 was decided
		onWire  int       // messages refused with it
		release time.Time
	)
	rcv := e2e.StartReceiver(t, "127.0.0.2", port, e2e.ReceiverOptions{Data: func(rcpt string, n int) *smtp.SMTPError {
		mu.Lock()
		switch {
		case n == 12:
			// Hold the answer a moment, so that the other connections'
			// messages are on the wire when the 421 comes, then refuse
			// them all.
			first, release = time.Now(), time.Now().Add(300*time.Millisecond)
		case first.IsZero() || time.Now().After(release):
			mu.Unlock()
			return nil
		}
		onWire++
		wait := time.Until(release)
		mu.Unlock()
		time.Sleep(wait)
		return slow
	}})
	dns.Provider(t, "mx.slow.test", "127.0.0.2", "slow.test")

	h := e2e.Start(t, e2e.Options{Transport: "direct", DNS: dns, MXPort: port})
	rule(t, h, url.Values{"name": {"slow"}, "domains": {"slow.test"}, "per_second": {"10"}, "per_minute": {"30"},
		"max_connections": {"4"}, "backoff_min_seconds": {"2"}, "backoff_max_seconds": {"16"}, "position": {"50"}})
	h.SendingDomain(t, dns, "news.example")
	list := h.List(t, "Slow readers", addresses(45, "slow.test")...)
	id := h.NewCampaign(t, e2e.Campaign{FromEmail: "hello@news.example", Lists: []int64{list}})
	h.StartCampaign(t, id)

	stamps := func() []time.Time {
		var s []time.Time
		for _, m := range rcv.Messages() {
			s = append(s, m.At)
		}
		for _, r := range rcv.Refusals() {
			s = append(s, r.At)
		}
		return s
	}
	e2e.Eventually(t, 45*time.Second, "the minute's 30 messages", func() bool { return len(stamps()) >= 30 })
	time.Sleep(1500 * time.Millisecond) // anything past the rule would arrive by now
	all := stamps()
	sort.Slice(all, func(i, j int) bool { return all[i].Before(all[j]) })
	perSecond := peakIn(all, time.Second)
	t.Logf("%d messages at the receiver over %v, peak %d in one second", len(all), all[len(all)-1].Sub(all[0]).Round(time.Millisecond), perSecond)
	if perSecond > 10 {
		t.Errorf("peak = %d messages in a one-second window, want <= 10 (the rule)", perSecond)
	}
	if time.Since(all[0]) < time.Minute && len(all) > 30 {
		t.Errorf("%d messages within %v of the first, want <= 30 (30 a minute)", len(all), time.Since(all[0]).Round(time.Millisecond))
	}

	mu.Lock()
	t421, refused := first, onWire
	mu.Unlock()
	if t421.IsZero() {
		t.Fatal("the receiver never answered 421")
	}
	// The messages accepted during the pause: only from connections that
	// existed before the 421, one each.
	seenBefore := map[string]bool{}
	perConn := map[string]int{}
	for _, m := range rcv.Messages() {
		if m.At.Before(t421) {
			seenBefore[m.Remote] = true
		}
	}
	duringPause := 0
	for _, m := range rcv.Messages() {
		if m.At.Before(t421) || !m.At.Before(t421.Add(backoff)) {
			continue
		}
		duringPause++
		perConn[m.Remote]++
		// A connection opened just before the 421 may carry its first
		// message then; one opened later cannot have a message on the
		// wire before the receiver released its refusals.
		if !seenBefore[m.Remote] && m.At.After(t421.Add(time.Second)) {
			t.Errorf("a message was accepted %v into the pause on a new connection (%s)", m.At.Sub(t421).Round(time.Millisecond), m.Remote)
		}
	}
	for c, k := range perConn {
		if k > 1 {
			t.Errorf("connection %s delivered %d messages during the pause, want at most the one on the wire", c, k)
		}
	}
	// The engine's own account: one suspension for the event.
	var pauses []string
	for _, m := range suspendedLine.FindAllStringSubmatch(h.Logs(), -1) {
		at, err1 := time.Parse(time.RFC3339Nano, m[1])
		until, err2 := time.Parse(time.RFC3339Nano, m[3])
		if err1 != nil || err2 != nil {
			t.Fatalf("suspension line %q: %v %v", m[0], err1, err2)
		}
		pauses = append(pauses, fmt.Sprintf("%s for %v", m[2], until.Sub(at).Round(10*time.Millisecond)))
		if d := until.Sub(at); d > backoff {
			t.Errorf("suspension of %s for %v, want %v (one event: the minimum backoff)", m[2], d, backoff)
		}
	}
	t.Logf("421: %d messages refused together, %d accepted during the %v pause; suspensions: %v", refused, duringPause, backoff, pauses)
	if len(pauses) != 1 {
		t.Errorf("suspensions = %d (%v), want 1: the refusals of messages already on the wire are one event", len(pauses), pauses)
	}
}

// With the binary, a new sending address on day 1 of its warm-up sends
// exactly its cap (50) however many connections run at once.
func TestWarmupCapAtTheReceiver(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the built binary")
	}
	dns := e2e.StartDNS(t)
	port := e2e.FreePort(t)
	rcv := e2e.StartReceiver(t, "127.0.0.4", port, e2e.ReceiverOptions{Data: func(string, int) *smtp.SMTPError {
		time.Sleep(time.Duration(20+rand.IntN(60)) * time.Millisecond) // many messages on the wire at once
		return nil
	}})
	dns.Provider(t, "mx.warm.test", "127.0.0.4", "warm.test")

	h := e2e.Start(t, e2e.Options{Transport: "direct", DNS: dns, MXPort: port})
	rule(t, h, url.Values{"name": {"warm"}, "domains": {"warm.test"}, "max_connections": {"10"},
		"backoff_min_seconds": {"60"}, "backoff_max_seconds": {"600"}, "position": {"50"}})
	ctx := context.Background()
	s := h.Store(t)
	pool := &models.IPPool{Name: "new address"}
	if err := s.CreateIPPool(ctx, pool); err != nil {
		t.Fatal(err)
	}
	today := time.Now().UTC().Truncate(24 * time.Hour)
	if err := s.AddSendingIP(ctx, &models.SendingIP{PoolID: pool.ID, Address: "127.0.0.3", HELO: "out.news.example",
		Active: true, WarmupStart: &today}); err != nil {
		t.Fatal(err)
	}
	h.SendingDomain(t, dns, "news.example")
	list := h.List(t, "Warm readers", addresses(70, "warm.test")...)
	id := h.NewCampaign(t, e2e.Campaign{FromEmail: "hello@news.example", Lists: []int64{list}})
	if err := s.DB().Exec("UPDATE campaigns SET ip_pool_id = ? WHERE id = ?", pool.ID, id).Error; err != nil {
		t.Fatal(err)
	}
	h.StartCampaign(t, id)
	e2e.Eventually(t, 45*time.Second, "the day's 50 messages", func() bool { return rcv.Count() >= 50 })
	time.Sleep(2 * time.Second) // anything past the cap would arrive by now
	got := rcv.Messages()
	t.Logf("received from the new address on its first day: %d (cap 50)", len(got))
	if len(got) > 50 {
		t.Errorf("received %d messages on day 1, want <= 50 (the warm-up cap)", len(got))
	}
	for _, m := range got {
		if ip, _, _ := net.SplitHostPort(m.Remote); ip != "127.0.0.3" {
			t.Errorf("message from %s, want the pool's address 127.0.0.3", m.Remote)
			break
		}
	}
}
