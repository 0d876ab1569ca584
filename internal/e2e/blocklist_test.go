package e2e_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"
	"github.com/emersion/go-smtp"

	"github.com/herald-mail/herald/internal/e2e"
	"github.com/herald-mail/herald/models"
)

// With the binary delivering directly and a local DNS server standing in
// for the blocklists: a pool's address listed on Spamhaus ZEN (127.0.0.2,
// a list whose pause rule an admin turned on) and refused by a second
// Spamhaus list (127.255.255.254, a public resolver) shows one listing
// and one "check not possible" on the Reputation page; one email reaches
// the admin (through the transactional path, at the admin domain's MX);
// the pool's running campaign sends nothing while listed, measured at
// the recipients' MX; it sends once the listing is gone, stops again when
// the address is listed again mid-send, and delivers every message once,
// from the pool's address, in the end.
func TestBlocklistListingPausesPool(t *testing.T) {
	t.Parallel() // functional: no rate or clock is measured, so it may share the machine
	if testing.Short() {
		t.Skip("starts the built binary")
	}
	dns := e2e.StartDNS(t)
	port := e2e.FreePort(t)
	// One message at a time, a quarter of a second each: the campaign is
	// still sending when the listing comes back.
	readers := e2e.StartReceiver(t, "127.0.0.5", port, e2e.ReceiverOptions{Data: func(string, int) *smtp.SMTPError {
		time.Sleep(250 * time.Millisecond)
		return nil
	}})
	admins := e2e.StartReceiver(t, "127.0.0.6", port, e2e.ReceiverOptions{})
	dns.Provider(t, "mx.rbl.test", "127.0.0.5", "rbl.test")
	dns.Provider(t, "mx.herald.test", "127.0.0.6", "herald.test")

	h := e2e.Start(t, e2e.Options{Transport: "direct", DNS: dns, MXPort: port})
	rule(t, h, url.Values{"name": {"one at a time"}, "domains": {"rbl.test"}, "max_connections": {"1"},
		"backoff_min_seconds": {"2"}, "backoff_max_seconds": {"16"}, "position": {"50"}})
	d := h.Dashboard(t)
	ctx := context.Background()
	s := h.Store(t)

	// The admin adds a second Spamhaus list and turns ZEN's pause rule on,
	// through the list settings.
	if code, body := d.Post(t, "/deliverability/reputation/lists", url.Values{"name": {"Spamhaus SBL"}, "zone": {"sbl.spamhaus.org"},
		"kind": {"ip"}, "codes": {"127.0.0.2 SBL listing"}, "delist_url": {"https://check.spamhaus.org/"}, "enabled": {"1"}}); code != http.StatusSeeOther {
		t.Fatalf("add list = %d: %s", code, body)
	}
	lists, err := s.Blocklists(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var zen models.Blocklist
	for _, b := range lists {
		if b.Zone == "zen.spamhaus.org" {
			zen = b
		}
	}
	if zen.ID == 0 {
		t.Fatalf("no default ZEN list among %d lists", len(lists))
	}
	if code, body := d.Post(t, fmt.Sprintf("/deliverability/reputation/lists/%d", zen.ID), url.Values{"name": {zen.Name}, "zone": {zen.Zone},
		"kind": {zen.Kind}, "codes": {zen.Codes}, "delist_url": {zen.DelistURL}, "enabled": {"1"}, "pause_pool": {"1"}}); code != http.StatusSeeOther {
		t.Fatalf("edit ZEN = %d: %s", code, body)
	}
	if code, _ := d.Post(t, "/deliverability/reputation/lists", url.Values{"name": {"Bad"}, "zone": {"not a zone"}, "kind": {"ip"}}); code != http.StatusUnprocessableEntity {
		t.Errorf("a list with a bad zone = %d, want 422", code)
	}

	// The pool and its address, and a campaign sending from it.
	pool := &models.IPPool{Name: "listed"}
	if err := s.CreateIPPool(ctx, pool); err != nil {
		t.Fatal(err)
	}
	if err := s.AddSendingIP(ctx, &models.SendingIP{PoolID: pool.ID, Address: "127.0.0.3", HELO: "out.news.example", Active: true}); err != nil {
		t.Fatal(err)
	}
	h.SendingDomain(t, dns, "news.example")
	list := h.List(t, "Readers", addresses(20, "rbl.test")...)
	id := h.NewCampaign(t, e2e.Campaign{FromEmail: "hello@news.example", Lists: []int64{list}})
	if err := s.DB().Exec("UPDATE campaigns SET ip_pool_id = ? WHERE id = ?", pool.ID, id).Error; err != nil {
		t.Fatal(err)
	}

	// The blocklists' answers, as their DNS servers give them.
	dns.Add(t, "3.0.0.127.zen.spamhaus.org. 300 IN A 127.0.0.2")
	dns.Add(t, "3.0.0.127.sbl.spamhaus.org. 300 IN A 127.255.255.254")
	for range 2 { // a second check of the same listing mails nobody again
		if code, body := d.Post(t, "/deliverability/reputation/check", nil); code != http.StatusSeeOther {
			t.Fatalf("check now = %d: %s", code, body)
		}
	}

	code, body := d.Get(t, "/deliverability/reputation")
	if code != http.StatusOK {
		t.Fatalf("reputation page = %d", code)
	}
	doc, err := goquery.NewDocumentFromReader(strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	listed := doc.Find(`[data-testid="current"] tr[data-status="listed"]`)
	notPossible := doc.Find(`[data-testid="current"] tr[data-status="unavailable"], [data-testid="current"] tr[data-status="error"]`)
	clean := doc.Find(`[data-testid="current"] tr[data-status="clean"]`)
	t.Logf("reputation page: %d listed, %d check not possible, %d not listed", listed.Length(), notPossible.Length(), clean.Length())
	if listed.Length() != 1 || notPossible.Length() != 1 {
		t.Fatalf("rows listed = %d, not possible = %d, want 1 and 1:\n%s", listed.Length(), notPossible.Length(), doc.Find(`[data-testid="current"]`).Text())
	}
	row := doc.Find(`[data-testid="result-127.0.0.3-zen.spamhaus.org"]`)
	if row.AttrOr("data-status", "") != "listed" || !strings.Contains(row.Text(), "SBL") || row.Find(`[data-testid="delist"]`).AttrOr("href", "") != "https://check.spamhaus.org/" {
		t.Errorf("ZEN row = %q (status %q), want listed with the SBL meaning and the delisting link", strings.Join(strings.Fields(row.Text()), " "), row.AttrOr("data-status", ""))
	}
	row = doc.Find(`[data-testid="result-127.0.0.3-sbl.spamhaus.org"]`)
	if row.AttrOr("data-status", "") != "unavailable" || !strings.Contains(row.Text(), "check not possible") ||
		!strings.Contains(row.Text(), "own resolver or a DQS key") {
		t.Errorf("SBL row = %q (status %q), want check not possible with the advice", strings.Join(strings.Fields(row.Text()), " "), row.AttrOr("data-status", ""))
	}
	if doc.Find(`[data-testid="paused-pool-listed"]`).Length() != 1 {
		t.Errorf("the page does not show pool listed as paused")
	}
	if _, home := d.Get(t, "/"); !strings.Contains(home, "127.0.0.3 (pool listed) is listed on the blocklist zen.spamhaus.org") {
		t.Errorf("the dashboard does not warn of the listing")
	}
	if _, ready := d.Get(t, "/compliance/readiness"); !strings.Contains(ready, "Listed: 127.0.0.3 on zen.spamhaus.org") {
		t.Errorf("the readiness panel does not show the listing")
	}

	// One email to the admin about the new listing.
	e2e.Eventually(t, 20*time.Second, "the admin's notice", func() bool { return admins.Count() >= 1 })
	time.Sleep(time.Second)
	notices := admins.Messages()
	t.Logf("admin notices received: %d", len(notices))
	if len(notices) != 1 {
		t.Errorf("admin notices = %d, want 1 (two checks, one new listing)", len(notices))
	}
	if len(notices) > 0 {
		m := notices[0]
		if len(m.To) != 1 || m.To[0] != h.Admin || !strings.Contains(string(m.Data), "Subject: Blocklisted: 127.0.0.3 on Spamhaus ZEN") ||
			!strings.Contains(string(m.Data), "pool listed is paused") {
			t.Errorf("notice to %v:\n%s", m.To, m.Data)
		}
	}

	// The paused pool sends nothing although its campaign runs.
	h.StartCampaign(t, id)
	time.Sleep(5 * time.Second)
	if n := readers.Count(); n != 0 {
		t.Fatalf("the paused pool delivered %d messages, want 0", n)
	}
	var st e2e.CampaignState
	var got struct {
		Data e2e.CampaignState `json:"data"`
	}
	h.MustAPI(t, http.StatusOK, "GET", fmt.Sprintf("/campaigns/%d", id), nil, &got)
	st = got.Data
	t.Logf("after 5s with the pool paused: campaign %s, 0 messages at the receiver", st.Status)
	if st.Status != models.CampaignRunning {
		t.Errorf("campaign status = %q, want running (held by its pool, not paused itself)", st.Status)
	}

	// Delisted: the next check frees the pool and the campaign sends.
	check := func() {
		t.Helper()
		if code, body := d.Post(t, "/deliverability/reputation/check", nil); code != http.StatusSeeOther {
			t.Fatalf("check now = %d: %s", code, body)
		}
	}
	dns.Remove("3.0.0.127.zen.spamhaus.org", "A")
	check()
	e2e.Eventually(t, 30*time.Second, "the first messages once freed", func() bool { return readers.Count() >= 4 })

	// Listed again while sending: the pool stops (at most the message on
	// the wire still arrives).
	dns.Add(t, "3.0.0.127.zen.spamhaus.org. 300 IN A 127.0.0.2")
	check()
	atPause := readers.Count()
	time.Sleep(time.Second) // the engine reads pool states every quarter second
	settled := readers.Count()
	time.Sleep(3 * time.Second)
	afterPause := readers.Count()
	t.Logf("listed again mid-send: %d messages at the check, %d a second later, %d three seconds after that", atPause, settled, afterPause)
	if settled-atPause > 2 || afterPause != settled || afterPause >= 20 {
		t.Errorf("after the pause mid-send: %d then %d more messages, want at most the ones on the wire then none", settled-atPause, afterPause-settled)
	}

	dns.Remove("3.0.0.127.zen.spamhaus.org", "A")
	check()
	h.WaitCampaign(t, id, 60*time.Second, models.CampaignFinished)
	delivered := readers.Messages()
	t.Logf("after the delisting: %d messages at the receiver", len(delivered))
	seen := map[string]int{}
	for _, m := range delivered {
		seen[strings.Join(m.To, ",")]++
	}
	if len(delivered) != 20 || len(seen) != 20 {
		t.Errorf("received %d messages for %d recipients, want 20 for 20", len(delivered), len(seen))
	}
	for _, m := range delivered {
		if ip, _, _ := net.SplitHostPort(m.Remote); ip != "127.0.0.3" {
			t.Errorf("message from %s, want the pool's address 127.0.0.3", m.Remote)
			break
		}
	}
	if !strings.Contains(h.Logs(), "IP pool paused by the blocklist rule") || !strings.Contains(h.Logs(), "IP pool freed by the blocklist rule") {
		t.Errorf("the log does not tell of the pause and its end")
	}
}

// Two nodes on one PostgreSQL database with a 2-second check interval:
// the job runs by itself, each period on one node only (about one run per
// period in both logs together, not two), and the listing it finds is
// mailed to the admin once (captured in the outbox), however many runs
// and nodes see it.
func TestBlocklistJobOneNodePerPeriod(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the built binary")
	}
	dbURL := e2e.PostgresURL(t)
	dns := e2e.StartDNS(t)
	dns.Add(t, "3.0.0.127.zen.spamhaus.org. 300 IN A 127.0.0.2")
	a := e2e.Start(t, e2e.Options{DNS: dns, DatabaseURL: dbURL, Env: []string{"HERALD_BLOCKLIST_INTERVAL=2s"}})
	ctx := context.Background()
	s := a.Store(t)
	pool := &models.IPPool{Name: "listed"}
	if err := s.CreateIPPool(ctx, pool); err != nil {
		t.Fatal(err)
	}
	if err := s.AddSendingIP(ctx, &models.SendingIP{PoolID: pool.ID, Address: "127.0.0.3", Active: true}); err != nil {
		t.Fatal(err)
	}
	b := a.Node(t)
	start := time.Now()
	runs := func() (int, int) {
		return strings.Count(a.Logs(), `msg="blocklists checked"`), strings.Count(b.Logs(), `msg="blocklists checked"`)
	}
	ra0, rb0 := runs()
	time.Sleep(10 * time.Second)
	ra, rb := runs()
	ra, rb = ra-ra0, rb-rb0
	elapsed := time.Since(start)
	t.Logf("in %v with a 2s interval: %d runs on node a, %d on node b", elapsed.Round(time.Second), ra, rb)
	// A node looks for due jobs every interval, so a run may come up to
	// one interval late: between one run per two periods and one per
	// period; both nodes running each period would make twice as many.
	if periods := int(elapsed / (2 * time.Second)); ra+rb < 2 || ra+rb > periods+1 {
		t.Errorf("runs = %d in %d periods, want 2 to %d: the job runs by itself, on one node each time", ra+rb, periods, periods+1)
	}
	cur, err := s.CurrentBlocklistResults(ctx)
	if err != nil {
		t.Fatal(err)
	}
	listed := 0
	for _, r := range cur {
		if r.Status == models.ListingListed {
			listed++
		}
	}
	if listed != 1 {
		t.Errorf("current listings = %d, want 1 (127.0.0.3 on ZEN)", listed)
	}
	e2e.Eventually(t, 20*time.Second, "the notice in the outbox", func() bool {
		msgs, err := s.Outbox(ctx, models.OutboxQuery{})
		return err == nil && len(msgs) > 0
	})
	time.Sleep(time.Second)
	msgs, err := s.Outbox(ctx, models.OutboxQuery{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("outbox: %d messages", len(msgs))
	if len(msgs) != 1 || msgs[0].Subject != "Blocklisted: 127.0.0.3 on Spamhaus ZEN" || msgs[0].RcptTo != a.Admin {
		t.Errorf("outbox = %+v, want the one notice to %s", msgs, a.Admin)
	}
}
