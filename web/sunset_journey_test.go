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

// An admin opens the sunset policy, watches the count follow the rule as
// it is typed (htmx), saves it, drafts the re-engagement campaign, and runs
// the rule after its confirmation.
func TestJourneySunsetPolicy(t *testing.T) {
	ctx := browsertest.New(t, 120*time.Second)
	app := newTestApp(t, nil)
	base := app.http.URL
	if _, err := app.store.CreateUser(context.Background(), "admin@example.com", "", "a long enough password", models.RoleAdmin); err != nil {
		t.Fatal(err)
	}
	ids := sunsetFixture(t, app.store)
	shots := filepath.Join(os.TempDir(), "herald-screenshots")
	step, text := browsertest.Steps(t, ctx, shots)
	count := `[data-testid="sunset-count"]`

	step("sign in",
		chromedp.Navigate(base+"/login"),
		chromedp.SendKeys(chromedp.CSS(`input[name="email"]`), "admin@example.com"),
		chromedp.SendKeys(chromedp.CSS(`input[name="password"]`), "a long enough password"),
		chromedp.Click(chromedp.CSS(`form button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`.shell`)),
	)
	step("open the sunset policy from the Audience tabs",
		chromedp.Navigate(base+"/subscribers"),
		chromedp.Click(chromedp.CSS(`a[href="/subscribers/sunset"]`)),
		chromedp.WaitVisible(chromedp.CSS(count)),
	)
	if got := text(count); got != "1" || !strings.Contains(text(`[data-testid="sunset-preview"]`), "quiet@example.com") {
		t.Fatalf("count %q, preview %q", got, text(`[data-testid="sunset-preview"]`))
	}
	// waitCount waits for the count the form's htmx swaps in.
	waitCount := func(want string) {
		t.Helper()
		for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
			if text(count) == want {
				return
			}
		}
		v, _ := chromedp.Run(ctx, chromedp.Value(chromedp.CSS(`input[name="min_campaigns"]`)))
		t.Fatalf("count = %q, want %q (input %q; %s)", text(count), want, v, text(`[data-testid="sunset-matches"]`))
	}
	step("ask for nine campaigns: nobody matches",
		chromedp.SetValue(chromedp.CSS(`input[name="min_campaigns"]`), ""),
		chromedp.SendKeys(chromedp.CSS(`input[name="min_campaigns"]`), "9"),
	)
	waitCount("0")
	step("back to eight",
		chromedp.SetValue(chromedp.CSS(`input[name="min_campaigns"]`), ""),
		chromedp.SendKeys(chromedp.CSS(`input[name="min_campaigns"]`), "8"),
	)
	waitCount("1")
	step("save",
		chromedp.Click(chromedp.CSS(`[data-testid="save-sunset"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="start-round"]`)),
	)
	browsertest.Screenshot(t, ctx, shots, "sunset-policy")
	step("draft the re-engagement campaign",
		chromedp.Click(chromedp.CSS(`[data-testid="start-round"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="campaign-facts"]`)),
	)
	if f := text(`[data-testid="flash"]`); !strings.Contains(f, "for 1 people") {
		t.Errorf("flash after the round = %q", f)
	}
	step("run the rule, after its confirmation",
		chromedp.Navigate(base+"/subscribers/sunset"),
		chromedp.Click(chromedp.CSS(`[data-testid="run-sunset"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="confirm-action"]`)),
		chromedp.Click(chromedp.CSS(`[data-testid="confirm"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="flash"]`)),
	)
	if f := text(`[data-testid="flash"]`); !strings.Contains(f, "1 inactive people were unsubscribed") {
		t.Errorf("flash after the run = %q", f)
	}
	subs, _ := app.store.SubscriptionsOf(context.Background(), ids["quiet@example.com"])
	for _, x := range subs {
		if x.ListKind == models.ListKindList && x.Status != models.SubUnsubscribed {
			t.Errorf("quiet@ still %s on %s", x.Status, x.ListName)
		}
	}
}
