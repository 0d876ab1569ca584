package web

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/herald-mail/herald/internal/browsertest"
	"github.com/herald-mail/herald/internal/token"
	"github.com/herald-mail/herald/models"
)

// TestJourneySegmentCampaign: a marketer builds a segment in Chromium from
// an attribute condition and an engagement condition, watching the count
// follow; opens came through the real tracking endpoint (one from a
// machine, which does not count). A campaign goes to the segment minus an
// exclusion list; the report and the captured messages show exactly the
// expected people.
func TestJourneySegmentCampaign(t *testing.T) {
	ctx := browsertest.New(t, 60*time.Second)
	app := newTestApp(t, nil)
	base := app.http.URL
	bg := context.Background()
	shots := filepath.Join(os.TempDir(), "herald-screenshots", "segments")
	s := app.store

	// Twelve readers: r1…r6 in Paris, r7…r12 in Lyon; r2 is staff too.
	_, tmpl := composeFixture(t, s, 0)
	news := &models.List{Name: "Newsletter", Optin: models.OptinSingle, Visibility: models.ListPublic}
	staff := &models.List{Name: "Staff", Optin: models.OptinSingle, Visibility: models.ListPrivate}
	for _, l := range []*models.List{news, staff} {
		if err := s.CreateList(bg, l); err != nil {
			t.Fatal(err)
		}
	}
	ids := map[string]int64{}
	for i := 1; i <= 12; i++ {
		city := "Paris"
		if i > 6 {
			city = "Lyon"
		}
		lists := map[int64]string{news.ID: models.SubConfirmed}
		if i == 2 {
			lists[staff.ID] = models.SubConfirmed
		}
		sub := &models.Subscriber{Email: fmt.Sprintf("r%d@example.org", i), Name: fmt.Sprintf("Reader %d", i), Attributes: models.Attributes{"city": city}}
		if err := s.CreateSubscriber(bg, sub, lists, models.Evidence{Source: models.SourceForm, Page: "https://acme.test/join"}); err != nil {
			t.Fatal(err)
		}
		ids[fmt.Sprintf("r%d", i)] = sub.ID
	}
	if _, err := s.CreateUser(bg, "marketer@example.com", "", "a long enough password", models.RoleMarketer); err != nil {
		t.Fatal(err)
	}

	// An earlier campaign reached everyone an hour ago; r1, r2, r3 and r8
	// opened it in a mail client, r5's copy was fetched by a machine.
	warm := &models.Campaign{Name: "October", TemplateID: &tmpl, FromEmail: "news@acme.test", TrackOpens: true}
	if err := s.CreateCampaign(bg, warm, []int64{news.ID}); err != nil {
		t.Fatal(err)
	}
	if err := s.StartCampaign(bg, warm.ID); err != nil {
		t.Fatal(err)
	}
	s.PauseCampaign(bg, warm.ID)
	for done := false; !done; {
		var err error
		if done, err = s.MaterializeCampaign(bg, warm.ID, 100); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DB().Exec("UPDATE deliveries SET status = 'sent', sent_at = ? WHERE campaign_id = ?", time.Now().UTC().Add(-time.Hour), warm.ID).Error; err != nil {
		t.Fatal(err)
	}
	keys := token.NewKeyring(strings.Repeat("s", 32)) // newTestApp's secret
	open := func(who, agent string) {
		var d int64
		s.DB().Raw("SELECT id FROM deliveries WHERE campaign_id = ? AND subscriber_id = ?", warm.ID, ids[who]).Scan(&d)
		req, _ := http.NewRequest("GET", base+"/t/o/"+keys.Sign(token.Open, d), nil)
		req.Header.Set("User-Agent", agent)
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("open pixel for %s: %v %v", who, resp, err)
		}
		resp.Body.Close()
	}
	firefox := "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Thunderbird/128.0"
	for _, who := range []string{"r1", "r2", "r3", "r8"} {
		open(who, firefox)
	}
	open("r5", "Go-http-client/1.1")
	waitFor(t, "the tracking writer", 10*time.Second, func() bool {
		var n int64
		s.DB().Raw("SELECT COUNT(*) FROM events WHERE kind = 'open' AND subscriber_id IS NOT NULL").Scan(&n)
		return n == 5
	})

	step, text := browsertest.Steps(t, ctx, shots)
	setSelect := func(sel, v string) chromedp.Action[chromedp.Void] {
		js := fmt.Sprintf(`(() => { const e = document.querySelector(%q); e.value = %q; e.dispatchEvent(new Event('change', {bubbles: true})); return true; })()`, sel, v)
		return func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
			// htmx wires a swapped-in element up after it settles; a
			// change before that would go unheard (a person is slower).
			for i := 0; ; i++ {
				idle, err := chromedp.Evaluate[bool](`!document.querySelector('.htmx-added, .htmx-settling, .htmx-request, .htmx-swapping')`)(ctx, tg)
				if err != nil {
					return chromedp.Void{}, err
				}
				if idle && i > 0 {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			_, err := chromedp.Evaluate[bool](js)(ctx, tg)
			return chromedp.Void{}, err
		}
	}
	count := func(n string) chromedp.Action[chromedp.Void] {
		return chromedp.WaitVisible(chromedp.Search(`//strong[@data-testid="segment-count" and text()="` + n + `"]`))
	}
	step("sign in",
		chromedp.Navigate(base+"/login"),
		chromedp.SendKeys(chromedp.CSS(`input[name="email"]`), "marketer@example.com"),
		chromedp.SendKeys(chromedp.CSS(`input[name="password"]`), "a long enough password"),
		chromedp.Click(chromedp.CSS(`form button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`.shell`)),
	)
	step("Subscribers → Segments → build one",
		chromedp.Navigate(base+"/subscribers"),
		chromedp.Click(chromedp.Search(`//nav[@data-testid="subnav"]//a[text()="Segments"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="empty"]`)),
		chromedp.Click(chromedp.CSS(`[data-testid="empty"] a[role="button"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="segment-form"]`)),
		chromedp.SendKeys(chromedp.CSS(`input[name="name"]`), "Paris openers"),
		chromedp.SendKeys(chromedp.CSS(`[data-testid="condition-0"] [data-testid="c-key"]`), "city"),
		chromedp.SendKeys(chromedp.CSS(`[data-testid="condition-0"] [data-testid="c-value"]`), "paris"),
		count("6"),
	)
	if got := text(`[data-testid="segment-preview"]`); !strings.Contains(got, "r1@example.org") || strings.Contains(got, "r7@example.org") {
		t.Errorf("preview of city = paris: %q", got)
	}
	step("add a condition",
		chromedp.Click(chromedp.CSS(`[data-testid="add-condition-0"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="condition-1"]`)),
	)
	step("make it an engagement condition",
		setSelect(`[data-testid="condition-1"] [data-testid="c-field"]`, "opened"),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="condition-1"] [data-testid="c-days"]`)),
	)
	step("the count follows",
		chromedp.SendKeys(chromedp.CSS(`[data-testid="condition-1"] [data-testid="c-days"]`), "30"),
		count("3"), // r1, r2, r3: r5's open was a machine's, r8 is in Lyon
	)
	browsertest.Screenshot(t, ctx, shots, "segment-builder")
	step("save the segment",
		chromedp.Click(chromedp.CSS(`[data-testid="save-segment"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="flash"]`)),
		count("3"),
	)
	segs, err := s.Segments(bg)
	if err != nil || len(segs) != 1 || segs[0].Conditions.Count() != 2 {
		t.Fatalf("saved segments = %+v, %v", segs, err)
	}

	step("a campaign to the segment, minus the staff list",
		chromedp.Navigate(fmt.Sprintf("%s/campaigns/new?segment=%d", base, segs[0].ID)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="campaign-form"]`)),
		chromedp.WaitVisible(chromedp.Search(`//strong[@data-testid="recipient-count" and text()="3"]`)),
		chromedp.Click(chromedp.CSS(`[data-testid="audience"] summary`)),
		chromedp.Click(chromedp.CSS(fmt.Sprintf(`input[name="exclude_lists"][value="%d"]`, staff.ID))),
		chromedp.WaitVisible(chromedp.Search(`//strong[@data-testid="recipient-count" and text()="2"]`)),
		chromedp.SendKeys(chromedp.CSS(`input[name="name"]`), "November for Paris"),
		chromedp.SendKeys(chromedp.CSS(`input[name="from_email"]`), "news@acme.test"),
		chromedp.Click(chromedp.CSS(`[data-testid="save-campaign"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="campaign-status"]`)),
	)
	if got := text(`[data-testid="campaign-exclusions"]`); got != "list Staff" {
		t.Errorf("campaign page exclusions = %q", got)
	}
	if got := text(`[data-testid="check-campaign.recipients"]`); !strings.Contains(got, "2 recipients") {
		t.Errorf("checklist recipients = %q", got)
	}
	step("send it",
		chromedp.Click(chromedp.CSS(`[data-testid="send-now"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="start-confirm"]`)),
	)
	if got := text(`[data-testid="confirm-recipients"]`); !strings.HasPrefix(got, "2 ") {
		t.Errorf("confirmation recipients = %q", got)
	}
	step("confirm and wait for it to finish",
		chromedp.Click(chromedp.CSS(`[data-testid="confirm-send"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="progress"][data-percent="100"]`)),
		chromedp.Reload(),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="report-link"]`)),
		chromedp.Click(chromedp.CSS(`[data-testid="report-link"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="report"]`)),
	)
	if got := text(`[data-testid="delivered"]`); got != "2" {
		t.Errorf("report: delivered = %q, want 2", got)
	}
	browsertest.Screenshot(t, ctx, shots, "segment-campaign-report")

	var rcpts []string
	s.DB().Raw("SELECT o.rcpt_to FROM outbox o JOIN campaigns c ON c.id = o.campaign_id WHERE c.name = 'November for Paris' ORDER BY o.rcpt_to").Scan(&rcpts)
	if !slices.Equal(rcpts, []string{"r1@example.org", "r3@example.org"}) {
		t.Errorf("the campaign went to %v, want r1 and r3 (r2 is staff, r5's open was a machine's, r8 is in Lyon)", rcpts)
	}
}
