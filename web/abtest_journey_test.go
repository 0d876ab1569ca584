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
	"github.com/herald-mail/herald/models"
)

// TestJourneyABTest: a marketer sets up a two-subject A/B test in the
// campaign form's "A/B test" section, and once the test share is out,
// reads the variants on the report and sends B to the rest by hand.
func TestJourneyABTest(t *testing.T) {
	ctx := browsertest.New(t, 90*time.Second)
	app := newTestApp(t, nil)
	bg := context.Background()
	composeFixture(t, app.store, 10)
	shots := filepath.Join(os.TempDir(), "herald-screenshots")
	step, text := browsertest.Steps(t, ctx, shots)
	browserLogin(t, app, models.RoleMarketer, step)

	step("fill the campaign and its A/B test",
		chromedp.Navigate(app.http.URL+"/campaigns/new"),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="campaign-form"]`)),
		chromedp.SendKeys(chromedp.CSS(`input[name="name"]`), "Spring test"),
		chromedp.SendKeys(chromedp.CSS(`input[name="from_email"]`), "news@acme.test"),
		chromedp.Click(chromedp.CSS(`[data-testid="ab-fields"] > summary`)),
		chromedp.Click(chromedp.CSS(`[data-testid="ab-on"]`)),
		chromedp.SetValue(chromedp.CSS(`input[name="ab_share"]`), "40"),
		chromedp.SetValue(chromedp.CSS(`input[name="ab_wait"]`), "1h"),
		chromedp.Click(chromedp.CSS(`input[name="ab_mode"][value="manual"]`)),
		chromedp.SendKeys(chromedp.CSS(`input[name="v1_subject"]`), "Spring is here"),
		chromedp.SendKeys(chromedp.CSS(`input[name="v2_subject"]`), "Spring news inside"),
	)
	browsertest.Screenshot(t, ctx, shots, "ab-test-form")
	step("save it",
		chromedp.Click(chromedp.CSS(`[data-testid="save-campaign"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="campaign-status"]`)),
	)
	cs, err := app.store.Campaigns(bg, 0, 1)
	if err != nil || len(cs) != 1 {
		t.Fatalf("campaigns = %+v, %v", cs, err)
	}
	cp := cs[0]
	id := cp.ID
	if vs, _ := app.store.CampaignVariants(bg, id); cp.AB.Share != 40 || !cp.AB.Manual || cp.AB.WaitSeconds != 3600 || len(vs) != 2 ||
		vs[1].Subject != "Spring news inside" {
		t.Fatalf("stored campaign %d: %+v, variants %+v", id, cp.AB, vs)
	}
	if err := app.store.StartCampaign(bg, id); err != nil {
		t.Fatal(err)
	}
	for done := false; !done; {
		if done, err = app.store.MaterializeCampaign(bg, id, 1000); err != nil {
			t.Fatal(err)
		}
	}
	step("read the test on the report",
		chromedp.Navigate(fmt.Sprintf("%s/campaigns/%d/report", app.http.URL, id)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="ab-variants"]`)),
	)
	browsertest.Screenshot(t, ctx, shots, "ab-test-report")
	if got := text(`[data-testid="ab-held"]`); !strings.Contains(got, "6 held for the winner") {
		t.Errorf("held = %q", got)
	}
	step("send B to the rest",
		chromedp.Click(chromedp.CSS(`[data-testid="ab-pick-2"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="ab-released"]`)),
	)
	if got := text(`[data-testid="ab-released"]`); !strings.Contains(got, "Winner: B") || !strings.Contains(got, "marketer@example.com") {
		t.Errorf("released = %q", got)
	}
}
