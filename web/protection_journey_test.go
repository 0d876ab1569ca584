package web

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/herald-mail/herald/internal/browsertest"
	"github.com/herald-mail/herald/internal/e2e"
	"github.com/herald-mail/herald/models"
)

// TestJourneyProtection drives Chromium against the built binary: the
// admin opens Settings → Protection from the tabs, sees the Gmail/Yahoo
// defaults, types a minimum sample that is no number and gets the
// message beside the field, then saves a sample of 20. A campaign to 300
// readers goes out slowly over direct delivery; two of the first
// recipients complain (recorded by the store's complaint path, the one
// the inbound server and ESP webhooks use), and the campaign page shows
// the campaign paused by automatic protection, with the reason and a link
// back to the thresholds. Screenshots at 1280 and 390 px of both pages.
func TestJourneyProtection(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the built binary")
	}
	ctx := browsertest.New(t, 180*time.Second)
	dns := e2e.StartDNS(t)
	port := e2e.FreePort(t)
	rcv := e2e.StartReceiver(t, "127.0.0.2", port, e2e.ReceiverOptions{})
	dns.Provider(t, "mx.alpha.test", "127.0.0.2", "alpha.test")
	h := e2e.Start(t, e2e.Options{Transport: "direct", DNS: dns, MXPort: port})
	h.SendingDomain(t, dns, "news.example")
	shots := filepath.Join(os.TempDir(), "herald-screenshots")
	step, text := browsertest.Steps(t, ctx, shots)

	step("sign in",
		chromedp.Navigate(h.URL+"/login"),
		chromedp.SendKeys(chromedp.CSS(`input[name="email"]`), h.Admin),
		chromedp.SendKeys(chromedp.CSS(`input[name="password"]`), h.Password),
		chromedp.Click(chromedp.CSS(`button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`.mainnav`)),
	)
	step("open Settings → Protection from the tabs",
		chromedp.Navigate(h.URL+"/settings"),
		chromedp.Click(chromedp.CSS(`[data-testid="subnav"] a[href="/settings/protection"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="protection-form"]`)),
	)
	pause, err := chromedp.Run(ctx, chromedp.Value(chromedp.CSS(`[data-testid="complaint-pause"]`)))
	if err != nil {
		t.Fatal(err)
	}
	if pause != "0.3" {
		t.Errorf("complaint pause rate shown = %q, want Gmail/Yahoo's 0.3", pause)
	}
	step("a minimum sample that is no number is refused beside the field",
		chromedp.SetValue(chromedp.CSS(`[data-testid="min-sent"]`), "ten"),
		chromedp.Click(chromedp.CSS(`[data-testid="save-protection"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="err-min_sent"]`)),
	)
	if got := text(`[data-testid="err-min_sent"]`); !strings.Contains(got, `"ten" is not a whole number`) {
		t.Errorf("min sample error = %q", got)
	}
	browsertest.Widths(t, ctx, "protection-settings-error")
	step("save a minimum sample of 20",
		chromedp.SetValue(chromedp.CSS(`[data-testid="min-sent"]`), "20"),
		chromedp.Click(chromedp.CSS(`[data-testid="save-protection"]`)),
		chromedp.WaitVisible(chromedp.CSS(`.flash`)),
	)
	if got := text(`.flash`); !strings.Contains(got, "Protection settings saved") {
		t.Errorf("flash after saving = %q", got)
	}
	browsertest.Widths(t, ctx, "protection-settings")

	list := h.Audience(t, 300, "alpha.test")
	id := h.NewCampaign(t, e2e.Campaign{FromEmail: "hello@news.example", Lists: []int64{list}})
	h.StartCampaign(t, id)
	e2e.Eventually(t, 90*time.Second, "25 messages at the receiver", func() bool { return rcv.Count() >= 25 })
	store := h.Store(t)
	var sent []int64
	if err := store.DB().Raw("SELECT id FROM deliveries WHERE campaign_id = ? AND status = 'sent' ORDER BY id LIMIT 2", id).Scan(&sent).Error; err != nil || len(sent) != 2 {
		t.Fatalf("sent deliveries: %v, %v", sent, err)
	}
	for _, d := range sent {
		if _, err := store.RecordComplaint(context.Background(), models.BounceNotice{DeliveryID: d, Category: "abuse", RemoteMTA: "fbl.alpha.test"}); err != nil {
			t.Fatal(err)
		}
	}
	h.WaitCampaign(t, id, 60*time.Second, "paused")
	step("the campaign page says why it paused",
		chromedp.Navigate(fmt.Sprintf("%s/campaigns/%d", h.URL, id)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="pause-reason"]`)),
	)
	if got := text(`[data-testid="campaign-status"]`); got != "paused" {
		t.Errorf("status badge = %q, want paused", got)
	}
	banner := strings.Join(strings.Fields(text(`[data-testid="pause-reason"]`)), " ")
	for _, want := range []string{"Paused by automatic protection", "2 spam complaints for", "at least 20 messages", "Settings → Protection"} {
		if !strings.Contains(banner, want) {
			t.Errorf("banner %q lacks %q", banner, want)
		}
	}
	browsertest.Widths(t, ctx, "campaign-auto-paused")
	step("the banner leads to the thresholds",
		chromedp.Click(chromedp.CSS(`[data-testid="protection-settings-link"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="protection-form"]`)),
	)
	if n := rcv.Count(); n >= 300 {
		t.Errorf("receiver got all %d messages; the pause should have stopped the rest", n)
	}
}
