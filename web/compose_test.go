package web

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/herald-mail/herald/internal/testdb"
	"github.com/herald-mail/herald/mailer"
	"github.com/herald-mail/herald/models"
)

// seedList creates a single opt-in list with n confirmed subscribers
// named {prefix}{i}@example.org, in bulk.
func seedList(t testing.TB, s *models.Store, name, prefix string, n int) int64 {
	t.Helper()
	return testdb.Readers(t, s, name, n, func(k int) testdb.Reader {
		return testdb.Reader{Email: fmt.Sprintf("%s%d@example.org", prefix, k), Name: fmt.Sprintf("Reader %d", k)}
	})
}

const goodHTML = `<html><body><p>Hi {{.Subscriber.Name}}, here is our news, with enough words to read.</p>
<p><a href="https://example.com/read">Read</a></p>
<p>{{.Org.PostalAddress}} · <a href="{{.UnsubscribeURL}}">Unsubscribe</a></p></body></html>`

// composeFixture: a postal address, a list of n readers and a good
// campaign template.
func composeFixture(t testing.TB, s *models.Store, n int) (listID, tmplID int64) {
	t.Helper()
	ctx := context.Background()
	s.SetSetting(ctx, models.SettingPostalAddress, "1 Herald Way, Lyon")
	s.SetSetting(ctx, models.SettingOrgName, "Acme")
	listID = seedList(t, s, "News", "reader", n)
	tpl := &models.Template{Kind: models.TemplateCampaign, Name: "Monthly", Subject: "Hello {{.Subscriber.Name}}", HTML: goodHTML}
	if err := s.CreateTemplate(ctx, tpl); err != nil {
		t.Fatal(err)
	}
	return listID, tpl.ID
}

func newCampaign(t testing.TB, s *models.Store, tmplID int64, lists []int64, mod func(*models.Campaign)) int64 {
	t.Helper()
	c := &models.Campaign{Name: "November", TemplateID: &tmplID, FromName: "Acme", FromEmail: "news@acme.test", TrackOpens: true, TrackClicks: true}
	if mod != nil {
		mod(c)
	}
	if err := s.CreateCampaign(context.Background(), c, lists); err != nil {
		t.Fatal(err)
	}
	return c.ID
}

func waitFor(t *testing.T, what string, d time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestTemplatePages(t *testing.T) {
	app := newTestApp(t, nil)
	ctx := context.Background()
	m := app.user(models.RoleMarketer)

	p := m.get("/templates")
	if p.StatusCode != 200 || !strings.Contains(p.Doc.Find(`[data-testid="empty"]`).Text(), "New template") {
		t.Fatalf("empty templates page: %d %q", p.StatusCode, p.Doc.Find(`[data-testid="empty"]`).Text())
	}
	// New template starts from the default template, whose footer has the
	// three compliance items; its preview is rendered at once.
	p = m.get("/templates/new")
	html := p.Doc.Find(`textarea[name="html"]`).Text()
	for _, want := range []string{"{{.UnsubscribeURL}}", "{{.PreferencesURL}}", "{{.Org.PostalAddress}}", "@media"} {
		if !strings.Contains(html, want) {
			t.Errorf("default template lacks %q", want)
		}
	}
	if f := p.Doc.Find(`[data-testid="template-form"]`); f.AttrOr("hx-trigger", "") != "input changed delay:400ms" || f.AttrOr("hx-post", "") != "/templates/preview" {
		t.Errorf("form is not wired to the live preview: %q %q", f.AttrOr("hx-trigger", ""), f.AttrOr("hx-post", ""))
	}
	for _, sel := range []string{`[data-testid="preview-desktop"]`, `[data-testid="preview-mobile"]`} {
		fr := p.Doc.Find(sel)
		if sb, ok := fr.Attr("sandbox"); !ok || sb != "" || !strings.Contains(fr.AttrOr("srcdoc", ""), "Unsubscribe") {
			t.Errorf("%s: sandbox=%q srcdoc=%.80q", sel, sb, fr.AttrOr("srcdoc", ""))
		}
	}

	// The preview follows what is typed, with a real subscriber's data.
	l := seedList(t, app.store, "News", "reader", 1)
	_ = l
	pv := m.postForm("/templates/preview", url.Values{"subject": {"Hi {{.Subscriber.Name}}"}, "html": {"<p>{{.Subscriber.Email}}</p>"}, "preview_email": {"reader0@example.org"}})
	if got := pv.Doc.Find(`[data-testid="preview-subject"]`).Text(); got != "Hi Reader 0" {
		t.Errorf("preview subject = %q, want %q", got, "Hi Reader 0")
	}
	if !strings.Contains(pv.Doc.Find(`[data-testid="preview-desktop"]`).AttrOr("srcdoc", ""), "reader0@example.org") {
		t.Errorf("preview does not use the subscriber's data: %s", pv.Body)
	}
	pv = m.postForm("/templates/preview", url.Values{"subject": {"x"}, "html": {"<p>\n{{ .Subscriber.Nmae }}</p>"}})
	if e := pv.Doc.Find(`[data-testid="preview-error"]`).Text(); !strings.Contains(e, "Nmae") || !strings.Contains(e, "Line 2") {
		t.Errorf("preview error = %q, want the field and line 2", e)
	}
	// The preview also replaces the message under the HTML field.
	if e := pv.Doc.Find(`#problem-html[hx-swap-oob] [data-testid="err-html"]`).Text(); !strings.Contains(e, "Did you mean {{.Subscriber.Name}}") {
		t.Errorf("out-of-band problem under the HTML field = %q", e)
	}

	// A broken template is refused with its line number, the input kept.
	form := url.Values{"name": {"Broken"}, "kind": {"campaign"}, "subject": {"Hi"}, "html": {"<p>ok</p>\n<p>{{ if }}</p>"}}
	p = m.postForm("/templates", form)
	if p.StatusCode != 422 || !strings.Contains(p.Doc.Find(`[data-testid="err-html"]`).Text(), "Line 2") ||
		!strings.Contains(p.Doc.Find(`[data-testid="pointer-html"]`).Text(), "2 | <p>{{ if }}</p>") {
		t.Fatalf("broken template: %d %q", p.StatusCode, p.Doc.Find(`[data-testid="err-html"]`).Text())
	}
	if got := p.Doc.Find(`textarea[name="html"]`).Text(); got != form.Get("html") || p.Doc.Find(`input[name="name"]`).AttrOr("value", "") != "Broken" {
		t.Errorf("form values not kept: %q", got)
	}
	p = m.postForm("/templates", url.Values{"name": {"Monthly"}, "kind": {"campaign"}, "subject": {"News"}, "html": {goodHTML}})
	if p.StatusCode != 200 || !strings.HasSuffix(p.Request.URL.Path, "/edit") {
		t.Fatalf("create: %d at %s", p.StatusCode, p.Request.URL)
	}
	// Same name again: 422 on the name field.
	if p := m.postForm("/templates", url.Values{"name": {"Monthly"}, "kind": {"campaign"}, "subject": {"News"}, "html": {goodHTML}}); p.StatusCode != 422 || p.Doc.Find(`[data-testid="err-name"]`).Length() == 0 {
		t.Errorf("duplicate name: %d", p.StatusCode)
	}
	tp, err := app.store.TemplateByName(ctx, models.TemplateCampaign, "Monthly")
	if err != nil {
		t.Fatal(err)
	}
	edit := fmt.Sprintf("/templates/%d", tp.ID)
	if p := m.postForm(edit, url.Values{"name": {"Monthly"}, "kind": {"campaign"}, "subject": {"Changed"}, "html": {goodHTML}}); p.StatusCode != 200 {
		t.Fatalf("update: %d", p.StatusCode)
	}
	if got, _ := app.store.Template(ctx, tp.ID); got.Subject != "Changed" {
		t.Errorf("subject after update = %q", got.Subject)
	}
	if p := m.get("/templates"); p.Doc.Find(`[data-testid="templates-table"] tbody tr`).Length() != 1 {
		t.Errorf("templates table rows = %d", p.Doc.Find(`[data-testid="templates-table"] tbody tr`).Length())
	}

	// A template used by a draft campaign cannot be deleted; once unused it can, after confirmation.
	cid := newCampaign(t, app.store, tp.ID, []int64{l}, nil)
	if p := m.get(edit + "/delete"); p.Doc.Find(`[data-testid="confirm-delete"]`).Length() == 0 {
		t.Errorf("no confirmation before deleting")
	}
	if p := m.postForm(edit+"/delete", nil); p.StatusCode != 409 || !strings.Contains(p.Body, "used by 1 campaigns") {
		t.Errorf("delete in use: %d", p.StatusCode)
	}
	app.store.CancelCampaign(ctx, cid)
	if p := m.postForm(edit+"/delete", nil); p.StatusCode != 200 || p.Request.URL.Path != "/templates" {
		t.Errorf("delete: %d at %s", p.StatusCode, p.Request.URL)
	}
	if _, err := app.store.Template(ctx, tp.ID); err == nil {
		t.Error("template still there after delete")
	}
	// Viewers read but do not write.
	v := app.user(models.RoleViewer)
	if p := v.get("/templates"); p.StatusCode != 200 {
		t.Errorf("viewer list: %d", p.StatusCode)
	}
	if p := v.postForm("/templates", url.Values{"name": {"X"}, "html": {"<p>x</p>"}}); p.StatusCode != 403 {
		t.Errorf("viewer create: %d", p.StatusCode)
	}
}

// The recipient count shown before sending is the number materialisation
// then creates (minus the suppressed rows): same rule, each address once.
func TestRecipientCountMatchesMaterialisation(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		app := newTestApp(t, s)
		ctx := context.Background()
		a := seedList(t, s, "A", "a", 30)
		b := seedList(t, s, "B", "b", 20)
		// 10 people of A are on B too.
		now := time.Now().UTC()
		if err := s.DB().Exec(`INSERT INTO subscriptions (subscriber_id, list_id, status, created_at, updated_at)
			SELECT id, ?, 'confirmed', ?, ? FROM subscribers WHERE email LIKE 'a%' AND id IN (SELECT id FROM subscribers WHERE email LIKE 'a%' ORDER BY id LIMIT 10)`, b, now, now).Error; err != nil {
			t.Fatal(err)
		}
		ev := models.Evidence{Source: "test", Actor: "test"}
		unsub, _ := s.SubscriberByEmail(ctx, "a1@example.org")
		s.SetSubscriptions(ctx, unsub.ID, map[int64]string{a: models.SubUnsubscribed, b: models.SubUnsubscribed}, ev) // on both lists, gone from both
		block, _ := s.SubscriberByEmail(ctx, "a2@example.org")
		s.SetBlocklisted(ctx, block.ID, true, ev)
		s.AddSuppression(ctx, "b3@example.org", models.SuppressManual, "")
		s.AddSuppression(ctx, "A4@Example.org", models.SuppressHardBounce, "")
		// A double opt-in list whose members never confirmed adds nobody.
		d := &models.List{Name: "Double", Optin: models.OptinDouble, Visibility: models.ListPrivate}
		s.CreateList(ctx, d)
		s.DB().Exec(`INSERT INTO subscriptions (subscriber_id, list_id, status, created_at, updated_at)
			SELECT id, ?, 'unconfirmed', ?, ? FROM subscribers WHERE email LIKE 'b%'`, d.ID, now, now)

		want := int64(30 + 20 - 1 - 1 - 1 - 1) // a1 unsubscribed, a2 blocklisted, b3 and a4 suppressed
		got, err := s.CountEligibleRecipients(ctx, []int64{a, b, d.ID})
		if err != nil || got != want {
			t.Fatalf("CountEligibleRecipients = %d, %v; want %d", got, err, want)
		}
		m := app.user(models.RoleMarketer)
		p := m.postForm("/campaigns/recipients", url.Values{"lists": {fmt.Sprint(a), fmt.Sprint(b), fmt.Sprint(d.ID)}})
		if txt := p.Doc.Find(`[data-testid="recipient-count"]`).Text(); txt != fmt.Sprint(want) {
			t.Errorf("htmx count = %q, want %d", txt, want)
		}
		if p := m.postForm("/campaigns/recipients", url.Values{"lists": {fmt.Sprint(d.ID)}}); p.Doc.Find(`[data-testid="recipient-count"]`).Text() != "0" {
			t.Errorf("double opt-in unconfirmed list counts %q", p.Doc.Find(`[data-testid="recipient-count"]`).Text())
		}
		// Materialise (without sending) and compare.
		_, tmpl := composeFixture(t, s, 0)
		id := newCampaign(t, s, tmpl, []int64{a, b, d.ID}, nil)
		if err := s.StartCampaign(ctx, id); err != nil {
			t.Fatal(err)
		}
		s.PauseCampaign(ctx, id)
		for done := false; !done; {
			if done, err = s.MaterializeCampaign(ctx, id, 7); err != nil {
				t.Fatal(err)
			}
		}
		pr, _ := s.CampaignProgress(ctx, id)
		if pr.Total()-pr.Suppressed != want || pr.Suppressed != 2 {
			t.Errorf("materialised %d deliveries (%d suppressed), counted %d", pr.Total(), pr.Suppressed, want)
		}
	})
}

func TestCampaignLifecycle(t *testing.T) {
	app := newTestApp(t, nil)
	ctx := context.Background()
	list, tmpl := composeFixture(t, app.store, 3)
	m := app.user(models.RoleMarketer)

	p := m.get("/campaigns")
	if !strings.Contains(p.Doc.Find(`[data-testid="empty"]`).Text(), "New campaign") {
		t.Errorf("campaigns empty state = %q", p.Doc.Find(`[data-testid="empty"]`).Text())
	}
	p = m.get("/campaigns/new")
	if p.Doc.Find(`[data-testid="recipient-count"]`).Text() != "3" {
		t.Errorf("new campaign with the only list preselected counts %q", p.Doc.Find(`[data-testid="recipient-count"]`).Text())
	}
	bad := url.Values{"name": {""}, "template_id": {fmt.Sprint(tmpl)}, "from_email": {"not an address"}, "reply_to": {"nope"}}
	p = m.postForm("/campaigns", bad)
	if p.StatusCode != 422 {
		t.Fatalf("invalid campaign: %d", p.StatusCode)
	}
	for _, f := range []string{"name", "from_email", "reply_to", "lists"} {
		if p.Doc.Find(`[data-testid="err-`+f+`"]`).Length() == 0 {
			t.Errorf("no message for %s", f)
		}
	}
	good := url.Values{"name": {"November"}, "template_id": {fmt.Sprint(tmpl)}, "from_email": {"news@acme.test"}, "from_name": {"Acme"},
		"lists": {fmt.Sprint(list)}, "track_opens": {"on"}, "subject": {"Our November news"}}
	p = m.postForm("/campaigns", good)
	if p.StatusCode != 200 || p.Doc.Find(`[data-testid="campaign-status"]`).Text() != "draft" {
		t.Fatalf("create: %d %s", p.StatusCode, p.Request.URL)
	}
	base := p.Request.URL.Path
	var id int64
	fmt.Sscanf(base, "/campaigns/%d", &id)
	cp, _ := app.store.Campaign(ctx, id)
	if !cp.TrackOpens || cp.TrackClicks || cp.Subject != "Our November news" {
		t.Errorf("stored campaign = %+v", cp)
	}

	// Tests: at most five addresses; they go through the pipeline to the outbox.
	if p := m.postForm(base+"/test", url.Values{"emails": {"a@x.test,b@x.test,c@x.test,d@x.test,e@x.test,f@x.test"}}); p.StatusCode != 422 ||
		!strings.Contains(p.Doc.Find(`[data-testid="err-emails"]`).Text(), "at most 5") {
		t.Errorf("six test addresses: %d", p.StatusCode)
	}
	if p := m.postForm(base+"/test", url.Values{"emails": {"me@acme.test\nboss@acme.test"}}); p.StatusCode != 200 {
		t.Fatalf("test: %d", p.StatusCode)
	}
	waitFor(t, "test messages in the outbox", 10*time.Second, func() bool {
		msgs, _ := app.store.Outbox(ctx, models.OutboxQuery{})
		return len(msgs) == 2
	})
	// A test shows what the campaign will send: its own subject line, and
	// the unsubscribe header and links, which lead to a page explaining
	// what they do in the campaign (a test is not tied to a subscriber).
	msgs, _ := app.store.Outbox(ctx, models.OutboxQuery{})
	if msgs[0].Subject != "Our November news" {
		t.Errorf("test message subject = %q, want the campaign's", msgs[0].Subject)
	}
	full, err := app.store.OutboxMessage(ctx, msgs[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(full.Raw, "/u/test>\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click") {
		t.Errorf("test message has no unsubscribe header leading to the test page:\n%s", full.Headers)
	}
	anon := app.client()
	for _, r := range []struct{ method, path, link string }{
		{"GET", "/u/test", "unsubscribe"}, {"POST", "/u/test", "unsubscribe"}, {"GET", "/p/test", "preferences"},
	} {
		var p *page
		if r.method == "GET" {
			p = anon.get(r.path)
		} else {
			p = anon.postRaw(r.path, url.Values{"List-Unsubscribe": {"One-Click"}})
		}
		if link, _ := p.Doc.Find(`[data-testid="test-link"]`).Attr("data-link"); p.StatusCode != 200 || link != r.link {
			t.Errorf("%s %s = %d, link %q; want 200 and the test page about %s", r.method, r.path, p.StatusCode, link, r.link)
		}
	}

	// Schedule: a past time is refused; a local time in a zone is stored in UTC.
	if p := m.postForm(base+"/schedule", url.Values{"at": {"2001-01-01T09:00"}, "zone": {"UTC"}}); p.StatusCode != 422 || p.Doc.Find(`[data-testid="err-at"]`).Length() == 0 {
		t.Errorf("past schedule: %d", p.StatusCode)
	}
	if p := m.postForm(base+"/schedule", url.Values{"at": {"2099-06-01T09:00"}, "zone": {"Mars/Olympus"}}); p.StatusCode != 422 || p.Doc.Find(`[data-testid="err-zone"]`).Length() == 0 {
		t.Errorf("unknown zone: %d", p.StatusCode)
	}
	if p := m.postForm(base+"/schedule", url.Values{"at": {"2099-06-01T09:00"}, "zone": {"Europe/Paris"}}); p.StatusCode != 200 {
		t.Fatalf("schedule: %d", p.StatusCode)
	}
	cp, _ = app.store.Campaign(ctx, id)
	if cp.Status != models.CampaignScheduled || cp.ScheduledAt == nil || !cp.ScheduledAt.Equal(time.Date(2099, 6, 1, 7, 0, 0, 0, time.UTC)) {
		t.Fatalf("scheduled = %s %v, want 07:00 UTC", cp.Status, cp.ScheduledAt)
	}
	if p := m.postForm(base+"/unschedule", nil); p.StatusCode != 200 || p.Doc.Find(`[data-testid="campaign-status"]`).Text() != "draft" {
		t.Errorf("unschedule: %d", p.StatusCode)
	}
	// Edit keeps working on drafts; the edit form carries the message.
	good.Set("name", "November news")
	good.Set("html", cp.HTML)
	good.Set("format", "html")
	if p := m.get(base + "/edit"); p.Doc.Find(`textarea[name="html"]`).Text() != cp.HTML || p.Doc.Find(`select[name="template_id"]`).Length() != 0 {
		t.Errorf("edit form: body %q, template chooser %d", p.Doc.Find(`textarea[name="html"]`).Text(), p.Doc.Find(`select[name="template_id"]`).Length())
	}
	if p := m.postForm(base, good); p.StatusCode != 200 {
		t.Errorf("update: %d", p.StatusCode)
	}

	// Send now; pause; resume; it finishes.
	if p := m.postForm(base+"/start", url.Values{"confirm": {"yes"}}); p.StatusCode != 200 {
		t.Fatalf("start: %d %s", p.StatusCode, p.Doc.Find(`[data-testid="start-error"]`).Text())
	}
	if p := m.postForm(base+"/start", url.Values{"confirm": {"yes"}}); p.StatusCode != 409 {
		t.Errorf("start twice: %d", p.StatusCode)
	}
	if p := m.postForm(base+"/pause", nil); p.StatusCode != 200 && p.StatusCode != 409 { // 409 when it already finished
		t.Errorf("pause: %d", p.StatusCode)
	}
	if cp, _ := app.store.Campaign(ctx, id); cp.Status == models.CampaignPaused {
		if p := m.postForm(base+"/resume", nil); p.StatusCode != 200 {
			t.Errorf("resume: %d", p.StatusCode)
		}
	}
	waitFor(t, "the campaign to finish", 20*time.Second, func() bool {
		cp, _ := app.store.Campaign(ctx, id)
		return cp.Status == models.CampaignFinished
	})
	p = m.get(base + "/progress")
	if pr := p.Doc.Find(`[data-testid="progress"]`); pr.AttrOr("data-percent", "") != "100" || p.Doc.Find(`[data-testid="count-sent"]`).Text() != "3" {
		t.Errorf("progress = %q, sent %q", pr.AttrOr("data-percent", ""), p.Doc.Find(`[data-testid="count-sent"]`).Text())
	}
	if _, polls := p.Doc.Find(`#progress-panel`).Attr("hx-trigger"); polls {
		t.Error("a finished campaign's progress keeps polling")
	}
	if p := m.get(base); p.Doc.Find(`[data-testid="report-link"]`).AttrOr("href", "") != base+"/report" {
		t.Error("no link to the report")
	}
	if p := m.postForm(base+"/cancel", nil); p.StatusCode != 409 {
		t.Errorf("cancel finished: %d", p.StatusCode)
	}

	// Clone gives an editable draft; cancelling it asks first.
	p = m.postForm(base+"/clone", nil)
	if p.StatusCode != 200 || p.Doc.Find(`input[name="name"]`).AttrOr("value", "") != "Copy of November news" {
		t.Fatalf("clone: %d %s", p.StatusCode, p.Request.URL)
	}
	var clone int64
	fmt.Sscanf(p.Request.URL.Path, "/campaigns/%d/edit", &clone)
	if ls, _ := app.store.CampaignLists(ctx, clone); len(ls) != 1 || ls[0] != list {
		t.Errorf("clone lists = %v", ls)
	}
	cb := fmt.Sprintf("/campaigns/%d", clone)
	if p := m.get(cb + "/cancel"); p.Doc.Find(`[data-testid="confirm"]`).Length() == 0 {
		t.Error("no confirmation before cancelling")
	}
	if p := m.postForm(cb+"/cancel", nil); p.StatusCode != 200 || p.Doc.Find(`[data-testid="campaign-status"]`).Text() != "cancelled" {
		t.Errorf("cancel: %d", p.StatusCode)
	}
	if p := m.get("/campaigns"); p.Doc.Find(`[data-testid="campaigns-table"] tbody tr`).Length() != 2 {
		t.Errorf("campaign rows = %d", p.Doc.Find(`[data-testid="campaigns-table"] tbody tr`).Length())
	}
	// Viewers see campaigns, progress and readiness, and change nothing.
	v := app.user(models.RoleViewer)
	for _, path := range []string{"/campaigns", base, base + "/progress", "/compliance/readiness"} {
		if p := v.get(path); p.StatusCode != 200 {
			t.Errorf("viewer GET %s: %d", path, p.StatusCode)
		}
	}
	if p := v.postForm(cb+"/clone", nil); p.StatusCode != 403 {
		t.Errorf("viewer clone: %d", p.StatusCode)
	}
	var audits int64
	app.store.DB().Raw("SELECT COUNT(*) FROM audit_log WHERE action LIKE 'campaign.%'").Scan(&audits)
	if audits < 8 {
		t.Errorf("audit entries for campaign actions = %d", audits)
	}
}

// Each blocking rule turns red on the panel or the checklist, and stops
// a campaign from starting, from the dashboard and from the API, with the
// rule's message.
func TestReadinessBlocksStart(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		app := newTestApp(t, s)
		ctx := context.Background()
		list, good := composeFixture(t, s, 2)
		empty := &models.List{Name: "Empty", Optin: models.OptinSingle, Visibility: models.ListPrivate}
		s.CreateList(ctx, empty)
		admin := app.user(models.RoleAdmin)
		u, _ := s.CreateUser(ctx, "api@example.com", "", "correct horse battery", models.RoleMarketer)
		tok, _, _ := s.CreateAPIToken(ctx, u.ID, "test")

		noUnsub := &models.Template{Kind: models.TemplateCampaign, Name: "No unsubscribe", Subject: "Hi", HTML: "<p>Hello</p><p>{{.Org.PostalAddress}}</p>"}
		noSubject := &models.Template{Kind: models.TemplateCampaign, Name: "No subject", Subject: " ", HTML: goodHTML}
		s.CreateTemplate(ctx, noUnsub)
		s.CreateTemplate(ctx, noSubject)

		cases := []struct {
			name, check, want string
			setup             func() int64
			panel             string // the org check that turns red, if any
		}{
			{"no unsubscribe link", "campaign.unsubscribe", "unsubscribe link", func() int64 { return newCampaign(t, s, noUnsub.ID, []int64{list}, nil) }, "org.template_footers"},
			{"empty subject", "campaign.subject", "subject is empty", func() int64 { return newCampaign(t, s, noSubject.ID, []int64{list}, nil) }, ""},
			{"no recipients", "campaign.recipients", "0 recipients", func() int64 { return newCampaign(t, s, good, []int64{empty.ID}, nil) }, ""},
			{"no postal address", "campaign.postal_address", "no postal address", func() int64 {
				s.SetSetting(ctx, models.SettingPostalAddress, "")
				return newCampaign(t, s, good, []int64{list}, nil)
			}, "org.postal_address"},
		}
		for _, tc := range cases {
			id := tc.setup()
			base := fmt.Sprintf("/campaigns/%d", id)
			p := admin.get(base)
			if st := p.Doc.Find(`[data-testid="check-`+tc.check+`"]`).AttrOr("data-state", ""); st != "bad" {
				t.Errorf("%s: checklist %s = %q, want bad", tc.name, tc.check, st)
			}
			if _, dis := p.Doc.Find(`[data-testid="send-now"]`).Attr("disabled"); !dis {
				t.Errorf("%s: Send now is not disabled", tc.name)
			}
			if tc.panel != "" {
				rp := admin.get("/compliance/readiness")
				if st := rp.Doc.Find(`[data-testid="check-`+tc.panel+`"]`).AttrOr("data-state", ""); st != "bad" {
					t.Errorf("%s: panel %s = %q, want bad", tc.name, tc.panel, st)
				}
				if !strings.Contains(rp.Doc.Find(`[data-testid="readiness-summary"]`).Text(), "block") {
					t.Errorf("%s: panel summary %q", tc.name, rp.Doc.Find(`[data-testid="readiness-summary"]`).Text())
				}
			}
			p = admin.postForm(base+"/start", url.Values{"confirm": {"yes"}})
			if p.StatusCode != 422 || !strings.Contains(strings.ToLower(p.Doc.Find(`[data-testid="start-error"]`).Text()), tc.want) {
				t.Errorf("%s: dashboard start = %d %q", tc.name, p.StatusCode, p.Doc.Find(`[data-testid="start-error"]`).Text())
			}
			p = app.api("POST", fmt.Sprintf("/api/v1/campaigns/%d/start", id), tok, "")
			if p.StatusCode != 422 || !strings.Contains(strings.ToLower(p.Body), tc.want) || !strings.Contains(p.Body, tc.check) {
				t.Errorf("%s: API start = %d %s", tc.name, p.StatusCode, p.Body)
			}
			if cp, _ := s.Campaign(ctx, id); cp.Status != models.CampaignDraft {
				t.Errorf("%s: status %s after refused start", tc.name, cp.Status)
			}
			// Scheduling checks the same rules.
			if p := admin.postForm(base+"/schedule", url.Values{"at": {"2099-01-01T10:00"}, "zone": {"UTC"}}); p.StatusCode != 422 {
				t.Errorf("%s: schedule = %d", tc.name, p.StatusCode)
			}
		}
		// With the address back and a good template the panel's blocking rules
		// are green except the template without unsubscribe link.
		s.SetSetting(ctx, models.SettingPostalAddress, "1 Herald Way, Lyon")
		rp := admin.get("/compliance/readiness")
		for _, id := range []string{"org.postal_address", "org.one_click", "org.unsubscribe_honoured", "org.complaints"} {
			if st := rp.Doc.Find(`[data-testid="check-`+id+`"]`).AttrOr("data-state", ""); st != "ok" {
				t.Errorf("panel %s = %q, want ok", id, st)
			}
		}
		if !strings.Contains(rp.Doc.Find(`[data-testid="check-org.template_footers"]`).Text(), "No unsubscribe") {
			t.Errorf("panel does not name the bad template: %q", rp.Doc.Find(`[data-testid="check-org.template_footers"]`).Text())
		}
		if rp.Doc.Find(`nav.subnav a[aria-current="page"]`).Text() != "Readiness" {
			t.Error("readiness tab not marked")
		}
	})
}

// Rules that depend on domains and history, checked on the mailer's
// Readiness directly: DKIM blocks when mail really leaves, the stored DNS
// check decides SPF/DKIM/DMARC, and the complaint rate is read from the
// campaign counters.
func TestReadinessDomainsAndComplaints(t *testing.T) {
	s := testdb.SQLite(t)
	ctx := context.Background()
	list, tmpl := composeFixture(t, s, 2)
	id := newCampaign(t, s, tmpl, []int64{list}, func(c *models.Campaign) { c.Subject = "BIG NEWS"; c.FromEmail = "news@mail.acme.test" })
	find := func(cs []mailer.Check, id string) mailer.Check {
		for _, c := range cs {
			if c.ID == id {
				return c
			}
		}
		t.Fatalf("no check %s", id)
		return mailer.Check{}
	}
	r := &mailer.Readiness{Store: s, RootURL: "https://news.acme.test"}
	cs, err := r.CampaignChecks(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if c := find(cs, "campaign.dkim"); c.OK || !c.Blocking || mailer.Failed(cs).ID != "campaign.dkim" {
		t.Errorf("dkim without a key = %+v", c)
	}
	if c := find(cs, "campaign.caps"); c.OK || c.Blocking {
		t.Errorf("caps subject = %+v", c)
	}
	if c := find(cs, "campaign.text_part"); !c.OK || c.Blocking || !strings.HasPrefix(c.Detail, "Derived from the HTML") {
		t.Errorf("derived text part not said: %+v", c)
	}
	captured := &mailer.Readiness{Store: s, DefaultCaptures: true}
	cs2, _ := captured.CampaignChecks(ctx, id)
	if c := find(cs2, "campaign.dkim"); c.OK || c.Blocking || mailer.Failed(cs2) != nil {
		t.Errorf("capture-only: dkim = %+v, failed = %+v", c, mailer.Failed(cs2))
	}
	sd, err := s.CreateSendingDomain(ctx, "acme.test", strings.Repeat("s", 32), models.SendingDomainOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cs, _ = r.CampaignChecks(ctx, id)
	if c := find(cs, "campaign.dkim"); !c.OK || mailer.Failed(cs) != nil {
		t.Errorf("dkim with a parent-domain key = %+v, failed %+v", c, mailer.Failed(cs))
	}
	// Org: never checked, then a stored failing check, then a passing one.
	org, _ := r.OrgChecks(ctx)
	if c := find(org, "org.dns.acme.test"); c.OK || !strings.Contains(c.Detail, "Never checked") {
		t.Errorf("unchecked domain = %+v", c)
	}
	if c := find(org, "org.https"); !c.OK {
		t.Errorf("https root = %+v", c)
	}
	if c := find(org, "org.sender_domains"); !c.OK {
		t.Errorf("sender domains = %+v", c)
	}
	var recs []mailer.RecordCheck
	for _, rec := range sd.DNSRecords(models.DNSRecordOptions{}) {
		recs = append(recs, mailer.RecordCheck{DNSRecord: rec, OK: rec.Purpose != "dmarc", Problem: map[bool]string{true: "missing: publish a DMARC policy"}[rec.Purpose == "dmarc"]})
	}
	dc := &mailer.DomainCheck{Domain: sd.Domain, Records: recs}
	s.SaveDNSCheck(ctx, sd.ID, false, dc.JSON())
	org, _ = r.OrgChecks(ctx)
	if c := find(org, "org.dns.acme.test"); c.OK || !c.Blocking || !strings.Contains(c.Detail, "DMARC") {
		t.Errorf("failing DMARC = %+v", c)
	}
	for i := range recs {
		recs[i].OK, recs[i].Problem = true, ""
	}
	dc.OK = true
	s.SaveDNSCheck(ctx, sd.ID, true, dc.JSON())
	org, _ = r.OrgChecks(ctx)
	if c := find(org, "org.dns.acme.test"); !c.OK {
		t.Errorf("passing DNS = %+v", c)
	}
	// Complaints: 4 in 1000 is over 0.3%; 2 in 1000 is under.
	if c := find(org, "org.complaints"); !c.OK {
		t.Errorf("no traffic = %+v", c)
	}
	s.DB().Exec("UPDATE campaigns SET started_at = ?, sent = 1000, complaints = 4 WHERE id = ?", time.Now().UTC().Add(-time.Hour), id)
	org, _ = r.OrgChecks(ctx)
	if c := find(org, "org.complaints"); c.OK || !strings.Contains(c.Detail, "0.40%") {
		t.Errorf("0.4%% complaints = %+v", c)
	}
	s.DB().Exec("UPDATE campaigns SET complaints = 2 WHERE id = ?", id)
	org, _ = r.OrgChecks(ctx)
	if c := find(org, "org.complaints"); !c.OK {
		t.Errorf("0.2%% complaints = %+v", c)
	}
	// Content warnings: image-only and shorteners.
	img := &models.Template{Kind: models.TemplateCampaign, Name: "Poster", Subject: "See", Text: "x",
		HTML: `<img src="https://cdn.example/p.png"><a href="https://bit.ly/abc">go</a> {{.Org.PostalAddress}} <a href="{{.UnsubscribeURL}}">u</a>`}
	s.CreateTemplate(ctx, img)
	id2 := newCampaign(t, s, img.ID, []int64{list}, nil)
	cs, _ = r.CampaignChecks(ctx, id2)
	if c := find(cs, "campaign.image_only"); c.OK {
		t.Errorf("image-only = %+v", c)
	}
	if c := find(cs, "campaign.shorteners"); c.OK || !strings.Contains(c.Detail, "bit.ly") {
		t.Errorf("shorteners = %+v", c)
	}
	if c := find(cs, "campaign.text_part"); !c.OK || !strings.HasPrefix(c.Detail, "Written by you") {
		t.Errorf("text part present = %+v", c)
	}
}

// A scheduled campaign is kept in the database: an engine started later on
// the same database file (a restart) sends it when its time comes.
func TestScheduledCampaignSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	path := dir + "/herald.db"
	ctx := context.Background()
	open := func() *models.Store {
		s, err := models.Open(ctx, models.SQLiteDSN(path))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		return s
	}
	s1 := open()
	list, tmpl := composeFixture(t, s1, 4)
	id := newCampaign(t, s1, tmpl, []int64{list}, nil)
	// First life: an engine runs, the campaign is scheduled for later, the process stops.
	e1 := mailer.New(mailer.Options{NodeID: "n1", RootURL: "http://herald.test", Secrets: []string{strings.Repeat("s", 32)}}, s1)
	c1, stop1 := context.WithCancel(ctx)
	done1 := make(chan error, 1)
	go func() { done1 <- e1.Run(c1) }()
	at := time.Now().Add(2 * time.Second)
	if err := s1.ScheduleCampaign(ctx, id, at); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	stop1()
	<-done1
	s1.Close()
	if time.Now().After(at) {
		t.Skip("the machine is too slow for this test's timing")
	}
	// Second life: a new store and engine on the same file.
	s2 := open()
	defer s2.Close()
	if cp, _ := s2.Campaign(ctx, id); cp.Status != models.CampaignScheduled {
		t.Fatalf("after restart status = %s", cp.Status)
	}
	e2 := mailer.New(mailer.Options{NodeID: "n1", RootURL: "http://herald.test", Secrets: []string{strings.Repeat("s", 32)}}, s2)
	c2, stop2 := context.WithCancel(ctx)
	done2 := make(chan error, 1)
	go func() { done2 <- e2.Run(c2) }()
	defer func() { stop2(); <-done2 }()
	waitFor(t, "the scheduled campaign to be sent", 30*time.Second, func() bool {
		cp, _ := s2.Campaign(ctx, id)
		return cp.Status == models.CampaignFinished
	})
	cp, _ := s2.Campaign(ctx, id)
	if cp.StartedAt == nil || cp.StartedAt.Before(at.Add(-time.Second)) {
		t.Errorf("started at %v, scheduled for %v", cp.StartedAt, at)
	}
	msgs, _ := s2.Outbox(ctx, models.OutboxQuery{CampaignID: id})
	if len(msgs) != 4 || cp.Sent != 4 {
		t.Errorf("outbox has %d messages, sent = %d; want 4", len(msgs), cp.Sent)
	}
}

// TestScheduledCampaignRecheckedAtItsTime: rules are checked again when the
// engine starts a scheduled campaign, so a campaign whose message lost its
// unsubscribe link after scheduling is held (paused) instead of sent.
func TestScheduledCampaignRecheckedAtItsTime(t *testing.T) {
	ctx := context.Background()
	s := testdb.SQLite(t)
	list, tmpl := composeFixture(t, s, 3)
	id := newCampaign(t, s, tmpl, []int64{list}, nil)
	if err := s.ScheduleCampaign(ctx, id, time.Now().Add(300*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	cp, err := s.Campaign(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	cp.HTML = "<p>Hello {{.Subscriber.Name}}</p><p>{{.Org.PostalAddress}}</p>"
	if err := s.UpdateCampaign(ctx, cp, []int64{list}); err != nil {
		t.Fatal(err)
	}
	e := mailer.New(mailer.Options{NodeID: "n1", RootURL: "http://herald.test", Secrets: []string{strings.Repeat("s", 32)}}, s)
	run, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- e.Run(run) }()
	defer func() { stop(); <-done }()
	waitFor(t, "the scheduled campaign to be held", 20*time.Second, func() bool {
		cp, _ := s.Campaign(ctx, id)
		return cp.Status != models.CampaignScheduled
	})
	cp, _ = s.Campaign(ctx, id)
	msgs, _ := s.Outbox(ctx, models.OutboxQuery{CampaignID: id})
	if cp.Status != models.CampaignPaused || len(msgs) != 0 {
		t.Errorf("status = %s with %d messages sent; want paused with none", cp.Status, len(msgs))
	}
}
