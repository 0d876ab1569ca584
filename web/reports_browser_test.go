package web

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/herald-mail/herald/internal/browsertest"
	"github.com/herald-mail/herald/internal/testdb"
	"github.com/herald-mail/herald/models"
)

// TestBrowserCampaignReport signs a viewer in with a real Chromium, opens
// the report of a campaign that has data, and keeps screenshots at desktop
// and phone widths.
func TestBrowserCampaignReport(t *testing.T) {
	ctx := browsertest.New(t, 90*time.Second)
	app := newTestApp(t, nil)
	fx := testdb.ReportFixture(t, app.store)
	if _, err := app.store.CreateUser(context.Background(), "viewer@example.com", "", "correct horse battery", models.RoleViewer); err != nil {
		t.Fatal(err)
	}
	l := &models.List{Name: "Newsletter", Optin: models.OptinSingle, Visibility: models.ListPublic}
	if err := app.store.CreateList(context.Background(), l); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		sub := &models.Subscriber{Email: fmt.Sprintf("reader%d@example.com", i)}
		if err := app.store.CreateSubscriber(context.Background(), sub, map[int64]string{l.ID: models.SubConfirmed}, models.Evidence{Source: models.SourceAdmin}); err != nil {
			t.Fatal(err)
		}
	}
	base := app.http.URL
	shots := filepath.Join(os.TempDir(), "herald-screenshots")
	step, text := browsertest.Steps(t, ctx, shots)

	step("sign in",
		chromedp.Navigate(base+"/login"),
		chromedp.WaitVisible(chromedp.CSS(`input[name="email"]`)),
		chromedp.SendKeys(chromedp.CSS(`input[name="email"]`), "viewer@example.com"),
		chromedp.SendKeys(chromedp.CSS(`input[name="password"]`), "correct horse battery"),
		chromedp.Click(chromedp.CSS(`button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="recent-campaigns"]`)),
	)
	if got := text(`[data-testid="total-subscribed"]`); got != "3" {
		t.Errorf("dashboard subscriptions = %q, want 3", got)
	}
	browsertest.Screenshot(t, ctx, shots, "dashboard")
	step("open the report from the dashboard",
		chromedp.Click(chromedp.CSS(fmt.Sprintf(`[data-testid="recent-campaigns"] a[href="/campaigns/%d/report"]`, fx.ID))),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="providers"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="timeline-chart"] svg polyline`)),
	)
	if got := text(`[data-provider="google"] [data-col="delivered"]`); got != "85.7%" {
		t.Errorf("Gmail delivered = %q, want 85.7%%", got)
	}
	if got := text(`[data-testid="delivered"]`); got != "15" {
		t.Errorf("delivered = %q, want 15", got)
	}
	// The chart is drawn at a usable size, not collapsed.
	box, err := chromedp.Run(ctx, chromedp.Evaluate[[]float64](`(() => { const r = document.querySelector('[data-testid="timeline-chart"] svg').getBoundingClientRect(); return [r.width, r.height]; })()`))
	if err != nil {
		t.Fatal(err)
	}
	if len(box) != 2 || box[0] < 600 || box[1] < 150 {
		t.Errorf("timeline chart box = %v, want at least 600×150", box)
	}
	browsertest.Screenshot(t, ctx, shots, "campaign-report")

	step("bounces and complaints",
		chromedp.Navigate(base+"/deliverability/bounces"),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="daily-chart"] svg`)),
	)
	if got := text(`[data-testid="campaign-rates"] [data-col="complaints"]`); got != "1 (6.7%)" {
		t.Errorf("bounces page complaints = %q", got)
	}
	browsertest.Screenshot(t, ctx, shots, "bounces-report")

	// At phone width no page of the reports scrolls sideways (wide tables
	// scroll inside their own box).
	step("phone width", chromedp.EmulateViewport(390, 844))
	for _, pg := range []struct{ path, wait, shot string }{
		{fmt.Sprintf("/campaigns/%d/report", fx.ID), `[data-testid="providers"]`, "campaign-report-390px"},
		{"/", `[data-testid="recent-campaigns"]`, "dashboard-390px"},
		{"/deliverability/bounces", `[data-testid="campaign-rates"]`, "bounces-report-390px"},
	} {
		step("open "+pg.path+" on a phone",
			chromedp.Navigate(base+pg.path),
			chromedp.WaitVisible(chromedp.CSS(pg.wait)),
		)
		overflow, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.documentElement.scrollWidth > window.innerWidth + 1`))
		if err != nil {
			t.Fatal(err)
		}
		if overflow {
			t.Errorf("%s scrolls sideways at 390 px", pg.path)
		}
		browsertest.Screenshot(t, ctx, shots, pg.shot)
	}
}
