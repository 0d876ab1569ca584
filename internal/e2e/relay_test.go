package e2e_test

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/herald-mail/herald/internal/e2e"
)

// TestRelaySignsCampaignWithoutKey: through a relay marked dkim=relay, a
// campaign starts with no DKIM key in Herald (the From domain publishes
// the relay's record at the selector named in the URL), its mail goes out
// over verified STARTTLS (the relay's CA given as SSL_CERT_FILE) unsigned
// by Herald, and the relay's 550 for one recipient suppresses that
// address. Without dkim=relay, and with direct delivery, the same
// campaign is still refused.
func TestRelaySignsCampaignWithoutKey(t *testing.T) {
	t.Parallel() // functional: no rate or clock is measured, so it may share the machine
	if testing.Short() {
		t.Skip("starts the built binary")
	}
	dns := e2e.StartDNS(t)
	dns.AddTXT(t, "relay1._domainkey.news.example", "v=DKIM1; k=rsa; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAtest")
	port := e2e.FreePort(t)
	srvTLS, caFile := e2e.ThrowawayCA(t, "127.0.0.2")
	relay := e2e.StartReceiver(t, "127.0.0.2", port, e2e.ReceiverOptions{TLS: srvTLS, Domain: "relay.test",
		Rcpt: func(rcpt string) *smtp.SMTPError {
			if strings.EqualFold(rcpt, "gone@alpha.test") {
				return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "No such user here"}
			}
			return nil
		}})
	url := fmt.Sprintf("smtp://127.0.0.2:%d?connections=2&dkim=relay&dkim_selectors=relay1", port)

	h := e2e.Start(t, e2e.Options{Transport: "relay", DNS: dns, Env: []string{"HERALD_RELAY=" + url, "SSL_CERT_FILE=" + caFile}})
	list := h.List(t, "Readers", "ann@alpha.test", "gone@alpha.test", "bob@beta.test")
	id := h.NewCampaign(t, e2e.Campaign{FromEmail: "hello@news.example", Lists: []int64{list}})
	h.StartCampaign(t, id) // 200: no DKIM key in Herald, and no 422
	st := h.WaitCampaign(t, id, 60*time.Second, "finished")
	if st.Counters["sent"] != 2 || st.Counters["bounced"] != 1 {
		t.Errorf("counters = %v, want 2 sent, 1 bounced", st.Counters)
	}
	msgs := relay.Messages()
	if len(msgs) != 2 {
		t.Fatalf("relay accepted %d messages, want 2", len(msgs))
	}
	for _, m := range msgs {
		if !m.TLS {
			t.Errorf("message to %v went in plain text, want STARTTLS", m.To)
		}
		if strings.Contains(string(m.Data), "DKIM-Signature:") {
			t.Errorf("message to %v carries Herald's DKIM-Signature; the relay signs", m.To)
		}
	}
	ctx := context.Background()
	s := h.Store(t)
	if ok, err := s.IsSuppressed(ctx, "gone@alpha.test"); err != nil || !ok {
		t.Errorf("IsSuppressed(gone@alpha.test) after the relay's 550 5.1.1 = %v, %v; want true", ok, err)
	}
	if ok, _ := s.IsSuppressed(ctx, "ann@alpha.test"); ok {
		t.Error("ann@alpha.test, who was delivered, is suppressed")
	}
	d := h.Dashboard(t)
	if code, page := d.Get(t, fmt.Sprintf("/campaigns/%d", id)); code != 200 || !strings.Contains(page, "relay1._domainkey.news.example") {
		t.Errorf("campaign page = %d, want the DKIM check to name the relay's record relay1._domainkey.news.example", code)
	}

	for _, tc := range []struct {
		name string
		o    e2e.Options
	}{
		{"relay without dkim=relay", e2e.Options{Transport: "relay", DNS: dns,
			Env: []string{fmt.Sprintf("HERALD_RELAY=smtp://127.0.0.2:%d", port), "SSL_CERT_FILE=" + caFile}}},
		{"direct delivery", e2e.Options{Transport: "direct", DNS: dns, MXPort: port}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := e2e.Start(t, tc.o)
			list := h.List(t, "Readers", "ann@alpha.test")
			id := h.NewCampaign(t, e2e.Campaign{FromEmail: "hello@news.example", Lists: []int64{list}})
			// The answer itself, not the log: the log line may still be in
			// the pipe when the answer arrives.
			var refused struct {
				Error struct {
					Message string `json:"message"`
				} `json:"error"`
			}
			code := h.API(t, "POST", fmt.Sprintf("/campaigns/%d/start", id), nil, &refused)
			if code != http.StatusUnprocessableEntity || !strings.Contains(refused.Error.Message, "No DKIM key signs for news.example") {
				t.Errorf("start = %d %q, want 422 No DKIM key signs for news.example", code, refused.Error.Message)
			}
		})
	}
}

// TestRelayThrottlingPausesThePool: a relay answers 421 to every message
// for two seconds. The whole pool waits (every domain's mail, a handful
// of refusals rather than one per domain and connection), no domain is
// suspended, and once the relay takes mail again every message goes out by
// itself, none deferred.
func TestRelayThrottlingPausesThePool(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the built binary")
	}
	port := e2e.FreePort(t)
	srvTLS, caFile := e2e.ThrowawayCA(t, "127.0.0.2")
	var (
		mu            sync.Mutex
		accepted      int
		throttleUntil time.Time
		early         = map[string]bool{} // accepted at RCPT before the window
	)
	const window = 2 * time.Second
	relay := e2e.StartReceiver(t, "127.0.0.2", port, e2e.ReceiverOptions{TLS: srvTLS, Domain: "relay.test",
		Rcpt: func(rcpt string) *smtp.SMTPError {
			mu.Lock()
			defer mu.Unlock()
			now := time.Now()
			if accepted == 6 && throttleUntil.IsZero() {
				throttleUntil = now.Add(window)
			}
			if now.Before(throttleUntil) {
				return &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: "Throttling failure: maximum sending rate exceeded"}
			}
			accepted++
			if throttleUntil.IsZero() {
				early[rcpt] = true
			}
			return nil
		}})
	url := fmt.Sprintf("smtp://127.0.0.2:%d?connections=2&dkim=relay", port)
	h := e2e.Start(t, e2e.Options{Transport: "relay", Env: []string{"HERALD_RELAY=" + url, "SSL_CERT_FILE=" + caFile}})
	var emails []string
	domains := []string{"alpha.test", "beta.test", "gamma.test", "delta.test", "eps.test"}
	for i := range 30 {
		emails = append(emails, fmt.Sprintf("r%02d@%s", i, domains[i%len(domains)]))
	}
	list := h.List(t, "Readers", emails...)
	id := h.NewCampaign(t, e2e.Campaign{FromEmail: "hello@news.example", Lists: []int64{list}})
	h.StartCampaign(t, id)
	// Suspending a domain would hold its mail for the domain rule's
	// backoff (a minute at least) and defer it by the retry backoff
	// (minutes): the campaign finishing soon says nothing was.
	st := h.WaitCampaign(t, id, 40*time.Second, "finished")
	if st.Counters["sent"] != 30 || st.Counters["deferred"] != 0 {
		t.Errorf("counters = %v, want all 30 sent, none deferred", st.Counters)
	}

	mu.Lock()
	start, end := throttleUntil.Add(-window), throttleUntil
	onWire := maps.Clone(early)
	mu.Unlock()
	if start.IsZero() {
		t.Fatal("the relay never throttled")
	}
	refused := 0
	for _, r := range relay.Refusals() {
		if r.Code == 421 {
			refused++
		}
	}
	t.Logf("relay refused %d messages with 421 during its %v window; campaign counters %v", refused, window, st.Counters)
	// One pause per wave of the pool's 2 connections (1 s, then 2 s):
	// a few refusals, not one per message waiting.
	if refused == 0 || refused > 8 {
		t.Errorf("relay refused %d messages with 421 in its 2 s window, want a few (the pool pauses as a whole)", refused)
	}
	after := map[string]bool{}
	for _, m := range relay.Messages() {
		// A message whose recipient was accepted before the window was on
		// the wire when it began: its data may end inside it.
		if m.At.After(start) && m.At.Before(end) && !onWire[m.To[0]] {
			t.Errorf("message to %v accepted at %v, inside the throttling window", m.To, m.At)
		}
		if m.At.After(end) {
			_, dom, _ := strings.Cut(m.To[0], "@")
			after[dom] = true
		}
	}
	if len(after) != len(domains) {
		t.Errorf("after the throttling ended, mail went to %d domains (%v), want all %d", len(after), after, len(domains))
	}
}

// TestRelayRuleDoesNotHoldTheConnection: through a relay with a single
// connection, a provider's rule of one message a second still paces that
// provider's mail, and the other domains' mail goes out meanwhile over the
// same connection instead of waiting behind it.
func TestRelayRuleDoesNotHoldTheConnection(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the built binary")
	}
	port := e2e.FreePort(t)
	srvTLS, caFile := e2e.ThrowawayCA(t, "127.0.0.2")
	relay := e2e.StartReceiver(t, "127.0.0.2", port, e2e.ReceiverOptions{TLS: srvTLS, Domain: "relay.test"})
	h := e2e.Start(t, e2e.Options{Transport: "relay", Env: []string{
		fmt.Sprintf("HERALD_RELAY=smtp://127.0.0.2:%d?connections=1&dkim=relay", port), "SSL_CERT_FILE=" + caFile}})
	rule(t, h, url.Values{"name": {"slowprov"}, "domains": {"slow.test"}, "per_second": {"1"}, "per_minute": {"60"},
		"max_connections": {"2"}, "backoff_min_seconds": {"60"}, "backoff_max_seconds": {"600"}, "position": {"50"}})
	emails := addresses(8, "slow.test")
	for _, d := range []string{"alpha.test", "beta.test", "gamma.test", "delta.test"} {
		emails = append(emails, addresses(10, d)...)
	}
	list := h.List(t, "Readers", emails...)
	id := h.NewCampaign(t, e2e.Campaign{FromEmail: "hello@news.example", Lists: []int64{list}})
	h.StartCampaign(t, id)
	st := h.WaitCampaign(t, id, 60*time.Second, "finished")
	if st.Counters["sent"] != 48 {
		t.Fatalf("counters = %v, want 48 sent", st.Counters)
	}
	var slow []time.Time
	var lastSlow, lastOther time.Time
	for _, m := range relay.Messages() {
		if strings.HasSuffix(m.To[0], "@slow.test") {
			slow = append(slow, m.At)
			if m.At.After(lastSlow) {
				lastSlow = m.At
			}
		} else if m.At.After(lastOther) {
			lastOther = m.At
		}
	}
	if p := peakIn(slow, time.Second); p > 1 {
		t.Errorf("slow.test got %d messages in one second through the relay, want its rule's 1", p)
	}
	// slow.test's eight messages span seven seconds at least; the others'
	// forty (the default rule: 5 a second per domain) about two.
	t.Logf("last slow.test message %v after the last of the others", lastSlow.Sub(lastOther).Round(time.Millisecond))
	if lastOther.After(lastSlow.Add(-3 * time.Second)) {
		t.Errorf("the other domains' last message came %v before slow.test's last, want them done while slow.test waits for its rule (>= 3s before)",
			lastSlow.Sub(lastOther).Round(time.Millisecond))
	}
}
