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

// browserLogin signs a new user of role in through the login form.
func browserLogin(t *testing.T, app *testApp, role string, step func(string, ...chromedp.Action[chromedp.Void])) {
	t.Helper()
	if _, err := app.store.CreateUser(context.Background(), role+"@example.com", "", "correct horse battery", role); err != nil {
		t.Fatal(err)
	}
	step("sign in as "+role,
		chromedp.Navigate(app.http.URL+"/login"),
		chromedp.SendKeys(chromedp.CSS(`input[name="email"]`), role+"@example.com"),
		chromedp.SendKeys(chromedp.CSS(`input[name="password"]`), "correct horse battery"),
		chromedp.Click(chromedp.CSS(`button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`.mainnav`)),
	)
}

// TestJourneyTestSendWithSubscriberData: a test send carries the merge
// data of the subscriber chosen, the postal address saved a moment
// before, and the outbox names the campaign; a mistake is said at the top.
func TestJourneyTestSendWithSubscriberData(t *testing.T) {
	ctx := browsertest.New(t, 90*time.Second)
	app := newTestApp(t, nil)
	bg := context.Background()
	listID, _ := composeFixture(t, app.store, 3)
	tpl := &models.Template{Kind: models.TemplateCampaign, Name: "City", Subject: "News for {{.Subscriber.Name}}",
		HTML: `<p>Members living in {{.Subscriber.Attributes.city}} get free delivery.</p><p>{{.Org.PostalAddress}} <a href="{{.UnsubscribeURL}}">Unsubscribe</a></p>`}
	if err := app.store.CreateTemplate(bg, tpl); err != nil {
		t.Fatal(err)
	}
	cp := &models.Campaign{Name: "Spring offer", FromEmail: "news@acme.test", TemplateID: &tpl.ID}
	if err := app.store.CreateCampaign(bg, cp, []int64{listID}); err != nil {
		t.Fatal(err)
	}
	ada := &models.Subscriber{Email: "ada@example.net", Name: "Ada Lovelace", Attributes: models.Attributes{"city": "Lyon"}}
	if err := app.store.CreateSubscriber(bg, ada, map[int64]string{listID: models.SubConfirmed}, models.Evidence{Source: models.SourceAdmin}); err != nil {
		t.Fatal(err)
	}
	step, text := browsertest.Steps(t, ctx, browsertest.ShotDir())
	browserLogin(t, app, models.RoleAdmin, step)
	page := fmt.Sprintf("%s/campaigns/%d", app.http.URL, cp.ID)

	step("a subscriber that does not exist: the error is at the top",
		chromedp.Navigate(page),
		chromedp.SendKeys(chromedp.CSS(`textarea[name="emails"]`), "me@acme.test"),
		chromedp.SendKeys(chromedp.CSS(`[data-testid="test-as"]`), "nobody@example.net"),
		chromedp.Click(chromedp.CSS(`[data-testid="send-test"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="alert"]`)),
	)
	if got := text(`[data-testid="alert"]`); !strings.Contains(got, "nobody@example.net") {
		t.Errorf("alert = %q", got)
	}
	// The banner is at the top of the page, in view without scrolling.
	if top, err := chromedp.Run(ctx, chromedp.Evaluate[float64](`document.querySelector('[data-testid="alert"]').getBoundingClientRect().top`)); err != nil || top > 300 {
		t.Errorf("the alert is %v px down the page (%v)", top, err)
	}
	browsertest.Widths(t, ctx, "campaign-test-error")

	// The address changes just before the test: the test has the new one.
	if err := app.store.SetSetting(bg, models.SettingPostalAddress, "9 Rue Neuve, 69002 Lyon"); err != nil {
		t.Fatal(err)
	}
	step("test with Ada's data",
		chromedp.Navigate(page),
		chromedp.SendKeys(chromedp.CSS(`textarea[name="emails"]`), "me@acme.test"),
		chromedp.SendKeys(chromedp.CSS(`[data-testid="test-as"]`), "ada@example.net"),
		chromedp.Click(chromedp.CSS(`[data-testid="send-test"]`)),
		chromedp.WaitVisible(chromedp.Search(`//*[@data-testid="flash" and contains(., "me@acme.test")]`)),
	)
	var msgID int64
	for deadline := time.Now().Add(20 * time.Second); msgID == 0 && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		msgs, err := app.store.Outbox(bg, models.OutboxQuery{})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			if m.RcptTo == "me@acme.test" {
				msgID = m.ID
			}
		}
	}
	if msgID == 0 {
		t.Fatal("the test message never reached the outbox")
	}
	step("the outbox names the campaign",
		chromedp.Navigate(app.http.URL+"/deliverability"),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="outbox-table"]`)),
	)
	if got := text(`[data-testid="outbox-campaign"]`); got != "Test of “Spring offer”" {
		t.Errorf("outbox campaign column = %q", got)
	}
	browsertest.Widths(t, ctx, "outbox")
	m, err := app.store.OutboxMessage(bg, msgID)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Members living in Lyon get free delivery", "9 Rue Neuve"} {
		if !strings.Contains(m.HTML, want) {
			t.Errorf("the test message lacks %q:\n%s", want, m.HTML)
		}
	}
	if !strings.Contains(m.Subject, "News for Ada Lovelace") {
		t.Errorf("subject = %q", m.Subject)
	}
}

// TestJourneyImportBadBytesMidFile: a file with an invalid byte in one row
// in the middle is imported: the mapping step previews the rows, the good
// rows are kept, and the page lists the bad row with its reason.
func TestJourneyImportBadBytesMidFile(t *testing.T) {
	ctx := browsertest.New(t, 90*time.Second)
	app := newTestApp(t, nil)
	l := &models.List{Name: "Members", Optin: models.OptinSingle, Visibility: models.ListPrivate}
	if err := app.store.CreateList(context.Background(), l); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	b.WriteString("email,name,city\n")
	for i := range 40 {
		if i == 20 {
			b.WriteString("jose@example.com,Jos\xe9 Garc\xeda,Madrid\n") // Latin-1
			continue
		}
		fmt.Fprintf(&b, "m%d@example.com,Member %d,Lyon\n", i, i)
	}
	csv := filepath.Join(t.TempDir(), "members.csv")
	if err := os.WriteFile(csv, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	step, text := browsertest.Steps(t, ctx, browsertest.ShotDir())
	browserLogin(t, app, models.RoleMarketer, step)
	step("upload",
		chromedp.Navigate(fmt.Sprintf("%s/imports/new?list=%d", app.http.URL, l.ID)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="import-upload"]`)),
		chromedp.SetUploadFiles(chromedp.CSS(`input[type="file"]`), []string{csv}),
		chromedp.Click(chromedp.CSS(`[data-testid="import-upload"] button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="import-mapping"]`)),
	)
	if got := text(`[data-testid="import-preview"]`); !strings.Contains(got, "m0@example.com") || !strings.Contains(got, "Member 1") {
		t.Errorf("preview = %q", got)
	}
	if basisLabel, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`select[name="lawful_basis"]`))); err != nil || !strings.Contains(basisLabel, "Legitimate interest") || strings.Contains(basisLabel, "legitimate_interest") {
		t.Errorf("lawful basis options = %q (%v)", basisLabel, err)
	}
	browsertest.Widths(t, ctx, "import-mapping")
	step("map and start",
		chromedp.EmulateViewport(1280, 900),
		chromedp.SetValue(chromedp.CSS(`select[name="lawful_basis"]`), "consent"),
		chromedp.SendKeys(chromedp.CSS(`input[name="source"]`), "Shop sign-up form"),
		chromedp.Click(chromedp.CSS(`[data-testid="start-import"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="rejected-rows"]`)),
	)
	if got := text(`[data-testid="inserted"]`); got != "39" {
		t.Errorf("imported = %s, want 39 (every good row)", got)
	}
	if got := text(`[data-testid="rejected-rows"] tbody`); !strings.Contains(got, "22") || !strings.Contains(got, "not UTF-8") {
		t.Errorf("rejected rows = %q, want line 22 and the reason", got)
	}
	browsertest.Widths(t, ctx, "import-finished")
}

// TestJourneySearchBulkUnsubscribe: a search for part of a surname finds
// the people whose name contains it, says how many, and unsubscribes the
// ticked one after a confirmation; the list filter shows list status.
func TestJourneySearchBulkUnsubscribe(t *testing.T) {
	ctx := browsertest.New(t, 90*time.Second)
	app := newTestApp(t, nil)
	bg := context.Background()
	listID := seedList(t, app.store, "News", "reader", 5)
	var ids []int64
	for _, p := range []struct{ email, name string }{{"ada@example.net", "Ada King Lovelace"}, {"byron@example.net", "George Lovelace Byron"}} {
		sub := &models.Subscriber{Email: p.email, Name: p.name}
		if err := app.store.CreateSubscriber(bg, sub, map[int64]string{listID: models.SubConfirmed}, models.Evidence{Source: models.SourceAdmin}); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, sub.ID)
	}
	step, text := browsertest.Steps(t, ctx, browsertest.ShotDir())
	browserLogin(t, app, models.RoleMarketer, step)
	step("search inside the names",
		chromedp.Navigate(app.http.URL+"/subscribers"),
		chromedp.SendKeys(chromedp.CSS(`input[name="q"]`), "velac"),
		chromedp.Click(chromedp.CSS(`[data-testid="subscriber-search"] button[type="submit"]`)),
		// The page before the search shows a count too (of everyone): wait
		// for the searched page, whose field carries the term as its value
		// attribute (typing sets only the property).
		chromedp.WaitVisible(chromedp.CSS(`input[name="q"][value="velac"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="result-count"] [data-testid="count-done"]`)),
	)
	if got := text(`[data-testid="result-count"]`); got != "2 subscribers match" {
		t.Errorf("result count = %q", got)
	}
	browsertest.Widths(t, ctx, "subscribers-search")
	step("tick Byron and unsubscribe",
		chromedp.EmulateViewport(1280, 900),
		chromedp.Click(chromedp.CSS(fmt.Sprintf(`input[name="id"][value="%d"]`, ids[1]))),
		chromedp.SetValue(chromedp.CSS(`[data-testid="bulk-action"]`), "unsubscribe"),
		chromedp.Click(chromedp.CSS(`[data-testid="bulk-apply"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="bulk-confirm"]`)),
	)
	if got := text(`[data-testid="bulk-confirm"] h1`); got != "Unsubscribe from every list 1 subscriber?" {
		t.Errorf("confirmation = %q", got)
	}
	if got := text(`[data-testid="bulk-confirm"]`); !strings.Contains(got, "byron@example.net") || strings.Contains(got, "ada@example.net") {
		t.Errorf("the confirmation names the wrong people: %q", got)
	}
	browsertest.Widths(t, ctx, "subscribers-bulk-confirm")
	step("confirm",
		chromedp.EmulateViewport(1280, 900),
		chromedp.Click(chromedp.CSS(`[data-testid="bulk-confirm"] [data-testid="confirm"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="flash"]`)),
	)
	if got := text(`[data-testid="flash"]`); got != "1 subscriber unsubscribed from every list." {
		t.Errorf("flash = %q", got)
	}
	step("the list filter shows the status on the list",
		chromedp.Navigate(fmt.Sprintf("%s/subscribers?q=velac&list=%d", app.http.URL, listID)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="subscribers-table"]`)),
	)
	if got := text(`[data-testid="subscribers-table"] tbody`); !strings.Contains(got, "unsubscribed") || !strings.Contains(got, "confirmed") {
		t.Errorf("list statuses = %q, want Byron unsubscribed and Ada confirmed", got)
	}
	for i, want := range []string{models.SubConfirmed, models.SubUnsubscribed} {
		subs, err := app.store.SubscriptionsOf(bg, ids[i])
		if err != nil || len(subs) != 1 || subs[0].Status != want {
			t.Errorf("subscriber %d: %+v, %v; want %s", i, subs, err, want)
		}
	}
}

// TestJourneyTemplateErrorInPlainWords: a misspelt field is explained in
// plain words under the HTML field, with the line and a pointer; fixing
// it clears the messages and the banner without a save.
func TestJourneyTemplateErrorInPlainWords(t *testing.T) {
	ctx := browsertest.New(t, 90*time.Second)
	app := newTestApp(t, nil)
	step, text := browsertest.Steps(t, ctx, browsertest.ShotDir())
	browserLogin(t, app, models.RoleMarketer, step)
	html := "<p>Hello</p>\n<p>Dear {{.Subscriber.Nmae}},</p>\n<p>{{.Org.PostalAddress}} <a href=\"{{.UnsubscribeURL}}\">Unsubscribe</a></p>"
	step("open a new template",
		chromedp.Navigate(app.http.URL+"/templates/new"),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="template-form"]`)),
	)
	fill := fmt.Sprintf(`(() => { const f = document.querySelector('#template-form');
		f.name.value = "Letter"; f.subject.value = "Hello"; f.html.value = %q; f.text.value = ""; return true; })()`, html)
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](fill)); err != nil {
		t.Fatal(err)
	}
	step("save it with a misspelt field",
		chromedp.Click(chromedp.CSS(`[data-testid="save-template"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="err-html"]`)),
	)
	msg := text(`[data-testid="err-html"]`)
	for _, want := range []string{"Line 2", "no field “Nmae”", "Did you mean {{.Subscriber.Name}}?"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message under the HTML field = %q, want %q", msg, want)
		}
	}
	for _, goWords := range []string{"can't evaluate", "mailer.", "template.html"} {
		if strings.Contains(msg, goWords) {
			t.Errorf("the message keeps Go's wording %q: %q", goWords, msg)
		}
	}
	if got := text(`[data-testid="pointer-html"]`); !strings.Contains(got, "2 | <p>Dear {{.Subscriber.Nmae}},</p>") || !strings.Contains(got, "^") {
		t.Errorf("pointer = %q", got)
	}
	if underText, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('#problem-text .field-error').length`)); err != nil || underText != 0 {
		t.Errorf("an error shows under the Text field (%d, %v)", underText, err)
	}
	browsertest.Widths(t, ctx, "template-error")
	step("back to desktop width", chromedp.EmulateViewport(1280, 900))
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(() => { const t = document.querySelector('textarea[name="html"]'); t.value = t.value.replace("Nmae", "Name");
			t.dispatchEvent(new Event("input", {bubbles: true})); return true; })()`)); err != nil {
		t.Fatal(err)
	}
	step("fix it: the messages and the banner go",
		chromedp.WaitNotPresent(chromedp.CSS(`[data-testid="err-html"]`)),
		chromedp.WaitNotPresent(chromedp.CSS(`[data-testid="form-errors"]`)),
	)
}

// TestJourneyPhoneNavigation: on a phone the menu opens, shows Log out and
// the skip link is the first stop of the keyboard.
func TestJourneyPhoneNavigation(t *testing.T) {
	ctx := browsertest.New(t, 60*time.Second)
	app := newTestApp(t, nil)
	step, text := browsertest.Steps(t, ctx, browsertest.ShotDir())
	browserLogin(t, app, models.RoleAdmin, step)
	step("the first Tab reaches the skip link",
		chromedp.Navigate(app.http.URL+"/deliverability/domains"),
		chromedp.KeyEvent("\t"),
	)
	if focused, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.activeElement.textContent.trim()`)); err != nil || focused != "Skip to content" {
		t.Errorf("first Tab focuses %q (%v)", focused, err)
	}
	if got := text(`[data-testid="subnav"] [aria-current="page"]`); got != "Sending domains" {
		t.Errorf("current tab = %q", got)
	}
	step("open the menu on a phone",
		chromedp.EmulateViewport(390, 844),
		chromedp.Click(chromedp.CSS(`.navtoggle summary`)),
		chromedp.WaitVisible(chromedp.CSS(`.mainnav`)),
		chromedp.WaitVisible(chromedp.CSS(`.whoami button`)),
	)
	browsertest.Screenshot(t, ctx, browsertest.ShotDir(), "phone-menu-390")
}
