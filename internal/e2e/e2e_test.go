package e2e_test

import (
	"bytes"
	"net/mail"
	"strings"
	"testing"
	"time"

	"github.com/herald-mail/herald/internal/e2e"
)

// TestDirectCampaign sends a small campaign with the built binary over
// direct delivery: MX lookups in the local DNS, two providers on
// 127.0.0.2 and 127.0.0.3, a sending domain set up through the dashboard.
func TestDirectCampaign(t *testing.T) {
	t.Parallel() // functional: no rate or clock is measured, so it may share the machine
	if testing.Short() {
		t.Skip("starts the built binary")
	}
	dns := e2e.StartDNS(t)
	port := e2e.FreePort(t)
	a := e2e.StartReceiver(t, "127.0.0.2", port, e2e.ReceiverOptions{})
	b := e2e.StartReceiver(t, "127.0.0.3", port, e2e.ReceiverOptions{})
	dns.Provider(t, "mx.alpha.test", "127.0.0.2", "alpha.test")
	dns.Provider(t, "mx.beta.test", "127.0.0.3", "beta.test")

	h := e2e.Start(t, e2e.Options{Transport: "direct", DNS: dns, MXPort: port})
	h.SendingDomain(t, dns, "news.example")
	list := h.List(t, "E2E readers", "ann@alpha.test", "bob@alpha.test", "cat@beta.test")
	id := h.NewCampaign(t, e2e.Campaign{FromEmail: "hello@news.example", Lists: []int64{list}})
	h.StartCampaign(t, id)
	st := h.WaitCampaign(t, id, 60*time.Second, "finished")

	if got := st.Counters["sent"]; got != 3 {
		t.Errorf("counters.sent = %d, want 3 (counters %v)", got, st.Counters)
	}
	if a.Count() != 2 || b.Count() != 1 {
		t.Fatalf("receivers got %d and %d messages, want 2 and 1", a.Count(), b.Count())
	}
	m := b.Messages()[0]
	if m.To[0] != "cat@beta.test" {
		t.Errorf("beta got a message for %v", m.To)
	}
	msg, err := mail.ReadMessage(bytes.NewReader(m.Data))
	if err != nil {
		t.Fatalf("read message: %v", err)
	}
	if from := msg.Header.Get("From"); !strings.Contains(from, "hello@news.example") {
		t.Errorf("From = %q", from)
	}
	if !strings.Contains(msg.Header.Get("DKIM-Signature"), "d=news.example") {
		t.Errorf("DKIM-Signature = %q, want d=news.example", msg.Header.Get("DKIM-Signature"))
	}
}
