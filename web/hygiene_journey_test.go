package web

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/herald-mail/herald/internal/browsertest"
	"github.com/herald-mail/herald/models"
)

// A marketer suppresses an address by hand and by CSV, removes one with a
// reason; an admin turns staging on. Checked at 1280 px and 390 px.
func TestJourneySuppressionsAndHygiene(t *testing.T) {
	ctx := browsertest.New(t, 150*time.Second)
	app := newTestApp(t, nil)
	base := app.http.URL
	if _, err := app.store.CreateUser(context.Background(), "admin@example.com", "", "a long enough password", models.RoleAdmin); err != nil {
		t.Fatal(err)
	}
	csv := filepath.Join(t.TempDir(), "old-provider.csv")
	os.WriteFile(csv, []byte("email\nold1@example.org\nbroken-line\n@spam.example\n"), 0o644)
	shots := filepath.Join(os.TempDir(), "herald-screenshots")
	step, text := browsertest.Steps(t, ctx, shots)
	// fits checks that the page does not scroll sideways: wide tables
	// must scroll inside their .table-wrap (static/app.css sizes the
	// content column minmax(0, 1fr) for that).
	fits := func(what string) {
		t.Helper()
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.documentElement.scrollWidth <= window.innerWidth + 1`))
		wide, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`[...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > window.innerWidth + 1).map(e => e.tagName + '.' + e.className + '[' + (e.dataset.testid||'') + ']' + Math.round(e.getBoundingClientRect().width)).slice(0, 40).join(' ') + ' sw=' + document.documentElement.scrollWidth + ' iw=' + window.innerWidth`))
		if err != nil || !ok {
			t.Logf("%s: wider than the viewport: %s", what, wide)
			browsertest.Screenshot(t, ctx, shots, "overflow-"+what)
			t.Errorf("%s scrolls sideways at this width (err %v)", what, err)
		}
	}

	step("sign in",
		chromedp.Navigate(base+"/login"),
		chromedp.SendKeys(chromedp.CSS(`input[name="email"]`), "admin@example.com"),
		chromedp.SendKeys(chromedp.CSS(`input[name="password"]`), "a long enough password"),
		chromedp.Click(chromedp.CSS(`form button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`.shell`)),
	)
	step("empty suppression list",
		chromedp.Navigate(base+"/deliverability/suppressions"),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="empty"]`)),
	)
	step("suppress one address",
		chromedp.SendKeys(chromedp.CSS(`[data-testid="add-suppression"] input[name="value"]`), "Someone@Example.com"),
		chromedp.SendKeys(chromedp.CSS(`[data-testid="add-suppression"] input[name="note"]`), "asked by phone"),
		chromedp.Click(chromedp.CSS(`[data-testid="add-suppression"] button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="suppressions-table"]`)),
	)
	if got := text(`[data-testid="suppressions-table"]`); !strings.Contains(got, "someone@example.com") || !strings.Contains(got, "added by hand") {
		t.Errorf("table after adding = %q", got)
	}
	step("upload a CSV",
		chromedp.SetUploadFiles(chromedp.CSS(`[data-testid="upload-suppressions"] input[type="file"]`), []string{csv}),
		chromedp.Click(chromedp.CSS(`[data-testid="upload-suppressions"] button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="upload-result"]`)),
	)
	if a, r := text(`[data-testid="accepted"]`), text(`[data-testid="rejected"]`); a != "2" || r != "1" {
		t.Errorf("upload accepted/rejected = %s/%s, want 2/1", a, r)
	}
	browsertest.Screenshot(t, ctx, shots, "suppressions-1280px")
	fits("suppressions at 1280px")
	step("remove with a reason",
		chromedp.Navigate(base+"/deliverability/suppressions?q=someone"),
		chromedp.Click(chromedp.CSS(`[data-testid="remove"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="confirm-remove"]`)),
		chromedp.SendKeys(chromedp.CSS(`[data-testid="reason-input"]`), "re-subscribed in person"),
		chromedp.Click(chromedp.CSS(`[data-testid="confirm"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="suppressions-table"]`)),
	)
	if got := text(`[data-testid="suppressions-table"]`); strings.Contains(got, "someone@example.com") {
		t.Errorf("removed address still listed: %q", got)
	}
	step("turn staging on",
		chromedp.Navigate(base+"/deliverability/hygiene"),
		chromedp.SendKeys(chromedp.CSS(`[data-testid="allow-form"] input[name="value"]`), "@ourco.example"),
		chromedp.Click(chromedp.CSS(`[data-testid="allow-form"] button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="allow-table"]`)),
		chromedp.Click(chromedp.CSS(`[data-testid="staging-toggle"]`)),
		chromedp.WaitVisible(chromedp.CSS(`mark[data-testid="staging-state"]`)),
	)
	if v, _ := app.store.Setting(context.Background(), models.SettingStaging); v != "on" {
		t.Errorf("staging setting = %q, want on", v)
	}
	browsertest.Screenshot(t, ctx, shots, "hygiene-1280px")
	fits("hygiene at 1280px")
	step("narrow outbox", chromedp.EmulateViewport(390, 844), chromedp.Navigate(base+"/deliverability"), chromedp.WaitVisible(chromedp.CSS(`.shell`)))
	fits("outbox (not ours) at 390px")
	step("narrow screen", chromedp.Navigate(base+"/deliverability/suppressions"),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="suppressions-table"]`)))
	fits("suppressions at 390px")
	browsertest.Screenshot(t, ctx, shots, "suppressions-390px")
	step("narrow hygiene", chromedp.Navigate(base+"/deliverability/hygiene"), chromedp.WaitVisible(chromedp.CSS(`[data-testid="rule-form"]`)))
	fits("hygiene at 390px")
	browsertest.Screenshot(t, ctx, shots, "hygiene-390px")
}
