package mailer_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/herald-mail/herald/internal/testdb"
	"github.com/herald-mail/herald/mailer"
	"github.com/herald-mail/herald/models"
)

// setDefaultRule changes the default domain rule's limits.
func setDefaultRule(t testing.TB, s *models.Store, perSecond float64, conns int) {
	t.Helper()
	ctx := context.Background()
	rules, err := s.DomainRules(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rules {
		if r.IsDefault {
			r.PerSecond, r.PerMinute, r.PerHour, r.MaxConnections = perSecond, 0, 0, conns
			r.BackoffMinSeconds, r.BackoffMaxSeconds = 1, 2
			if err := s.UpdateDomainRule(ctx, &r); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// A transactional message overtakes a running campaign's backlog to the
// same destination.
func TestTransactionalAheadOfCampaign(t *testing.T) {
	ctx := context.Background()
	s := testdb.SQLite(t)
	setDefaultRule(t, s, 20, 2)
	mx := startMX(t, "127.0.0.1:0", true, nil)
	list := seed(t, s, 300, []string{"slow.test"})
	cid := campaign(t, s, list, "news@sender.test", nil, nil)
	tpl := &models.Template{Kind: models.TemplateTransactional, Name: "welcome", Subject: "Welcome {{.Subscriber.Name}}",
		HTML: `<p>Your code is {{.Data.code}}.</p>`}
	if err := s.CreateTemplate(ctx, tpl); err != nil {
		t.Fatal(err)
	}
	e := mailer.New(mailer.Options{Logger: testLogger(t), Secrets: []string{"s"},
		Transport: mailer.NewDirect(mailer.DirectOptions{MXOverride: mx.Addr})}, s)
	runEngine(t, e)
	if err := e.StartCampaign(ctx, cid); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the campaign to be under way", func() bool { return mx.count() >= 20 })
	sentAt := time.Now()
	if _, err := e.SendTransactional(ctx, mailer.TransactionalRequest{Template: "welcome", To: "vip@slow.test", Name: "Vip",
		From: "hello@sender.test", Data: map[string]any{"code": "C0DE-42"}}); err != nil {
		t.Fatal(err)
	}
	var got received
	waitFor(t, 10*time.Second, "the transactional message", func() bool {
		for _, m := range mx.messages() {
			if m.To == "vip@slow.test" {
				got = m
				return true
			}
		}
		return false
	})
	took := got.At.Sub(sentAt)
	left := 300 - countTo(mx.messages(), "@slow.test", got.At)
	t.Logf("transactional message delivered %v after the call, %d campaign messages still waiting", took.Round(time.Millisecond), left)
	if took > time.Second {
		t.Errorf("transactional message took %v, want < 1s (ahead of the campaign)", took)
	}
	if left < 200 {
		t.Errorf("campaign backlog at that time = %d, want >= 200 (the test needs a backlog to overtake)", left)
	}
	if !strings.Contains(string(got.Data), "C0DE-42") || !strings.Contains(string(got.Data), "Subject: Welcome Vip") {
		t.Errorf("transactional message = %q, want the template rendered with its data", got.Data)
	}
	if strings.Contains(string(got.Data), "List-Unsubscribe") {
		t.Errorf("transactional message carries List-Unsubscribe; want it only on campaign mail")
	}
}

func countTo(msgs []received, suffix string, before time.Time) int {
	n := 0
	for _, m := range msgs {
		if strings.HasSuffix(m.To, suffix) && m.To != "vip"+suffix && !m.At.After(before) {
			n++
		}
	}
	return n
}

// Messages leave from every address of the campaign's IP pool, bound with
// LocalAddr, each greeting with its own HELO name.
func TestSourceIPPool(t *testing.T) {
	ctx := context.Background()
	s := testdb.SQLite(t)
	setDefaultRule(t, s, 0, 4)
	mx := startMX(t, "127.0.0.1:0", false, nil)
	pool := &models.IPPool{Name: "warm"}
	if err := s.CreateIPPool(ctx, pool); err != nil {
		t.Fatal(err)
	}
	for _, ip := range []models.SendingIP{{PoolID: pool.ID, Address: "127.0.0.2", HELO: "out2.sender.test", Active: true},
		{PoolID: pool.ID, Address: "127.0.0.3", HELO: "out3.sender.test", Active: true}} {
		if err := s.AddSendingIP(ctx, &ip); err != nil {
			t.Fatal(err)
		}
	}
	list := seed(t, s, 60, []string{"a.test", "b.test", "c.test"})
	cid := campaign(t, s, list, "news@sender.test", nil, func(c *models.Campaign) { c.IPPoolID = &pool.ID })
	e := mailer.New(mailer.Options{Logger: testLogger(t), Secrets: []string{"s"},
		Transport: mailer.NewDirect(mailer.DirectOptions{MXOverride: mx.Addr})}, s)
	runEngine(t, e)
	if err := e.StartCampaign(ctx, cid); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, "campaign to finish", func() bool { return progress(t, s, cid).Status == models.CampaignFinished })
	helo := map[string]string{}
	for _, m := range mx.messages() {
		ip := m.Remote[:strings.LastIndexByte(m.Remote, ':')]
		if h, ok := helo[ip]; ok && h != m.HELO {
			t.Errorf("%s greeted as %q and %q", ip, h, m.HELO)
		}
		helo[ip] = m.HELO
	}
	want := map[string]string{"127.0.0.2": "out2.sender.test", "127.0.0.3": "out3.sender.test"}
	if len(helo) != 2 || helo["127.0.0.2"] != want["127.0.0.2"] || helo["127.0.0.3"] != want["127.0.0.3"] {
		t.Errorf("source addresses seen by the server = %v, want %v", helo, want)
	}
	var n int64
	s.DB().Raw("SELECT COUNT(*) FROM deliveries WHERE campaign_id = ? AND source_ip IN ('127.0.0.2', '127.0.0.3')", cid).Scan(&n)
	if n != 60 {
		t.Errorf("deliveries with a recorded pool source address = %d, want 60", n)
	}
}

// MX resolution: preference order, A fallback without MX, null MX and
// non-existent domains fail at once.
func TestDirectDNS(t *testing.T) {
	ctx := context.Background()
	s := testdb.SQLite(t)
	setDefaultRule(t, s, 0, 2)
	ns := startDNS(t)
	const port = 2526
	good := startMX(t, "127.0.2.1:2526", false, nil)
	ns.add(t,
		"good.test. 300 IN MX 20 mx2.good.test.",
		"good.test. 300 IN MX 10 mx1.good.test.",
		"mx1.good.test. 300 IN A 127.0.2.1",
		"mx2.good.test. 300 IN A 127.0.2.9", // nobody listens: must not be tried first
		"nomx.test. 300 IN A 127.0.2.1",
		"nullmx.test. 300 IN MX 0 .",
	)
	list := seed(t, s, 4, []string{"good.test", "nomx.test", "nullmx.test", "gone.test"})
	cid := campaign(t, s, list, "news@sender.test", nil, nil)
	e := mailer.New(mailer.Options{Logger: testLogger(t), Secrets: []string{"s"},
		Transport: mailer.NewDirect(mailer.DirectOptions{Resolver: mailer.NewResolver(ns.Addr), Port: port})}, s)
	runEngine(t, e)
	if err := e.StartCampaign(ctx, cid); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, "campaign to finish", func() bool { return progress(t, s, cid).Status == models.CampaignFinished })
	tests := []struct {
		domain, status, enhanced, mx string
	}{
		{"good.test", models.DeliverySent, "", "mx1.good.test"},
		{"nomx.test", models.DeliverySent, "", "nomx.test"},
		{"nullmx.test", models.DeliveryBounced, "5.1.10", ""},
		{"gone.test", models.DeliveryBounced, "5.1.2", ""},
	}
	for _, tt := range tests {
		var d models.Delivery
		if err := s.DB().Where("campaign_id = ? AND domain = ?", cid, tt.domain).First(&d).Error; err != nil {
			t.Fatal(err)
		}
		if d.Status != tt.status || (tt.enhanced != "" && d.LastEnhanced != tt.enhanced) || d.MXHost != tt.mx {
			t.Errorf("delivery to %s = status %s, enhanced %q, mx %q; want %s, %q, %q", tt.domain, d.Status, d.LastEnhanced, d.MXHost,
				tt.status, tt.enhanced, tt.mx)
		}
	}
	if good.count() != 2 {
		t.Errorf("messages at the good MX = %d, want 2", good.count())
	}
}

// Server answers decide each message's fate: 451 defers and retries, 550
// bounces, a dropped or stalled connection defers and retries.
func TestReplyHandling(t *testing.T) {
	ctx := context.Background()
	s := testdb.SQLite(t)
	setDefaultRule(t, s, 0, 4)
	var (
		mu   sync.Mutex
		seen = map[string]int{}
	)
	mx := startMX(t, "127.0.0.1:0", false, func(rcpt string, n int64) *smtp.SMTPError {
		mu.Lock()
		seen[rcpt]++
		first := seen[rcpt] == 1
		mu.Unlock()
		switch {
		case strings.HasPrefix(rcpt, "user0@"): // temporary
			if first {
				return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Temporary local problem"}
			}
		case strings.HasPrefix(rcpt, "user1@"):
			return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "No such user"}
		case strings.HasPrefix(rcpt, "user2@"):
			if first {
				return dropErr
			}
		case strings.HasPrefix(rcpt, "user3@"):
			if first {
				return stallErr
			}
		}
		return nil
	})
	list := seed(t, s, 5, []string{"r.test"})
	cid := campaign(t, s, list, "news@sender.test", nil, nil)
	e := mailer.New(mailer.Options{Logger: testLogger(t), Secrets: []string{"s"}, RetryBase: 200 * time.Millisecond, RetryMax: 400 * time.Millisecond,
		Transport: mailer.NewDirect(mailer.DirectOptions{MXOverride: mx.Addr, Timeouts: mailer.Timeouts{Command: time.Second, DataEnd: time.Second}})}, s)
	runEngine(t, e)
	if err := e.StartCampaign(ctx, cid); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "campaign to finish", func() bool { return progress(t, s, cid).Status == models.CampaignFinished })
	tests := []struct {
		user     string
		status   string
		attempts int
		code     int
	}{
		{"user0", models.DeliverySent, 2, 250},
		{"user1", models.DeliveryBounced, 1, 550},
		{"user2", models.DeliverySent, 2, 250},
		{"user3", models.DeliverySent, 2, 250},
		{"user4", models.DeliverySent, 1, 250},
	}
	for _, tt := range tests {
		var d models.Delivery
		err := s.DB().Raw(`SELECT d.* FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id WHERE d.campaign_id = ? AND s.email = ?`,
			cid, tt.user+"@r.test").Scan(&d).Error
		if err != nil {
			t.Fatal(err)
		}
		if d.Status != tt.status || d.Attempts != tt.attempts || d.LastCode != tt.code {
			t.Errorf("%s: status %s after %d attempts, last code %d (%q); want %s after %d, code %d",
				tt.user, d.Status, d.Attempts, d.LastCode, d.LastText, tt.status, tt.attempts, tt.code)
		}
	}
	if p := progress(t, s, cid); p.Sent != 4 || p.Bounced != 1 {
		t.Errorf("counters = %+v, want 4 sent and 1 bounced", p.Counters)
	}
}

// Pausing stops sending within a second; resuming finishes the campaign.
func TestPauseResume(t *testing.T) {
	ctx := context.Background()
	s := testdb.SQLite(t)
	setDefaultRule(t, s, 40, 2)
	mx := startMX(t, "127.0.0.1:0", false, nil)
	list := seed(t, s, 200, []string{"p.test"})
	cid := campaign(t, s, list, "news@sender.test", nil, nil)
	e := mailer.New(mailer.Options{Logger: testLogger(t), Secrets: []string{"s"},
		Transport: mailer.NewDirect(mailer.DirectOptions{MXOverride: mx.Addr})}, s)
	runEngine(t, e)
	if err := e.StartCampaign(ctx, cid); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "some messages", func() bool { return mx.count() >= 20 })
	if err := e.Pause(ctx, cid); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	atPause := mx.count()
	time.Sleep(1500 * time.Millisecond)
	if got := mx.count(); got != atPause {
		t.Errorf("messages kept arriving after the pause took effect: %d then %d", atPause, got)
	}
	waitFor(t, 5*time.Second, "nothing left in flight", func() bool { p := progress(t, s, cid); return p.Sending == 0 })
	if p := progress(t, s, cid); p.Status != models.CampaignPaused || p.Sent+p.Queued != 200 {
		t.Errorf("paused progress = %s %+v, want paused with sent+queued = 200", p.Status, p.Counters)
	}
	if err := e.Resume(ctx, cid); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "campaign to finish", func() bool { return progress(t, s, cid).Status == models.CampaignFinished })
	if got := mx.count(); got != 200 {
		t.Errorf("messages received = %d, want 200", got)
	}
}
