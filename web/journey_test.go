package web

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/herald-mail/herald/internal/browsertest"
)

// TestJourneyFirstRunToConsentHistory drives a real Chromium through a new
// user's first steps: set up the admin, create a list, import a CSV, find a
// subscriber and read their consent history.
func TestJourneyFirstRunToConsentHistory(t *testing.T) {
	ctx := browsertest.New(t, 90*time.Second)
	app := newTestApp(t, nil)
	base := app.http.URL
	csv := filepath.Join(t.TempDir(), "people.csv")
	os.WriteFile(csv, []byte("Email,Name,City\nada@example.com,Ada Lovelace,London\nnot-an-address,Broken Row,Nowhere\ngrace@example.com,Grace Hopper,Arlington\n"), 0o644)
	shots := filepath.Join(os.TempDir(), "herald-screenshots")

	step, text := browsertest.Steps(t, ctx, shots)

	step("open setup",
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="setup"]`)),
	)
	step("create first admin",
		chromedp.SendKeys(chromedp.CSS(`input[name="name"]`), "Ada Admin"),
		chromedp.SendKeys(chromedp.CSS(`input[name="email"]`), "admin@example.com"),
		chromedp.SendKeys(chromedp.CSS(`input[name="password"]`), "a long enough password"),
		chromedp.Click(chromedp.CSS(`button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="empty"]`)),
	)
	if !strings.Contains(text(`[data-testid="empty"]`), "create a list") {
		t.Errorf("dashboard empty state does not guide to a list: %q", text(`[data-testid="empty"]`))
	}
	step("create a list",
		chromedp.Navigate(base+"/lists/new"),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="list-form"]`)),
		chromedp.SendKeys(chromedp.CSS(`input[name="name"]`), "Newsletter"),
		chromedp.Click(chromedp.CSS(`input[name="optin"][value="single"]`)),
		chromedp.Click(chromedp.CSS(`[data-testid="list-form"] button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="lists-table"]`)),
	)
	step("upload a CSV",
		chromedp.Click(chromedp.CSS(`[data-testid="lists-table"] a[href^="/imports/new"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="import-upload"]`)),
		chromedp.SetUploadFiles(chromedp.CSS(`input[type="file"]`), []string{csv}),
		chromedp.Click(chromedp.CSS(`[data-testid="import-upload"] button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="import-mapping"]`)),
	)
	step("map and start",
		chromedp.SetValue(chromedp.CSS(`select[name="lawful_basis"]`), "consent"),
		chromedp.SendKeys(chromedp.CSS(`input[name="source"]`), "Spring fair sign-up sheet"),
		chromedp.Click(chromedp.CSS(`[data-testid="start-import"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="import-progress"][data-status="finished"]`)),
	)
	if got := text(`[data-testid="inserted"]`); got != "2" {
		t.Errorf("imported = %s, want 2", got)
	}
	if got := text(`[data-testid="failed"]`); got != "1" {
		t.Errorf("rejected = %s, want 1", got)
	}
	step("see subscribers",
		chromedp.Navigate(base+"/subscribers"),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="subscribers-table"]`)),
	)
	table := text(`[data-testid="subscribers-table"]`)
	if !strings.Contains(table, "ada@example.com") || !strings.Contains(table, "grace@example.com") || strings.Contains(table, "not-an-address") {
		t.Fatalf("subscribers table = %q", table)
	}
	step("open a subscriber",
		chromedp.Click(chromedp.Search(`//a[text()="grace@example.com"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="consent-history"]`)),
		// At 1280 px the less used columns fold into the row's Details.
		chromedp.Click(chromedp.CSS(`[data-testid="consent-history"] details.more summary`)),
	)
	hist := text(`[data-testid="consent-history"] tbody`)
	for _, want := range []string{"imported", "Newsletter", "Consent", "import", "admin@example.com", "Spring fair sign-up sheet"} {
		if !strings.Contains(hist, want) {
			t.Errorf("consent history lacks %q: %q", want, hist)
		}
	}
	browsertest.Screenshot(t, ctx, shots, "subscriber-consent-history")
	browsertest.Widths(t, ctx, "subscriber-consent-history")

	// The same page is usable on a phone: the menu collapses behind a toggle.
	step("phone width",
		chromedp.EmulateViewport(390, 844),
		chromedp.Navigate(base+"/subscribers"),
		chromedp.WaitVisible(chromedp.CSS(`.navtoggle summary`)),
		chromedp.WaitNotVisible(chromedp.CSS(`.mainnav`)),
		chromedp.Click(chromedp.CSS(`.navtoggle summary`)),
		chromedp.WaitVisible(chromedp.CSS(`.mainnav`)),
	)
	browsertest.Screenshot(t, ctx, shots, "subscribers-390px")
}
