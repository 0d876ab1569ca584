package e2e_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/mail"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"
	"github.com/emersion/go-msgauth/authres"
	"github.com/emersion/go-msgauth/dkim"

	"github.com/herald-mail/herald/internal/e2e"
	"github.com/herald-mail/herald/models"
)

// placementMTA is the receiving side of two providers in front of one
// Dovecot: it verifies the DKIM signature against the test's DNS, adds
// its Authentication-Results as a receiving MTA does, and files the
// message by its rule: mail to junk.test goes to Spam (with SPF softfail,
// as that provider judged the sending address), the rest to the inbox.
type placementMTA struct {
	t       *testing.T
	dns     *e2e.DNS
	imap    *e2e.Dovecot
	users   map[string]string // seed address → IMAP user
	mu      sync.Mutex
	written map[string]string // seed address → the Authentication-Results added
}

func (p *placementMTA) deliver(m e2e.Message) {
	res := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", p.dns.Addr)
	}}
	vs, err := dkim.VerifyWithOptions(bytes.NewReader(m.Data), &dkim.VerifyOptions{LookupTXT: func(name string) ([]string, error) {
		return res.LookupTXT(context.Background(), name)
	}})
	dkimRes := &authres.DKIMResult{Value: authres.ResultNone}
	if err == nil && len(vs) > 0 {
		dkimRes = &authres.DKIMResult{Value: authres.ResultPass, Domain: vs[0].Domain}
		if vs[0].Err != nil {
			dkimRes.Value, dkimRes.Reason = authres.ResultFail, vs[0].Err.Error()
		}
	}
	msg, _ := mail.ReadMessage(bytes.NewReader(m.Data))
	fromDomain := ""
	if a, err := mail.ParseAddress(msg.Header.Get("From")); err == nil {
		fromDomain = a.Address[strings.LastIndexByte(a.Address, '@')+1:]
	}
	dmarc := authres.ResultValue(authres.ResultFail)
	if dkimRes.Value == authres.ResultPass && (dkimRes.Domain == fromDomain || strings.HasSuffix(fromDomain, "."+dkimRes.Domain)) {
		dmarc = authres.ResultPass
	}
	for _, to := range m.To {
		if p.users[to] == "" {
			continue // a subscriber of the test's list, not a seed
		}
		spf, folder, host := authres.ResultValue(authres.ResultPass), "INBOX", "mx.inbox.test"
		if strings.HasSuffix(to, "@junk.test") {
			spf, folder, host = authres.ResultSoftFail, "Spam", "mx.junk.test"
		}
		field := authres.Format(host, []authres.Result{
			&authres.SPFResult{Value: spf, From: m.From},
			dkimRes,
			&authres.DMARCResult{Value: dmarc, From: fromDomain},
		})
		p.mu.Lock()
		p.written[to] = field
		p.mu.Unlock()
		p.imap.Deliver(p.t, p.users[to], folder, append([]byte("Authentication-Results: "+field+"\r\n"), m.Data...))
	}
}

// TestPlacementInboxAndSpam runs the built binary with the direct
// transport: a placement test of a campaign goes to two seed mailboxes on
// a real Dovecot, one provider files it into Spam; the test's page
// reports inbox for one and spam for the other, with each receiver's
// SPF, DKIM and DMARC verdicts.
func TestPlacementInboxAndSpam(t *testing.T) {
	t.Parallel() // functional: no rate or clock is measured, so it may share the machine
	if testing.Short() {
		t.Skip("starts the built binary")
	}
	imap := e2e.StartDovecot(t, map[string]string{"inboxseed": "pw-inbox", "junkseed": "pw junk/?"})
	dns := e2e.StartDNS(t)
	port := e2e.FreePort(t)
	mta := &placementMTA{t: t, dns: dns, imap: imap, written: map[string]string{},
		users: map[string]string{"seed@inbox.test": "inboxseed", "seed@junk.test": "junkseed"}}
	rcv := e2e.StartReceiver(t, "127.0.0.2", port, e2e.ReceiverOptions{Deliver: mta.deliver})
	dns.Provider(t, "mx.seeds.test", "127.0.0.2", "inbox.test", "junk.test")

	h := e2e.Start(t, e2e.Options{Transport: "direct", DNS: dns, MXPort: port,
		Env: []string{"SSL_CERT_FILE=" + imap.CAFile, "HERALD_PLACEMENT_POLL=300ms"}})
	h.SendingDomain(t, dns, "sender.example")
	list := h.List(t, "Readers", "ann@rcpt.test")
	id := h.NewCampaign(t, e2e.Campaign{Name: "Spring news", FromEmail: "news@sender.example", Lists: []int64{list}})

	d := h.Dashboard(t)
	for _, s := range []struct{ addr, provider, url string }{
		{"seed@inbox.test", "Inbox Mail", "imap://inboxseed:pw-inbox@" + imap.Addr},
		{"seed@junk.test", "Junk Mail", "imap://junkseed:" + url.PathEscape("pw junk/?") + "@" + imap.Addr},
	} {
		if code, body := d.Post(t, "/deliverability/placement/seeds", url.Values{"address": {s.addr}, "provider": {s.provider}, "imap_url": {s.url}}); code != http.StatusSeeOther {
			t.Fatalf("add seed %s = %d: %.400s", s.addr, code, body)
		}
	}
	// A bad URL is refused with a message beside the field.
	if code, body := d.Post(t, "/deliverability/placement/seeds", url.Values{"address": {"x@inbox.test"}, "provider": {"X"}, "imap_url": {"http://x"}}); code != http.StatusUnprocessableEntity || !strings.Contains(body, "imaps://user:password@host:993") {
		t.Errorf("bad IMAP URL = %d, want 422 with the expected form", code)
	}
	_, seedsPage := d.Get(t, "/deliverability/placement/seeds")
	if strings.Contains(seedsPage, "pw-inbox") {
		t.Errorf("the seeds page shows a password")
	}

	start := time.Now()
	code, loc := d.Post(t, "/deliverability/placement", url.Values{"campaign_id": {fmt.Sprint(id)}})
	if code != http.StatusSeeOther || !strings.HasPrefix(loc, "/deliverability/placement/") {
		t.Fatalf("start placement test = %d %q", code, loc)
	}
	var doc *goquery.Document
	e2e.Eventually(t, 60*time.Second, "the placement test to finish", func() bool {
		_, body := d.Get(t, loc)
		doc, _ = goquery.NewDocumentFromReader(strings.NewReader(body))
		return doc.Find(`[data-testid="placement-results"]`).AttrOr("data-status", "") == "done"
	})
	t.Logf("placement test finished in %v", time.Since(start).Round(time.Millisecond))

	if n := rcv.Count(); n != 2 {
		t.Errorf("receiver got %d messages, want one per seed", n)
	}
	for _, m := range rcv.Messages() {
		if !bytes.Contains(m.Data, []byte("\r\nX-Herald-Placement: ")) {
			t.Errorf("copy to %v has no X-Herald-Placement header", m.To)
		}
	}
	want := map[string]struct{ placement, folder, spf string }{
		"seed@inbox.test": {"inbox", "INBOX", "pass"},
		"seed@junk.test":  {"spam", "Spam", "softfail"},
	}
	for addr, w := range want {
		row := doc.Find(fmt.Sprintf(`tr[data-testid="placement-%s"]`, addr))
		if row.Length() != 1 {
			t.Fatalf("no result row for %s", addr)
		}
		cells := row.Find("td").Map(func(_ int, s *goquery.Selection) string { return strings.TrimSpace(s.Text()) })
		t.Logf("%s: %v", addr, cells)
		if got := row.AttrOr("data-placement", ""); got != w.placement {
			t.Errorf("%s placement = %q, want %q", addr, got, w.placement)
		}
		if cells[3] != w.folder {
			t.Errorf("%s folder = %q, want %q", addr, cells[3], w.folder)
		}
		if !strings.HasSuffix(cells[4], "s") {
			t.Errorf("%s arrival = %q, want a duration", addr, cells[4])
		}
		// The verdicts as the receiver wrote them: SPF by its rule, DKIM
		// verified against the test's DNS, DMARC from DKIM's alignment.
		mta.mu.Lock()
		field := mta.written[addr]
		mta.mu.Unlock()
		spf, dkimV, dmarc := row.Find(`[data-testid="spf"]`).Text(), row.Find(`[data-testid="dkim"]`).Text(), row.Find(`[data-testid="dmarc"]`).Text()
		if spf != w.spf || dkimV != "pass" || dmarc != "pass" {
			t.Errorf("%s verdicts spf=%s dkim=%s dmarc=%s, want spf=%s dkim=pass dmarc=pass (receiver wrote %q)", addr, spf, dkimV, dmarc, w.spf, field)
		}
	}
	providers := doc.Find(`[data-testid="placement-providers"] tbody tr`).Map(func(_ int, s *goquery.Selection) string {
		return strings.Join(s.Find("td").Map(func(_ int, c *goquery.Selection) string { return strings.TrimSpace(c.Text()) }), " ")
	})
	if strings.Join(providers, " | ") != "Inbox Mail 1 1 0 0 0 | Junk Mail 1 0 1 0 0" {
		t.Errorf("per provider = %q", providers)
	}
	if s := doc.Find(`[data-testid="placement-summary"]`).Text(); !strings.Contains(s, "50%") {
		t.Errorf("summary = %q, want 50%% in the inbox", s)
	}
}

// TestPlacementGate runs the built binary: two campaigns with a placement
// gate start through the dashboard; each is held paused while its test
// goes to the seeds. With one seed of two in Spam, the campaign wanting
// 100% stays paused with the reason and its subscriber never gets it;
// the one wanting 50% resumes by itself and finishes.
func TestPlacementGate(t *testing.T) {
	t.Parallel() // functional: no rate or clock is measured, so it may share the machine
	if testing.Short() {
		t.Skip("starts the built binary")
	}
	imap := e2e.StartDovecot(t, map[string]string{"inboxseed": "pw-inbox", "junkseed": "pw-junk"})
	dns := e2e.StartDNS(t)
	port := e2e.FreePort(t)
	mta := &placementMTA{t: t, dns: dns, imap: imap, written: map[string]string{},
		users: map[string]string{"seed@inbox.test": "inboxseed", "seed@junk.test": "junkseed"}}
	rcv := e2e.StartReceiver(t, "127.0.0.2", port, e2e.ReceiverOptions{Deliver: mta.deliver})
	dns.Provider(t, "mx.seeds.test", "127.0.0.2", "inbox.test", "junk.test", "rcpt.test")
	h := e2e.Start(t, e2e.Options{Transport: "direct", DNS: dns, MXPort: port,
		Env: []string{"SSL_CERT_FILE=" + imap.CAFile, "HERALD_PLACEMENT_POLL=300ms"}})
	h.SendingDomain(t, dns, "sender.example")
	d := h.Dashboard(t)
	for _, s := range []struct{ addr, user, pass string }{{"seed@inbox.test", "inboxseed", "pw-inbox"}, {"seed@junk.test", "junkseed", "pw-junk"}} {
		if code, body := d.Post(t, "/deliverability/placement/seeds", url.Values{"address": {s.addr}, "provider": {"P"},
			"imap_url": {"imap://" + s.user + ":" + s.pass + "@" + imap.Addr}}); code != http.StatusSeeOther {
			t.Fatalf("add seed %s = %d: %.400s", s.addr, code, body)
		}
	}
	strict := h.NewCampaign(t, e2e.Campaign{Name: "Strict", FromEmail: "news@sender.example", Lists: []int64{h.List(t, "Strict readers", "strict@rcpt.test")}})
	lenient := h.NewCampaign(t, e2e.Campaign{Name: "Lenient", FromEmail: "news@sender.example", Lists: []int64{h.List(t, "Lenient readers", "lenient@rcpt.test")}})
	if code, _ := d.Post(t, "/deliverability/placement/gates", url.Values{"campaign_id": {fmt.Sprint(strict)}, "min_inbox": {"101"}}); code != http.StatusUnprocessableEntity {
		t.Errorf("gate of 101%% = %d, want 422", code)
	}
	for id, min := range map[int64]string{strict: "100", lenient: "50"} {
		if code, body := d.Post(t, "/deliverability/placement/gates", url.Values{"campaign_id": {fmt.Sprint(id)}, "min_inbox": {min}}); code != http.StatusSeeOther {
			t.Fatalf("set gate = %d: %.400s", code, body)
		}
		if code, body := d.Post(t, fmt.Sprintf("/campaigns/%d/start", id), url.Values{"confirm": {"yes"}}); code != http.StatusSeeOther {
			t.Fatalf("start campaign %d = %d: %.400s", id, code, body)
		}
	}
	gateState := func(id int64) (string, string) {
		_, body := d.Get(t, "/deliverability/placement")
		doc, _ := goquery.NewDocumentFromReader(strings.NewReader(body))
		row := doc.Find(fmt.Sprintf(`tr[data-testid="gate-%d"]`, id))
		return row.AttrOr("data-state", ""), strings.TrimSpace(row.Find(`[data-testid="gate-reason"]`).Text())
	}
	e2e.Eventually(t, 60*time.Second, "both gates decided", func() bool {
		a, _ := gateState(strict)
		b, _ := gateState(lenient)
		return a != "testing" && a != "armed" && b != "testing" && b != "armed"
	})
	st := h.WaitCampaign(t, lenient, 60*time.Second, "finished")
	t.Logf("lenient: %+v", st)
	if state, _ := gateState(lenient); state != "passed" {
		t.Errorf("lenient gate = %q, want passed", state)
	}
	state, reason := gateState(strict)
	if state != "failed" || !strings.Contains(reason, "50% of the seeds") || !strings.Contains(reason, "100% required") {
		t.Errorf("strict gate = %q %q, want failed with the figures", state, reason)
	}
	// Give the strict campaign the time the lenient one took: it must
	// still be paused, its subscriber never contacted.
	time.Sleep(2 * time.Second)
	if st := h.WaitCampaign(t, strict, 5*time.Second, "paused"); st.Counters["sent"] != 0 {
		t.Errorf("strict campaign counters = %v, want nothing sent", st.Counters)
	}
	var api struct {
		Data struct {
			PauseReason string `json:"pause_reason"`
		} `json:"data"`
	}
	h.MustAPI(t, http.StatusOK, "GET", fmt.Sprintf("/campaigns/%d", strict), nil, &api)
	if !strings.Contains(api.Data.PauseReason, "placement gate") || !strings.Contains(api.Data.PauseReason, "100% required") {
		t.Errorf("strict campaign's pause_reason = %q, want the gate's reason (its page's banner)", api.Data.PauseReason)
	}
	if rcv.Contacted("strict@rcpt.test") {
		t.Error("the strict campaign's subscriber got it although the gate failed")
	}
	if !rcv.Contacted("lenient@rcpt.test") {
		t.Error("the lenient campaign's subscriber did not get it")
	}
	seeds := 0
	for _, m := range rcv.Messages() {
		if strings.HasSuffix(m.To[0], ".test") && bytes.Contains(m.Data, []byte("\r\nX-Herald-Placement: ")) {
			seeds++
		}
	}
	if seeds != 4 {
		t.Errorf("%d placement copies at the receiver, want 2 per campaign", seeds)
	}
}

// TestPlacementGateScheduled runs the built binary: two campaigns are
// scheduled a few seconds ahead, then get a placement gate through the
// dashboard's form (scheduled campaigns take one). When their time comes
// the engine starts them through the same gate as Send now: each is held
// paused while its test goes to the seeds. With one seed of two in
// Spam, the one wanting 100% stays paused with the reason and its
// subscriber is never contacted; the one wanting 50% finishes.
// On both databases: the engine's scheduled start is one change.
func TestPlacementGateScheduled(t *testing.T) {
	t.Parallel() // functional: no rate or clock is measured, so it may share the machine
	if testing.Short() {
		t.Skip("starts the built binary")
	}
	t.Run("sqlite", func(t *testing.T) { placementGateScheduled(t, "") })
	t.Run("postgres", func(t *testing.T) { placementGateScheduled(t, e2e.PostgresURL(t)) })
}

func placementGateScheduled(t *testing.T, dbURL string) {
	imap := e2e.StartDovecot(t, map[string]string{"inboxseed": "pw-inbox", "junkseed": "pw-junk"})
	dns := e2e.StartDNS(t)
	port := e2e.FreePort(t)
	mta := &placementMTA{t: t, dns: dns, imap: imap, written: map[string]string{},
		users: map[string]string{"seed@inbox.test": "inboxseed", "seed@junk.test": "junkseed"}}
	rcv := e2e.StartReceiver(t, "127.0.0.2", port, e2e.ReceiverOptions{Deliver: mta.deliver})
	dns.Provider(t, "mx.seeds.test", "127.0.0.2", "inbox.test", "junk.test", "rcpt.test")
	h := e2e.Start(t, e2e.Options{Transport: "direct", DNS: dns, MXPort: port, DatabaseURL: dbURL,
		Env: []string{"SSL_CERT_FILE=" + imap.CAFile, "HERALD_PLACEMENT_POLL=300ms"}})
	h.SendingDomain(t, dns, "sender.example")
	d := h.Dashboard(t)
	for _, s := range []struct{ addr, user, pass string }{{"seed@inbox.test", "inboxseed", "pw-inbox"}, {"seed@junk.test", "junkseed", "pw-junk"}} {
		if code, body := d.Post(t, "/deliverability/placement/seeds", url.Values{"address": {s.addr}, "provider": {"P"},
			"imap_url": {"imap://" + s.user + ":" + s.pass + "@" + imap.Addr}}); code != http.StatusSeeOther {
			t.Fatalf("add seed %s = %d: %.400s", s.addr, code, body)
		}
	}
	strict := h.NewCampaign(t, e2e.Campaign{Name: "Strict later", FromEmail: "news@sender.example", Lists: []int64{h.List(t, "Strict readers", "strict@rcpt.test")}})
	lenient := h.NewCampaign(t, e2e.Campaign{Name: "Lenient later", FromEmail: "news@sender.example", Lists: []int64{h.List(t, "Lenient readers", "lenient@rcpt.test")}})
	// The dashboard's schedule form has minute resolution: the store's
	// ScheduleCampaign (what the form and the API call) sets a time a few
	// seconds ahead.
	at := time.Now().Add(12 * time.Second)
	for _, id := range []int64{strict, lenient} {
		if err := h.Store(t).ScheduleCampaign(context.Background(), id, at); err != nil {
			t.Fatal(err)
		}
	}
	for id, min := range map[int64]string{strict: "100", lenient: "50"} {
		if code, body := d.Post(t, "/deliverability/placement/gates", url.Values{"campaign_id": {fmt.Sprint(id)}, "min_inbox": {min}}); code != http.StatusSeeOther {
			t.Fatalf("set gate on scheduled campaign %d = %d: %.400s", id, code, body)
		}
	}
	gateState := func(id int64) (string, string) {
		_, body := d.Get(t, "/deliverability/placement")
		doc, _ := goquery.NewDocumentFromReader(strings.NewReader(body))
		row := doc.Find(fmt.Sprintf(`tr[data-testid="gate-%d"]`, id))
		return row.AttrOr("data-state", ""), strings.TrimSpace(row.Find(`[data-testid="gate-reason"]`).Text())
	}
	if time.Now().Before(at) {
		if a, b := h.WaitCampaign(t, strict, time.Second, "scheduled"), h.WaitCampaign(t, lenient, time.Second, "scheduled"); a.Status != "scheduled" || b.Status != "scheduled" {
			t.Fatalf("before their time: %q %q, want scheduled", a.Status, b.Status)
		}
		if a, _ := gateState(strict); a != "armed" {
			t.Errorf("strict gate before its time = %q, want armed", a)
		}
	}
	e2e.Eventually(t, 90*time.Second, "both gates decided", func() bool {
		a, _ := gateState(strict)
		b, _ := gateState(lenient)
		return a != "testing" && a != "armed" && b != "testing" && b != "armed"
	})
	st := h.WaitCampaign(t, lenient, 60*time.Second, "finished")
	t.Logf("lenient: %+v", st)
	if state, _ := gateState(lenient); state != "passed" {
		t.Errorf("lenient gate = %q, want passed", state)
	}
	state, reason := gateState(strict)
	if state != "failed" || !strings.Contains(reason, "50% of the seeds") || !strings.Contains(reason, "100% required") {
		t.Errorf("strict gate = %q %q, want failed with the figures", state, reason)
	}
	// Give the strict campaign more time: it must still be paused, its
	// subscriber never contacted.
	time.Sleep(2 * time.Second)
	if st := h.WaitCampaign(t, strict, 5*time.Second, "paused"); st.Counters["sent"] != 0 {
		t.Errorf("strict campaign counters = %v, want nothing sent", st.Counters)
	}
	var api struct {
		Data struct {
			PauseReason string `json:"pause_reason"`
		} `json:"data"`
	}
	h.MustAPI(t, http.StatusOK, "GET", fmt.Sprintf("/campaigns/%d", strict), nil, &api)
	if !strings.Contains(api.Data.PauseReason, "placement gate") || !strings.Contains(api.Data.PauseReason, "100% required") {
		t.Errorf("strict campaign's pause_reason = %q, want the gate's reason", api.Data.PauseReason)
	}
	if rcv.Contacted("strict@rcpt.test") {
		t.Error("the strict campaign's subscriber got it although the gate failed")
	}
	if !rcv.Contacted("lenient@rcpt.test") {
		t.Error("the lenient campaign's subscriber did not get it")
	}
	seeds := 0
	for _, m := range rcv.Messages() {
		if strings.HasSuffix(m.To[0], ".test") && bytes.Contains(m.Data, []byte("\r\nX-Herald-Placement: ")) {
			seeds++
		}
	}
	if seeds != 4 {
		t.Errorf("%d placement copies at the receiver, want 2 per campaign", seeds)
	}
	// The scheduled starts are audited as the scheduler's, held by the gate.
	entries, _, err := h.Store(t).AuditPage(context.Background(), models.AuditQuery{Actor: "scheduler", ActionPrefix: "campaign.start"})
	if err != nil {
		t.Fatal(err)
	}
	held := 0
	for _, e := range entries {
		if e.Actor == "scheduler" && strings.Contains(e.Summary, "held by the placement gate") {
			held++
		}
	}
	if held != 2 {
		t.Errorf("%d scheduled starts audited as held by the gate, want 2", held)
	}
	// A started campaign is past its gate: the form refuses it.
	if code, _ := d.Post(t, "/deliverability/placement/gates", url.Values{"campaign_id": {fmt.Sprint(lenient)}, "min_inbox": {"50"}}); code != http.StatusUnprocessableEntity {
		t.Errorf("gate on a finished campaign = %d, want 422", code)
	}
}

// TestPlacementGateScheduledNoSeeds runs the built binary: a scheduled
// campaign whose gate cannot send its test when its time comes (there
// are no seed mailboxes) is held paused with the reason, never sent
// ungated.
func TestPlacementGateScheduledNoSeeds(t *testing.T) {
	t.Parallel() // functional: no rate or clock is measured, so it may share the machine
	if testing.Short() {
		t.Skip("starts the built binary")
	}
	h := e2e.Start(t, e2e.Options{})
	d := h.Dashboard(t)
	id := h.NewCampaign(t, e2e.Campaign{Name: "Gated, no seeds", FromEmail: "hello@news.example", Lists: []int64{h.List(t, "Readers", "reader@example.org")}})
	if err := h.Store(t).ScheduleCampaign(context.Background(), id, time.Now().Add(4*time.Second)); err != nil {
		t.Fatal(err)
	}
	if code, body := d.Post(t, "/deliverability/placement/gates", url.Values{"campaign_id": {fmt.Sprint(id)}, "min_inbox": {"80"}}); code != http.StatusSeeOther {
		t.Fatalf("set gate = %d: %.400s", code, body)
	}
	h.WaitCampaign(t, id, 30*time.Second, "paused", "running", "finished")
	time.Sleep(2 * time.Second) // a start would have sent by now (capture)
	st := h.WaitCampaign(t, id, 5*time.Second, "paused")
	if st.Counters["sent"] != 0 {
		t.Errorf("counters = %v, want nothing sent", st.Counters)
	}
	var api struct {
		Data struct {
			PauseReason string `json:"pause_reason"`
		} `json:"data"`
	}
	h.MustAPI(t, http.StatusOK, "GET", fmt.Sprintf("/campaigns/%d", id), nil, &api)
	if !strings.Contains(api.Data.PauseReason, "no seed mailboxes") {
		t.Errorf("pause_reason = %q, want the gate's missing seeds", api.Data.PauseReason)
	}
}
