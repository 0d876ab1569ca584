package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
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

// TestJourneySubscriberSelfService drives a real Chromium through a
// subscriber's whole life: sign up on the public forms (one double opt-in
// list, one single), confirm from the captured email, open the preference
// centre from the email, leave a list, download their data and erase
// themselves.
func TestJourneySubscriberSelfService(t *testing.T) {
	ctx := browsertest.New(t, 120*time.Second)
	f := newPubFixture(t, nil)
	store, base := f.store, f.app.http.URL
	if err := store.SetSetting(context.Background(), models.SettingOrgName, "Acme Letters"); err != nil {
		t.Fatal(err)
	}
	shots := filepath.Join(os.TempDir(), "herald-screenshots")
	downloads := t.TempDir()
	const email = "journey.person@example.net"

	step, text := browsertest.Steps(t, ctx, shots)
	subscribe := func(list int64) {
		t.Helper()
		step(fmt.Sprintf("subscribe to list %d", list),
			chromedp.Navigate(fmt.Sprintf("%s/subscribe/%d", base, list)),
			chromedp.WaitVisible(chromedp.CSS(`[data-testid="subscribe-form"]`)),
			chromedp.SendKeys(chromedp.CSS(`input[name="email"]`), email),
			chromedp.SendKeys(chromedp.CSS(`input[name="name"]`), "Journey Person"),
			chromedp.Click(chromedp.CSS(`input[name="consent"]`)),
			chromedp.Click(chromedp.CSS(`[data-testid="subscribe-button"]`)),
			chromedp.WaitVisible(chromedp.CSS(`[data-testid="thanks"]`)),
		)
	}

	subscribe(f.weekly)
	if !strings.Contains(text(`[data-testid="thanks"]`), "check your inbox") {
		t.Errorf("double opt-in thank-you = %q", text(`[data-testid="thanks"]`))
	}
	browsertest.Screenshot(t, ctx, shots, "subscribe-thanks")
	subscribe(f.news)
	sub := f.byEmail(email)
	if sub == nil {
		t.Fatal("the sign-up created no subscriber")
	}
	if got := subStatus(t, store, sub.ID, f.weekly); got != models.SubUnconfirmed {
		t.Fatalf("Weekly before confirming = %q, want unconfirmed", got)
	}

	// The confirmation email, read from the capture outbox.
	msg := waitForMail(t, store, email)
	confirm := linkPath(t, confirmLinkRE, msg.Text)
	prefs := linkPath(t, prefLinkRE, msg.Text)
	step("open the confirmation link",
		chromedp.Navigate(base+confirm),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="confirm-button"]`)),
	)
	if got := subStatus(t, store, sub.ID, f.weekly); got != models.SubUnconfirmed {
		t.Fatalf("opening the link confirmed (%q); only the button may", got)
	}
	step("press confirm",
		chromedp.Click(chromedp.CSS(`[data-testid="confirm-button"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="confirm"][data-state="done"]`)),
	)
	if got := subStatus(t, store, sub.ID, f.weekly); got != models.SubConfirmed {
		t.Fatalf("Weekly after confirming = %q", got)
	}
	rows := f.consents(sub.ID)
	if last := rows[len(rows)-1]; last.Action != models.ConsentConfirmed || last.IP == "" || !strings.Contains(last.UserAgent, "Chrome") {
		t.Errorf("proof of confirmation = %+v, want the browser's IP and user agent", last)
	}

	step("open the preference centre from the email",
		chromedp.Navigate(base+prefs),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="preferences"]`)),
	)
	if got := text(`[data-testid="brand-name"]`); got != "Acme Letters" {
		t.Errorf("brand = %q", got)
	}
	step("leave News",
		chromedp.Click(chromedp.CSS(fmt.Sprintf(`[data-testid="list-%d"] input`, f.news))),
		chromedp.Click(chromedp.CSS(`[data-testid="save-lists"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="saved"]`)),
	)
	if got, other := subStatus(t, store, sub.ID, f.news), subStatus(t, store, sub.ID, f.weekly); got != models.SubUnsubscribed || other != models.SubConfirmed {
		t.Fatalf("after leaving News: News %q, Weekly %q", got, other)
	}
	if hist := text(`[data-testid="consent-history"] tbody`); !strings.Contains(hist, "preference centre") || !strings.Contains(hist, "confirmed by email") {
		t.Errorf("consent history = %q", hist)
	}
	step("phone width", chromedp.EmulateViewport(390, 844), chromedp.WaitVisible(chromedp.CSS(`[data-testid="save-lists"]`)))
	browsertest.Screenshot(t, ctx, shots, "preferences-390px")
	step("desktop width", chromedp.EmulateViewport(1280, 900))

	step("download my data",
		chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
			yes := true
			_, err := chromedp.Call(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
				Behavior: browser.SetDownloadBehaviorBehaviorAllowAndName, DownloadPath: downloads, EventsEnabled: &yes,
			})
			return err
		}),
		chromedp.Click(chromedp.CSS(`[data-testid="export"]`)),
	)
	data := waitForDownload(t, downloads)
	if data.Profile.Email != email || data.Profile.Name != "Journey Person" || len(data.Memberships) != 2 {
		t.Errorf("downloaded data = %+v, want the profile and both memberships", data)
	}
	var confirmed bool
	for _, c := range data.Consents {
		confirmed = confirmed || c.Action == models.ConsentConfirmed
	}
	if !confirmed {
		t.Errorf("downloaded consents lack the confirmation: %+v", data.Consents)
	}

	step("erase myself",
		chromedp.Click(chromedp.CSS(`[data-testid="erase-link"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="erase-button"]`)),
		chromedp.Click(chromedp.CSS(`[data-testid="erase-button"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="erased"]`)),
	)
	browsertest.Screenshot(t, ctx, shots, "erased")
	if f.byEmail(email) != nil {
		t.Fatal("the subscriber still exists after erasing themselves")
	}
	if _, err := store.Subscriber(context.Background(), sub.ID); !errors.Is(err, models.ErrNotFound) {
		t.Errorf("subscriber %d: %v, want not found", sub.ID, err)
	}
	step("the link is dead",
		chromedp.Navigate(base+prefs),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="error-page"]`)),
	)
}

// waitForDownload waits for a finished JSON download in dir.
func waitForDownload(t *testing.T, dir string) *models.SubjectData {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			b, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil || strings.HasSuffix(e.Name(), ".crdownload") {
				continue
			}
			var d models.SubjectData
			if json.Unmarshal(b, &d) == nil && d.Profile.ID != 0 {
				return &d
			}
		}
	}
	t.Fatalf("no JSON download in %s within 20s", dir)
	return nil
}
