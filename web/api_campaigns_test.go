package web

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/herald-mail/herald/models"
)

// A campaign created and started through the API on a default install
// lands in the capture outbox, which the dashboard lists and renders.
func TestAPICampaignLandsInCaptureOutbox(t *testing.T) {
	app := newTestApp(t, nil)
	ctx := context.Background()
	m := app.user(models.RoleMarketer)
	u, _ := app.store.CreateUser(ctx, "api@example.com", "", "correct horse battery", models.RoleMarketer)
	tok, _, _ := app.store.CreateAPIToken(ctx, u.ID, "test")
	app.store.SetSetting(ctx, models.SettingPostalAddress, "1 Herald Way, Lyon")

	mustJSON := func(p *page, status int, v any) {
		t.Helper()
		if p.StatusCode != status {
			t.Fatalf("%s %s: %d %s, want %d", p.Request.Method, p.Request.URL.Path, p.StatusCode, p.Body, status)
		}
		if v != nil {
			json.Unmarshal([]byte(p.Body), v)
		}
	}
	var list struct{ Data struct{ ID int64 } }
	mustJSON(app.api("POST", "/api/v1/lists", tok, `{"name":"News","optin":"single"}`), 201, &list)
	for i := 0; i < 5; i++ {
		mustJSON(app.api("POST", "/api/v1/subscribers", tok, fmt.Sprintf(`{"email":"reader%d@example.org","name":"Reader %d","lists":[%d]}`, i, i, list.Data.ID)), 201, nil)
	}
	// Template errors are caught when the template is saved, with a line number.
	p := app.api("POST", "/api/v1/templates", tok, `{"name":"broken","subject":"Hi","html":"<p>ok</p>\n<p>{{ .Subscriber.Nmae }}</p>"}`)
	if p.StatusCode != 422 || !strings.Contains(p.Body, "Nmae") || !strings.Contains(p.Body, "Line 2") {
		t.Fatalf("broken template: %d %s; want 422 naming the field and line 2", p.StatusCode, p.Body)
	}
	var tmpl struct{ Data struct{ ID int64 } }
	mustJSON(app.api("POST", "/api/v1/templates", tok, `{"name":"Monthly","subject":"Hello {{.Subscriber.Name}}",
		"html":"<html><body><p>Hi {{.Subscriber.Name}}</p><a href=\"https://example.com/x\">Read</a><p>{{.Org.PostalAddress}} <a href=\"{{.UnsubscribeURL}}\">Unsubscribe</a></p></body></html>"}`), 201, &tmpl)
	var cp struct {
		Data struct {
			ID       int64
			Status   string
			Counters struct{ Sent int64 }
		}
	}
	mustJSON(app.api("POST", "/api/v1/campaigns", tok, fmt.Sprintf(`{"name":"November","template_id":%d,"from_email":"news@acme.test","from_name":"Acme","lists":[%d]}`, tmpl.Data.ID, list.Data.ID)), 201, &cp)
	id := cp.Data.ID
	mustJSON(app.api("POST", fmt.Sprintf("/api/v1/campaigns/%d/start", id), tok, ""), 200, nil)
	if p := app.api("POST", fmt.Sprintf("/api/v1/campaigns/%d/explode", id), tok, ""); p.StatusCode != 404 {
		t.Fatalf("unknown action: %d", p.StatusCode)
	}
	deadline := time.Now().Add(20 * time.Second)
	for cp.Data.Status != models.CampaignFinished {
		if time.Now().After(deadline) {
			t.Fatalf("campaign not finished: %+v", cp.Data)
		}
		time.Sleep(100 * time.Millisecond)
		mustJSON(app.api("GET", fmt.Sprintf("/api/v1/campaigns/%d", id), tok, ""), 200, &cp)
	}
	if cp.Data.Counters.Sent != 5 {
		t.Fatalf("sent = %d, want 5", cp.Data.Counters.Sent)
	}
	if p := app.api("POST", fmt.Sprintf("/api/v1/campaigns/%d/start", id), tok, ""); p.StatusCode != 409 {
		t.Fatalf("starting a finished campaign: %d %s, want 409", p.StatusCode, p.Body)
	}

	// The dashboard lists the five messages and renders one.
	page := m.get("/deliverability")
	rows := page.Doc.Find(`[data-testid="outbox-table"] tbody tr`)
	if rows.Length() != 5 || !strings.Contains(rows.Text(), "Hello Reader") {
		t.Fatalf("outbox rows = %d: %q", rows.Length(), rows.Text())
	}
	href, _ := rows.First().Find("a").Attr("href")
	msg := m.get(href)
	if got := msg.Doc.Find(`[data-testid="outbox-subject"]`).Text(); !strings.HasPrefix(got, "Hello Reader") {
		t.Errorf("subject = %q", got)
	}
	for sel, want := range map[string]string{
		`[data-testid="outbox-text"]`:    "1 Herald Way, Lyon",
		`[data-testid="outbox-headers"]`: "List-Unsubscribe-Post: List-Unsubscribe=One-Click",
		`[data-testid="outbox-raw"]`:     "multipart/alternative",
	} {
		if got := msg.Doc.Find(sel).Text(); !strings.Contains(got, want) {
			t.Errorf("%s lacks %q: %.300q", sel, want, got)
		}
	}
	frame, _ := msg.Doc.Find(`[data-testid="outbox-html"]`).Attr("src")
	html := m.get(frame)
	if !strings.Contains(html.Body, "http://herald.test/t/c/") || !strings.Contains(html.Header.Get("Content-Security-Policy"), "sandbox") {
		t.Errorf("HTML part: %q, CSP %q", html.Body, html.Header.Get("Content-Security-Policy"))
	}
	// Transactional send through the API goes to the outbox too.
	mustJSON(app.api("POST", "/api/v1/templates", tok, `{"kind":"transactional","name":"reset","subject":"Reset","text":"Code {{.Data.code}}"}`), 201, nil)
	mustJSON(app.api("POST", "/api/v1/tx", tok, `{"template":"reset","to":"solo@example.net","from":"no-reply@acme.test","data":{"code":"42"}}`), 202, nil)
	if p := app.api("POST", "/api/v1/tx", tok, `{"template":"nope","to":"solo@example.net","from":"no-reply@acme.test"}`); p.StatusCode != 422 {
		t.Errorf("tx with unknown template: %d %s", p.StatusCode, p.Body)
	}
	// An override of the suppression list is audited; an ordinary send is not.
	if a := auditCount(t, app.store, "tx.override_suppression"); len(a) != 0 {
		t.Errorf("audit before any override: %+v", a)
	}
	mustJSON(app.api("POST", "/api/v1/tx", tok, `{"template":"reset","to":"solo@example.net","from":"no-reply@acme.test","override_suppression":true}`), 202, nil)
	if a := auditCount(t, app.store, "tx.override_suppression"); len(a) != 1 || !strings.Contains(a[0].Summary, "solo@example.net") || a[0].Actor == "" {
		t.Errorf("override audit = %+v, want one entry naming the address and the token's user", a)
	}
	deadline = time.Now().Add(10 * time.Second)
	for {
		// Five campaign messages and the two transactional sends (the
		// ordinary one and the override), newest first.
		msgs, _ := app.store.Outbox(ctx, models.OutboxQuery{})
		if len(msgs) == 7 {
			// The engine sends the two concurrently, so either may be
			// captured first: the ordinary send carried data, the
			// override did not.
			withData := 0
			for i, m := range msgs[:2] {
				full, err := app.store.OutboxMessage(ctx, m.ID)
				if err != nil || full.RcptTo != "solo@example.net" {
					t.Fatalf("transactional message %d = %+v, %v", i, full, err)
				}
				if strings.Contains(full.Text, "Code 42") {
					withData++
				}
			}
			if withData != 1 {
				t.Fatalf("%d of the two transactional messages carry the data, want 1", withData)
			}
			break
		}
		if len(msgs) > 7 || time.Now().After(deadline) {
			t.Fatalf("transactional messages not captured as sent: %d messages, want 7", len(msgs))
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Viewers may read the outbox but not start campaigns.
	v, _ := app.store.CreateUser(ctx, "viewer2@example.com", "", "correct horse battery", models.RoleViewer)
	vtok, _, _ := app.store.CreateAPIToken(ctx, v.ID, "read")
	if p := app.api("POST", fmt.Sprintf("/api/v1/campaigns/%d/pause", id), vtok, ""); p.StatusCode != 403 {
		t.Errorf("viewer pauses: %d", p.StatusCode)
	}
}

// The API creates a campaign with its own message (Markdown, preheader)
// and changes only the fields a PUT sends; bad content is refused with
// what to fix, and a campaign that went out can no longer be edited.
func TestAPICampaignContent(t *testing.T) {
	app := newTestApp(t, nil)
	ctx := context.Background()
	u, _ := app.store.CreateUser(ctx, "api@example.com", "", "correct horse battery", models.RoleMarketer)
	tok, _, _ := app.store.CreateAPIToken(ctx, u.ID, "test")
	list, tmpl := composeFixture(t, app.store, 2)
	type campaignJS struct {
		Data struct {
			ID                                           int64
			Subject, Preheader, HTML, Text, Format, Name string
			TextDerived                                  bool `json:"text_derived"`
		}
	}
	call := func(method, path, body string, status int) campaignJS {
		t.Helper()
		p := app.api(method, path, tok, body)
		if p.StatusCode != status {
			t.Fatalf("%s %s = %d %s, want %d", method, path, p.StatusCode, p.Body, status)
		}
		var out campaignJS
		json.Unmarshal([]byte(p.Body), &out)
		return out
	}
	c := call("POST", "/api/v1/campaigns", fmt.Sprintf(`{"name":"Md","template_id":%d,"from_email":"news@acme.test","lists":[%d],
		"subject":"Hi {{.Subscriber.Name}}","preheader":"Short","format":"markdown","html":"# Hello\n\n{{.Org.PostalAddress}} [Unsubscribe]({{.UnsubscribeURL}})"}`, tmpl, list), 201)
	if c.Data.Format != "markdown" || c.Data.Preheader != "Short" || !strings.HasPrefix(c.Data.HTML, "# Hello") || !c.Data.TextDerived {
		t.Errorf("created = %+v", c.Data)
	}
	id := c.Data.ID
	u2 := call("PUT", fmt.Sprintf("/api/v1/campaigns/%d", id), `{"text":"Hello in plain text. {{.UnsubscribeURL}} {{.Org.PostalAddress}}"}`, 200)
	if u2.Data.Text == "" || u2.Data.TextDerived || u2.Data.Format != "markdown" || u2.Data.Preheader != "Short" || u2.Data.Name != "Md" {
		t.Errorf("after PUT of the text = %+v", u2.Data)
	}
	tpl, _ := app.store.Template(ctx, tmpl)
	if tpl.HTML != goodHTML || tpl.Text != "" {
		t.Errorf("the template changed: %+v", tpl)
	}
	for body, field := range map[string]string{
		`{"format":"word"}`: "format",
		`{"html":"<p>{{.Subscriber.Nmae}}</p>","format":"html"}`: "html",
		`{"html":"","text":""}`:                                  "html",
		`{"subject":"{{if}}"}`:                                   "subject",
	} {
		p := app.api("PUT", fmt.Sprintf("/api/v1/campaigns/%d", id), tok, body)
		var e struct {
			Error struct {
				Message string
				Fields  map[string]string
			}
		}
		json.Unmarshal([]byte(p.Body), &e)
		if p.StatusCode != 422 || e.Error.Fields[field] == "" {
			t.Errorf("PUT %s = %d %s, want 422 on %s", body, p.StatusCode, p.Body, field)
		}
	}
	if p := app.api("PUT", fmt.Sprintf("/api/v1/campaigns/%d", id), tok, `{"colour":"red"}`); p.StatusCode != 400 {
		t.Errorf("unknown field = %d, want 400", p.StatusCode)
	}
	app.store.DB().Exec("UPDATE campaigns SET status = 'finished' WHERE id = ?", id)
	if p := app.api("PUT", fmt.Sprintf("/api/v1/campaigns/%d", id), tok, `{"subject":"Again"}`); p.StatusCode != 409 {
		t.Errorf("PUT on a finished campaign = %d %s, want 409", p.StatusCode, p.Body)
	}
}
