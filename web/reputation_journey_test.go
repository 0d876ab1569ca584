package web

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/herald-mail/herald/internal/browsertest"
	"github.com/herald-mail/herald/internal/e2e"
	"github.com/herald-mail/herald/models"
)

// An admin opens Deliverability → Reputation on the built binary (capture
// transport, a local DNS server answering for the blocklists), checks
// now, sees a pool's address listed on Spamhaus ZEN and the sending
// domain's DBL check refused (127.255.255.254), turns ZEN's pause rule on
// and checks again: the pool is shown paused. The notice of the new
// listing is captured in the outbox once. Screenshots at 1280 and 390 px.
func TestJourneyReputation(t *testing.T) {
	ctx := browsertest.New(t, 150*time.Second)
	dns := e2e.StartDNS(t)
	h := e2e.Start(t, e2e.Options{DNS: dns})
	s := h.Store(t)
	bg := context.Background()
	pool := &models.IPPool{Name: "listed"}
	if err := s.CreateIPPool(bg, pool); err != nil {
		t.Fatal(err)
	}
	if err := s.AddSendingIP(bg, &models.SendingIP{PoolID: pool.ID, Address: "127.0.0.3", HELO: "out.news.example", Active: true}); err != nil {
		t.Fatal(err)
	}
	h.SendingDomain(t, dns, "news.example")
	dns.Add(t, "3.0.0.127.zen.spamhaus.org. 300 IN A 127.0.0.2", "news.example.dbl.spamhaus.org. 300 IN A 127.255.255.254")

	base, shots := h.URL, browsertest.ShotDir()
	step, text := browsertest.Steps(t, ctx, shots)
	step("sign in", append(signInSteps(base, h.Admin, h.Password), chromedp.WaitVisible(chromedp.CSS(`.mainnav`)))...)
	step("open Reputation from the tabs",
		chromedp.Navigate(base+"/deliverability"),
		chromedp.Click(chromedp.CSS(`a[href="/deliverability/reputation"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="lists"]`)),
	)
	step("check now",
		browsertest.ClickLoad(`[data-testid="check-now"]`),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="current"]`)),
	)
	if got := text(`[data-testid="result-127.0.0.3-zen.spamhaus.org"] [data-testid="status"]`); got != "listed" {
		t.Errorf("ZEN status = %q, want listed", got)
	}
	if got := text(`[data-testid="result-news.example-dbl.spamhaus.org"]`); !strings.Contains(got, "check not possible") || !strings.Contains(got, "public or open resolver") {
		t.Errorf("DBL row = %q, want check not possible (public resolver)", got)
	}
	if got := text(`[data-testid="summary"]`); !strings.Contains(got, "1 listed") || !strings.Contains(got, "1 check not possible") {
		t.Errorf("summary = %q", got)
	}
	browsertest.Widths(t, ctx, "reputation")
	step("turn ZEN's pause rule on",
		chromedp.Click(chromedp.CSS(`[data-testid="list-zen.spamhaus.org"] [data-testid="edit-list"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="list-form"]`)),
		chromedp.Click(chromedp.CSS(`[data-testid="pause-pool"]`)),
	)
	browsertest.Widths(t, ctx, "blocklist-form")
	step("save",
		browsertest.ClickLoad(`[data-testid="save-list"]`),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="lists"]`)),
	)
	if got := text(`[data-testid="list-zen.spamhaus.org"] [data-testid="pause"]`); got != "yes" {
		t.Errorf("ZEN pauses = %q, want yes", got)
	}
	step("check again",
		browsertest.ClickLoad(`[data-testid="check-now"]`),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="paused-pool-listed"]`)),
	)
	browsertest.Widths(t, ctx, "reputation-paused")
	step("the pool shows it on Rules & IPs",
		chromedp.Navigate(base+"/deliverability/rules"),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="pool-listed"] [data-testid="pool-paused"]`)),
		chromedp.Click(chromedp.CSS(`[data-testid="pool-listed"] a[href^="/deliverability/pools/"]`)),
		chromedp.WaitVisible(chromedp.CSS(`li[data-testid="pool-paused"]`)),
	)
	if got := text(`li[data-testid="pool-paused"]`); !strings.Contains(got, "127.0.0.3 is listed on Spamhaus ZEN") {
		t.Errorf("pool page's notice = %q", got)
	}

	e2e.Eventually(t, 20*time.Second, "the notice in the outbox", func() bool {
		msgs, err := s.Outbox(bg, models.OutboxQuery{})
		return err == nil && len(msgs) > 0
	})
	time.Sleep(time.Second)
	msgs, err := s.Outbox(bg, models.OutboxQuery{})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, m := range msgs {
		if m.Subject == "Blocklisted: 127.0.0.3 on Spamhaus ZEN" && m.RcptTo == h.Admin {
			n++
		}
	}
	t.Logf("outbox: %d messages, %d notices of the ZEN listing", len(msgs), n)
	if n != 1 || len(msgs) != 1 {
		t.Errorf("outbox holds %d messages, %d notices of the listing, want 1 and 1 (two checks, one new listing)", len(msgs), n)
	}
}
