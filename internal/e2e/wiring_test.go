package e2e_test

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/herald-mail/herald/internal/e2e"
	"github.com/herald-mail/herald/models"
)

// TestRefusalsAreBounces: a receiver answers 550 5.1.1 at RCPT for some
// recipients. Those addresses end suppressed with hard bounce rows, the
// report's counters and words say so, and a second campaign to the same
// list does not offer them to the receiver again.
func TestRefusalsAreBounces(t *testing.T) {
	t.Parallel() // functional: no rate or clock is measured, so it may share the machine
	if testing.Short() {
		t.Skip("starts the built binary")
	}
	dns := e2e.StartDNS(t)
	port := e2e.FreePort(t)
	unknown := map[string]bool{"gone1@alpha.test": true, "gone2@alpha.test": true, "gone3@alpha.test": true}
	rcv := e2e.StartReceiver(t, "127.0.0.2", port, e2e.ReceiverOptions{Rcpt: func(rcpt string) *smtp.SMTPError {
		if unknown[strings.ToLower(rcpt)] {
			return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "No such user here"}
		}
		return nil
	}})
	dns.Provider(t, "mx.alpha.test", "127.0.0.2", "alpha.test")

	h := e2e.Start(t, e2e.Options{Transport: "direct", DNS: dns, MXPort: port})
	h.SendingDomain(t, dns, "news.example")
	list := h.List(t, "Readers", "ann@alpha.test", "gone1@alpha.test", "bob@alpha.test", "gone2@alpha.test",
		"cat@alpha.test", "gone3@alpha.test", "dan@alpha.test")

	first := h.NewCampaign(t, e2e.Campaign{FromEmail: "hello@news.example", Lists: []int64{list}})
	h.StartCampaign(t, first)
	st := h.WaitCampaign(t, first, 60*time.Second, "finished")
	if st.Counters["sent"] != 4 || st.Counters["bounced"] != 3 {
		t.Errorf("first campaign counters = %v, want 4 sent, 3 bounced", st.Counters)
	}

	s := h.Store(t)
	ctx := context.Background()
	for addr := range unknown {
		if ok, err := s.IsSuppressed(ctx, addr); err != nil || !ok {
			t.Errorf("IsSuppressed(%s) = %v, %v; want true", addr, ok, err)
		}
	}
	if ok, _ := s.IsSuppressed(ctx, "ann@alpha.test"); ok {
		t.Error("ann@alpha.test, who was delivered, is suppressed")
	}
	var rows []struct {
		Kind, Category, Status string
	}
	if err := s.DB().Raw("SELECT kind, category, status FROM bounces WHERE campaign_id = ?", first).Scan(&rows).Error; err != nil {
		t.Fatal(err)
	}
	if len(rows) != 3 {
		t.Fatalf("bounces rows = %+v, want 3", rows)
	}
	for _, r := range rows {
		if r.Kind != "hard" || r.Category != "user_unknown" || r.Status != "5.1.1" {
			t.Errorf("bounce row %+v, want hard user_unknown 5.1.1", r)
		}
	}
	if bs, err := s.CampaignBounceStats(ctx, first); err != nil || bs.Hard != 3 || bs.Soft != 0 {
		t.Errorf("CampaignBounceStats = %+v, %v; want 3 hard, 0 soft", bs, err)
	}

	// The report's counters and words.
	d := h.Dashboard(t)
	code, page := d.Get(t, fmt.Sprintf("/campaigns/%d/report", first))
	if code != 200 {
		t.Fatalf("report = %d", code)
	}
	for _, want := range []string{
		"3 refused or bounced · 3 hard bounces (addresses suppressed) · 0 soft bounces",
		"the 3 hard-bounced addresses are suppressed now",
		"refused while sending",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("report lacks %q", want)
		}
	}

	// A second campaign to the same list does not offer them again.
	second := h.NewCampaign(t, e2e.Campaign{FromEmail: "hello@news.example", Lists: []int64{list}})
	h.StartCampaign(t, second)
	st = h.WaitCampaign(t, second, 60*time.Second, "finished")
	if st.Counters["sent"] != 4 || st.Counters["suppressed"] != 3 || st.Counters["bounced"] != 0 {
		t.Errorf("second campaign counters = %v, want 4 sent, 3 suppressed, 0 bounced", st.Counters)
	}
	offered := map[string]int{}
	for _, r := range rcv.Refusals() {
		offered[strings.ToLower(r.Rcpt)]++
	}
	for addr := range unknown {
		if offered[addr] != 1 {
			t.Errorf("%s was offered to the receiver %d times over two campaigns, want 1", addr, offered[addr])
		}
	}
	if rcv.Count() != 8 {
		t.Errorf("receiver accepted %d messages, want 8 (4 per campaign)", rcv.Count())
	}
}

// TestDialFailuresAsServed: with the binary as serve wires it, recipients
// at a null MX domain and at a domain that does not exist bounce at their
// first attempt (and are suppressed), while mail to a working domain goes
// out.
func TestDialFailuresAsServed(t *testing.T) {
	t.Parallel() // functional: no rate or clock is measured, so it may share the machine
	if testing.Short() {
		t.Skip("starts the built binary")
	}
	dns := e2e.StartDNS(t)
	port := e2e.FreePort(t)
	ok := e2e.StartReceiver(t, "127.0.0.2", port, e2e.ReceiverOptions{})
	dns.Provider(t, "mx.alpha.test", "127.0.0.2", "alpha.test")
	dns.Add(t, "nullmx.test. 300 IN MX 0 .")
	// noaddr.test names an MX host that has no address.
	dns.Add(t, "noaddr.test. 300 IN MX 10 mx.noaddr.test.", "mx.noaddr.test. 300 IN TXT \"no address\"")

	h := e2e.Start(t, e2e.Options{Transport: "direct", DNS: dns, MXPort: port})
	h.SendingDomain(t, dns, "news.example")
	list := h.List(t, "Mixed", "ann@alpha.test", "a@nullmx.test", "b@nullmx.test", "c@nowhere.test", "d@noaddr.test")
	id := h.NewCampaign(t, e2e.Campaign{FromEmail: "hello@news.example", Lists: []int64{list}})
	h.StartCampaign(t, id)
	st := h.WaitCampaign(t, id, 60*time.Second, "finished")
	if st.Counters["sent"] != 1 || st.Counters["bounced"] != 4 || st.Counters["deferred"] != 0 {
		t.Errorf("counters = %v, want 1 sent, 4 bounced, 0 deferred", st.Counters)
	}
	if ok.Count() != 1 {
		t.Errorf("alpha's receiver got %d messages, want 1", ok.Count())
	}
	s := h.Store(t)
	var rows []struct {
		Email    string
		Status   string
		Attempts int
		Kind     string
		Category string
	}
	if err := s.DB().Raw(`SELECT s.email, d.status, d.attempts, COALESCE(b.kind, '') AS kind, COALESCE(b.category, '') AS category
		FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id LEFT JOIN bounces b ON b.delivery_id = d.id
		WHERE d.campaign_id = ? ORDER BY s.email`, id).Scan(&rows).Error; err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		if r.Email == "ann@alpha.test" {
			continue
		}
		if r.Status != models.DeliveryBounced || r.Attempts != 1 || r.Kind != "hard" || r.Category != "domain_not_found" {
			t.Errorf("%s: %s after %d attempts, bounce %q %q; want bounced at the first attempt, hard domain_not_found",
				r.Email, r.Status, r.Attempts, r.Kind, r.Category)
		}
		if sup, _ := s.IsSuppressed(context.Background(), r.Email); !sup {
			t.Errorf("%s is not suppressed", r.Email)
		}
	}
	if len(rows) != 5 {
		t.Errorf("deliveries = %d, want 5", len(rows))
	}
}

// TestGreetingRefusalPauses: a receiver that answers 421 at the greeting
// gets a handful of connection attempts, not one per message, and its
// destination is paused with the rule's backoff (a minute by default).
func TestGreetingRefusalPauses(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the built binary")
	}
	dns := e2e.StartDNS(t)
	port := e2e.FreePort(t)
	busy := e2e.StartRefuser(t, "127.0.0.4", port, "421 4.7.0 Too busy, try again later")
	dns.Provider(t, "mx.busy.test", "127.0.0.4", "busy.test")

	h := e2e.Start(t, e2e.Options{Transport: "direct", DNS: dns, MXPort: port})
	h.SendingDomain(t, dns, "news.example")
	var emails []string
	for i := range 40 {
		emails = append(emails, fmt.Sprintf("r%02d@busy.test", i))
	}
	list := h.List(t, "Busy", emails...)
	id := h.NewCampaign(t, e2e.Campaign{FromEmail: "hello@news.example", Lists: []int64{list}})
	h.StartCampaign(t, id)

	e2e.Eventually(t, 30*time.Second, "the destination to be suspended", func() bool {
		return strings.Contains(h.Logs(), "destination suspended")
	})
	// Every delivery is back in the database, due after the pause.
	s := h.Store(t)
	e2e.Eventually(t, 20*time.Second, "every delivery to be released", func() bool {
		var n int64
		s.DB().Raw("SELECT COUNT(*) FROM deliveries WHERE campaign_id = ? AND status IN ('queued', 'deferred')", id).Scan(&n)
		return n == 40
	})
	time.Sleep(3 * time.Second) // nothing more is attempted meanwhile
	conns := len(busy.Connections())
	if conns < 1 || conns > 5 {
		t.Errorf("the refusing receiver saw %d connections, want 1 to 5 (a handful, not one per message)", conns)
	}
	var early int64
	s.DB().Raw("SELECT COUNT(*) FROM deliveries WHERE campaign_id = ? AND next_attempt_at < ?", id,
		time.Now().UTC().Add(30*time.Second)).Scan(&early)
	if early != 0 {
		t.Errorf("%d deliveries are due within 30 s, want none before the pause ends", early)
	}
	var attempted int64
	s.DB().Raw("SELECT COALESCE(SUM(attempts), 0) FROM deliveries WHERE campaign_id = ?", id).Scan(&attempted)
	if attempted > int64(conns) {
		t.Errorf("%d attempts recorded for %d connections, want at most one a connection", attempted, conns)
	}
	// One event per failed connection, not one per message.
	events := strings.Count(h.Logs(), "destination suspended")
	if events < 1 || events > conns {
		t.Errorf("%d suspension events for %d failed connections and 40 messages, want 1 to %d", events, conns, conns)
	}
	t.Logf("connections %d, attempts recorded %d, suspension events %d", conns, attempted, events)
}

// TestSharedMXSharesDestination: two domains whose MX is the same host go
// to one destination under the rule that matches that host: with at most
// one connection, all their messages arrive over a single connection.
func TestSharedMXSharesDestination(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the built binary")
	}
	dns := e2e.StartDNS(t)
	port := e2e.FreePort(t)
	rcv := e2e.StartReceiver(t, "127.0.0.5", port, e2e.ReceiverOptions{})
	dns.Provider(t, "mx.shared.test", "127.0.0.5", "gamma.test", "delta.test")

	h := e2e.Start(t, e2e.Options{Transport: "direct", DNS: dns, MXPort: port})
	h.SendingDomain(t, dns, "news.example")
	d := h.Dashboard(t)
	if code, body := d.Post(t, "/deliverability/rules", url.Values{"name": {"shared"}, "mx_suffixes": {"shared.test"},
		"max_connections": {"1"}, "backoff_min_seconds": {"60"}, "backoff_max_seconds": {"600"}, "position": {"1"}}); code != 303 {
		t.Fatalf("create rule = %d: %s", code, body)
	}
	list := h.List(t, "Shared", "a@gamma.test", "b@delta.test", "c@gamma.test", "d@delta.test", "e@gamma.test", "f@delta.test")
	id := h.NewCampaign(t, e2e.Campaign{FromEmail: "hello@news.example", Lists: []int64{list}})
	h.StartCampaign(t, id)
	st := h.WaitCampaign(t, id, 60*time.Second, "finished")
	if st.Counters["sent"] != 6 {
		t.Fatalf("counters = %v, want 6 sent", st.Counters)
	}
	if rcv.Connections() != 1 {
		t.Errorf("receiver saw %d connections, want 1: gamma.test and delta.test share mx.shared.test's destination and its one connection",
			rcv.Connections())
	}
	if !strings.Contains(h.Logs(), "destination=rule:shared") {
		t.Errorf("no delivery logged to destination rule:shared")
	}
}
