package web

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/herald-mail/herald/internal/browsertest"
	"github.com/herald-mail/herald/internal/e2e"
	"github.com/herald-mail/herald/models"
)

// TestJourneySendingDomain drives Chromium through adding a sending domain,
// publishing part of its records and pressing Check DNS (htmx), at desktop
// and phone widths.
func TestJourneySendingDomain(t *testing.T) {
	ctx := browsertest.New(t, 90*time.Second)
	app := newTestApp(t, nil)
	ns := e2e.StartDNS(t)
	app.srv.cfg.DNSServer = ns.Addr
	base := app.http.URL
	shots := filepath.Join(os.TempDir(), "herald-screenshots")
	if _, err := app.store.CreateUser(context.Background(), "admin@example.com", "Ada", "a long enough password", models.RoleAdmin); err != nil {
		t.Fatal(err)
	}
	step, text := browsertest.Steps(t, ctx, shots)
	value := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Value(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("read %s: %v", sel, err)
		}
		return s
	}

	step("sign in",
		chromedp.Navigate(base+"/login"),
		chromedp.SendKeys(chromedp.CSS(`input[name="email"]`), "admin@example.com"),
		chromedp.SendKeys(chromedp.CSS(`input[name="password"]`), "a long enough password"),
		chromedp.Click(chromedp.CSS(`button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`.mainnav`)),
	)
	step("add a domain from the empty state",
		chromedp.Navigate(base+"/deliverability/domains"),
		chromedp.Click(chromedp.CSS(`[data-testid="empty"] a[role="button"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="domain-form"]`)),
		chromedp.SendKeys(chromedp.CSS(`input[name="domain"]`), "shop.example"),
		chromedp.Click(chromedp.CSS(`[data-testid="domain-form"] button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="records-table"]`)),
	)
	// Publish what the page says for DKIM (both keys) and DMARC, not SPF.
	for _, purpose := range []string{"dkim", "dkim-ed25519", "dmarc"} {
		row := `[data-testid="record-` + purpose + `"] `
		ns.Records(t, models.DNSRecord{Type: text(row + "td:nth-child(2)"), Name: text(row + `[data-testid="name"]`), Value: value(row + `[data-testid="value"]`)})
	}
	step("check DNS",
		chromedp.Click(chromedp.CSS(`[data-testid="check-dns"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="record-dkim"] .badge.ok`)),
	)
	for purpose, want := range map[string]string{"dkim": "ok", "dkim-ed25519": "ok", "dmarc": "ok", "spf": "missing", "return-path": "missing"} {
		if got := text(`[data-testid="record-` + purpose + `"] [data-testid="state-badge"]`); got != want {
			t.Errorf("%s after Check DNS = %q, want %q", purpose, got, want)
		}
	}
	if got := text(`[data-testid="overall"]`); got != "needs changes" {
		t.Errorf("overall = %q", got)
	}
	browsertest.Screenshot(t, ctx, shots, "sending-domain-checked")
	step("rules page",
		chromedp.Navigate(base+"/deliverability/rules"),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="rules-table"]`)),
	)
	browsertest.Screenshot(t, ctx, shots, "domain-rules")
	step("phone width",
		chromedp.EmulateViewport(390, 844),
		chromedp.Navigate(base+"/deliverability/domains"),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="domains-table"]`)),
	)
	if got := text(`[data-testid="domains-table"] [data-testid="status"]`); got != "needs DNS changes" {
		t.Errorf("list status = %q", got)
	}
	browsertest.Screenshot(t, ctx, shots, "sending-domains-390px")
}
