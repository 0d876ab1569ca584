package web

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"

	"github.com/herald-mail/herald/internal/browsertest"
	"github.com/herald-mail/herald/models"
)

// TestJourneyComplianceFindCertifyExportErase drives a real Chromium as an
// admin: find a person from the compliance centre, reach their consent
// certificate in two clicks, download everything held on them, erase them,
// and find the erasure on the audit page.
func TestJourneyComplianceFindCertifyExportErase(t *testing.T) {
	ctx := browsertest.New(t, 90*time.Second)
	app := newTestApp(t, nil)
	base := app.http.URL
	subID, _ := compliancePerson(t, app.store, "ada@example.com")
	if _, err := app.store.CreateUser(context.Background(), "admin@example.com", "Ada Admin", "a long enough password", models.RoleAdmin); err != nil {
		t.Fatal(err)
	}
	downloads := t.TempDir()
	shots := filepath.Join(os.TempDir(), "herald-screenshots")

	step, text := browsertest.Steps(t, ctx, shots)
	if _, err := chromedp.CallBrowser(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
		Behavior: browser.SetDownloadBehaviorBehaviorAllow, DownloadPath: downloads,
	}); err != nil {
		t.Fatalf("allow downloads: %v", err)
	}

	step("sign in",
		chromedp.Navigate(base+"/login"),
		chromedp.SendKeys(chromedp.CSS(`input[name="email"]`), "admin@example.com"),
		chromedp.SendKeys(chromedp.CSS(`input[name="password"]`), "a long enough password"),
		chromedp.Click(chromedp.CSS(`button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`.mainnav`)),
	)
	step("open the compliance centre",
		chromedp.Navigate(base+"/compliance"),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="person-search"]`)),
		chromedp.SendKeys(chromedp.CSS(`[data-testid="person-search"] input[name="q"]`), "ada@example.com"),
	)
	// Click one: search. Click two: the certificate.
	step("click 1: find the person",
		chromedp.Click(chromedp.CSS(`[data-testid="person-search-submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="people-table"]`)),
	)
	step("click 2: open the certificate",
		chromedp.Click(chromedp.CSS(`[data-testid="certificate-link"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="certificate"]`)),
	)
	browsertest.Widths(t, ctx, "compliance-certificate")
	// At 1280 px the evidence columns fold into each row's Details.
	step("open the row's details",
		chromedp.EmulateViewport(1280, 900),
		chromedp.Click(chromedp.CSS(`[data-testid="certificate"] details.more summary`)),
	)
	cert := text(`[data-testid="certificate"]`)
	for _, want := range []string{"ada@example.com", "News", "192.0.2.10", "FormBrowser/1.0", "https://example.com/join", "form", "granted"} {
		if !strings.Contains(cert, want) {
			t.Errorf("certificate lacks %q: %q", want, cert)
		}
	}
	for _, sel := range []string{`[data-testid="certificate-csv"]`, `[data-testid="certificate-json"]`, `[data-testid="access-export"]`} {
		if _, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel), chromedp.AtLeast(1))); err != nil {
			t.Errorf("certificate has no %s", sel)
		}
	}
	browsertest.Screenshot(t, ctx, shots, "compliance-certificate")

	step("export their data", chromedp.Click(chromedp.CSS(`[data-testid="access-export"]`)))
	file := filepath.Join(downloads, "subscriber-"+itoa(subID)+"-data.json")
	var body []byte
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if b, err := os.ReadFile(file); err == nil && len(b) > 0 && json.Valid(b) {
			body = b
			break
		}
	}
	var data models.SubjectData
	if err := json.Unmarshal(body, &data); err != nil || data.Profile.Email != "ada@example.com" || len(data.Consents) != 1 {
		entries, _ := os.ReadDir(downloads)
		t.Fatalf("downloaded export = %v (%d bytes; folder %v)", err, len(body), entries)
	}

	step("erase them",
		chromedp.Click(chromedp.CSS(`[data-testid="erase"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="confirm-erase"]`)),
		chromedp.Click(chromedp.CSS(`[data-testid="confirm-erase"] [data-testid="confirm"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="requests-table"]`)),
	)
	if f := text(`[data-testid="flash"]`); !strings.Contains(f, "erased") {
		t.Errorf("flash after erasure = %q", f)
	}
	if tbl := text(`[data-testid="requests-table"]`); !strings.Contains(tbl, "erasure") || !strings.Contains(tbl, "access") || strings.Contains(tbl, "ada@example.com") {
		t.Errorf("requests after erasure = %q", tbl)
	}
	if _, err := app.store.Subscriber(context.Background(), subID); err == nil {
		t.Fatal("subscriber still exists")
	}

	step("see it on the audit page",
		chromedp.Navigate(base+"/compliance/audit"),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="audit-table"]`)),
	)
	audit := text(`[data-testid="audit-table"]`)
	if !strings.Contains(audit, "dsr.erase") || !strings.Contains(audit, "dsr.export") || !strings.Contains(audit, "admin@example.com") {
		t.Errorf("audit page = %q", audit)
	}
	browsertest.Screenshot(t, ctx, shots, "compliance-audit")

	step("phone width",
		chromedp.EmulateViewport(390, 844),
		chromedp.Navigate(base+"/compliance/requests"),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="requests-table"]`)),
	)
	browsertest.Screenshot(t, ctx, shots, "compliance-requests-390px")
}
