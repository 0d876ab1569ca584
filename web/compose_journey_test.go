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

// TestJourneyFirstCampaign drives a real Chromium from an empty install to
// a sent campaign: first admin, a list, 200 subscribers, a template whose
// preview follows the subject as it is typed, a campaign with its live
// recipient count, a test message, then the campaign itself through the
// capture transport, its progress bar reaching 100% without a reload.
func TestJourneyFirstCampaign(t *testing.T) {
	ctx := browsertest.New(t, 150*time.Second)
	app := newTestApp(t, nil)
	base := app.http.URL
	shots := filepath.Join(os.TempDir(), "herald-screenshots", "compose")
	bg := context.Background()

	step, text := browsertest.Steps(t, ctx, shots)

	step("create first admin",
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="setup"]`)),
		chromedp.SendKeys(chromedp.CSS(`input[name="name"]`), "Ada Admin"),
		chromedp.SendKeys(chromedp.CSS(`input[name="email"]`), "admin@example.com"),
		chromedp.SendKeys(chromedp.CSS(`input[name="password"]`), "a long enough password"),
		chromedp.Click(chromedp.CSS(`button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="empty"]`)),
	)
	step("create a list",
		chromedp.Navigate(base+"/lists/new"),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="list-form"]`)),
		chromedp.SendKeys(chromedp.CSS(`input[name="name"]`), "Newsletter"),
		chromedp.Click(chromedp.CSS(`input[name="optin"][value="single"]`)),
		chromedp.Click(chromedp.CSS(`[data-testid="list-form"] button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="lists-table"]`)),
	)
	// 200 subscribers straight into the list (the import journey covers
	// importing), and the postal address the checklist asks for.
	lists, err := app.store.Lists(bg)
	if err != nil || len(lists) != 1 {
		t.Fatalf("lists = %v, %v", lists, err)
	}
	now := time.Now().UTC()
	if err := app.store.DB().Exec(`INSERT INTO subscribers (email, name, attributes, status, created_at, updated_at)
		WITH RECURSIVE seq(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < 200)
		SELECT 'reader' || i || '@example.org', 'Reader ' || i, '{}', 'active', ?, ? FROM seq`, now, now).Error; err != nil {
		t.Fatal(err)
	}
	if err := app.store.DB().Exec(`INSERT INTO subscriptions (subscriber_id, list_id, status, created_at, updated_at)
		SELECT id, ?, 'confirmed', ?, ? FROM subscribers`, lists[0].ID, now, now).Error; err != nil {
		t.Fatal(err)
	}
	app.store.SetSetting(bg, models.SettingPostalAddress, "1 Herald Way, 69001 Lyon, France")
	app.store.SetSetting(bg, models.SettingOrgName, "Acme")

	step("templates empty state leads to a new template",
		chromedp.Navigate(base+"/templates"),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="empty"]`)),
		chromedp.Click(chromedp.CSS(`[data-testid="empty"] a[role="button"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="template-form"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="preview-desktop"]`)),
	)
	if got := text(`[data-testid="preview-subject"]`); got != "News from Acme" {
		t.Errorf("initial preview subject = %q", got)
	}
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('input[name="subject"]').value = ""`)); err != nil {
		t.Fatal(err)
	}
	step("the preview follows the subject as it is typed",
		chromedp.SendKeys(chromedp.CSS(`input[name="subject"]`), "November news for {{.Subscriber.Name}}"),
		chromedp.WaitVisible(chromedp.Search(`//strong[@data-testid="preview-subject" and text()="November news for Ada Lovelace"]`)),
	)
	browsertest.Screenshot(t, ctx, shots, "template-editor")
	step("save the template",
		chromedp.Click(chromedp.CSS(`[data-testid="save-template"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="flash"]`)),
	)

	step("campaigns empty state leads to a new campaign",
		chromedp.Navigate(base+"/campaigns"),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="empty"]`)),
		chromedp.Click(chromedp.CSS(`[data-testid="empty"] a[role="button"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="campaign-form"]`)),
	)
	step("the recipient count follows the lists",
		chromedp.Click(chromedp.CSS(`input[name="lists"]`)), // untick the preselected list
		chromedp.WaitVisible(chromedp.Search(`//strong[@data-testid="recipient-count" and text()="0"]`)),
		chromedp.Click(chromedp.CSS(`input[name="lists"]`)),
		chromedp.WaitVisible(chromedp.Search(`//strong[@data-testid="recipient-count" and text()="200"]`)),
	)
	step("save the campaign",
		chromedp.SendKeys(chromedp.CSS(`input[name="name"]`), "November"),
		chromedp.SendKeys(chromedp.CSS(`input[name="from_email"]`), "news@acme.test"),
		chromedp.Click(chromedp.CSS(`[data-testid="save-campaign"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="campaign-status"]`)),
	)
	if got := text(`[data-testid="campaign-status"]`); got != "draft" {
		t.Fatalf("status = %q", got)
	}
	if got := text(`[data-testid="check-campaign.recipients"]`); !strings.Contains(got, "200 recipients") {
		t.Errorf("checklist recipients = %q", got)
	}
	// The campaign holds the default template's placeholder: the checklist
	// blocks it until the marketer writes the message, here in Markdown.
	if got, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('[data-testid="check-campaign.placeholder"]').dataset.state`)); err != nil || got != "bad" {
		t.Errorf("placeholder check = %q (%v), want bad", got, err)
	}
	step("edit the campaign's message",
		chromedp.Click(chromedp.CSS(`[data-testid="edit-campaign"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="campaign-content"]`)),
		chromedp.Click(chromedp.CSS(`[data-testid="format-markdown"]`)),
	)
	markdown := "# November at {{.Org.Name}}\n\nHello {{.Subscriber.Name}}, the *winter market* opens on Friday.\n\n" +
		"- Mulled wine\n- Lanterns\n\nSee [the programme](https://acme.test/programme).\n\n" +
		"[Unsubscribe]({{.UnsubscribeURL}}) · {{.Org.PostalAddress}}\n"
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](fmt.Sprintf(`(() => { const b = document.querySelector('[data-testid="campaign-body"]');
		b.value = %q; document.querySelector('input[name="preheader"]').value = "Mulled wine and lanterns"; return true; })()`, markdown))); err != nil {
		t.Fatal(err)
	}
	browsertest.Screenshot(t, ctx, shots, "campaign-markdown")
	step("save the message",
		chromedp.Click(chromedp.CSS(`[data-testid="save-campaign"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="campaign-status"]`)),
	)
	for id, want := range map[string]string{"campaign.placeholder": "ok", "campaign.template": "ok", "campaign.unsubscribe": "ok"} {
		if got, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('[data-testid="check-`+id+`"]').dataset.state`)); err != nil || got != want {
			t.Errorf("check %s = %q (%v), want %s", id, got, err, want)
		}
	}
	if got := text(`[data-testid="check-campaign.text_part"]`); !strings.Contains(got, "Derived from the HTML") {
		t.Errorf("text part check = %q", got)
	}
	if tpls, _ := app.store.Templates(bg, models.TemplateCampaign); len(tpls) != 1 || !strings.Contains(tpls[0].HTML, "Write your message here") || strings.Contains(tpls[0].HTML, "winter market") {
		t.Error("editing the campaign changed its template")
	}
	step("send a test",
		chromedp.SendKeys(chromedp.CSS(`textarea[name="emails"]`), "me@acme.test"),
		chromedp.Click(chromedp.CSS(`[data-testid="send-test"]`)),
		// The "saved" flash is still on screen: wait for the test's own.
		chromedp.WaitVisible(chromedp.Search(`//*[@data-testid="flash" and contains(., "me@acme.test")]`)),
	)
	if got := text(`[data-testid="flash"]`); !strings.Contains(got, "me@acme.test") {
		t.Errorf("flash after test = %q", got)
	}
	step("send now: the confirmation says to whom, from whom, what and how",
		chromedp.Click(chromedp.CSS(`[data-testid="send-now"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="start-confirm"]`)),
	)
	for sel, want := range map[string]string{`[data-testid="confirm-recipients"]`: "200", `[data-testid="confirm-transport"]`: "capture",
		`[data-testid="confirm-from"]`: "@", `[data-testid="confirm-subject"]`: ""} {
		if got := text(sel); !strings.Contains(got, want) || got == "" {
			t.Errorf("%s = %q, want it to say %q", sel, got, want)
		}
	}
	browsertest.Widths(t, ctx, "campaign-start-confirm")
	step("confirm the send",
		chromedp.Click(chromedp.CSS(`[data-testid="confirm-send"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="progress-panel"]`)),
	)
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.heraldNoReload = true`)); err != nil {
		t.Fatal(err)
	}
	step("watch the progress reach 100%", chromedp.WaitVisible(chromedp.CSS(`[data-testid="progress"][data-percent="100"]`)))
	same, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.heraldNoReload === true`))
	if err != nil || !same {
		t.Error("the page reloaded while the campaign was sending")
	}
	if got := text(`[data-testid="count-sent"]`); got != "200" {
		t.Errorf("sent counter = %q, want 200", got)
	}
	step("open the campaign page",
		chromedp.Reload(),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="report-link"]`)),
	)
	if got := text(`[data-testid="campaign-status"]`); got != "finished" {
		t.Errorf("status after sending = %q", got)
	}
	browsertest.Screenshot(t, ctx, shots, "campaign-sent-1280px")
	step("phone width", chromedp.EmulateViewport(390, 844), chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS(`[data-testid="progress"]`)))
	browsertest.Screenshot(t, ctx, shots, "campaign-sent-390px")
	t.Logf("campaign page screenshots in %s", shots)

	step("the outbox holds what went out",
		chromedp.EmulateViewport(1280, 900),
		chromedp.Navigate(base+"/deliverability"),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="outbox-table"]`)),
	)
	var n int64
	app.store.DB().Raw("SELECT COUNT(*) FROM outbox").Scan(&n)
	if n != 201 {
		t.Errorf("outbox messages = %d, want 200 and the test", n)
	}

	var campaignID int64
	app.store.DB().Raw("SELECT id FROM campaigns WHERE name = 'November'").Scan(&campaignID)
	sent, err := app.store.Outbox(bg, models.OutboxQuery{CampaignID: campaignID})
	if err != nil || len(sent) == 0 {
		t.Fatalf("outbox of the campaign: %d, %v", len(sent), err)
	}
	msg, err := app.store.OutboxMessage(bg, sent[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	for part, wants := range map[string][]string{
		msg.HTML: {"<h1>November at Acme</h1>", "<em>winter market</em>", "<li>Mulled wine</li>", "Mulled wine and lanterns", "1 Herald Way"},
		msg.Text: {"November at Acme\r\n====", "the winter market opens on Friday.", "- Mulled wine", "the programme [1]", "[1] http"},
	} {
		for _, want := range wants {
			if !strings.Contains(part, want) {
				t.Errorf("message lacks %q:\n%s", want, part)
			}
		}
	}
	if strings.Contains(msg.Text+msg.HTML, "Write your message here") {
		t.Error("the placeholder went out")
	}
	step("open the report from the campaign page",
		chromedp.Navigate(fmt.Sprintf("%s/campaigns/%d", base, campaignID)),
		chromedp.Click(chromedp.CSS(`[data-testid="report-link"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="report"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="providers"]`)),
	)
	if got := text(`[data-testid="delivered"]`); got != "200" {
		t.Errorf("report: delivered = %q, want 200", got)
	}
	browsertest.Screenshot(t, ctx, shots, "report-1280px")
	t.Logf("report screenshot in %s", shots)
}
