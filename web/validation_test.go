package web

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/herald-mail/herald/models"
)

// The same bad input is refused the same way by the dashboard and by the
// API, because both go through the store's validation: 1 MB names, a
// 100 KB attribute object, an unknown lawful basis, an unknown transport,
// a list's overlong name or description and unknown opt-in or visibility.
func TestBadInputRefusedBothWays(t *testing.T) {
	app := newTestApp(t, nil)
	ctx := context.Background()
	m := app.user(models.RoleMarketer)
	users, err := app.store.Users(ctx)
	if err != nil || len(users) != 1 {
		t.Fatalf("Users() = %v, %v", users, err)
	}
	tok, _, err := app.store.CreateAPIToken(ctx, users[0].ID, "test")
	if err != nil {
		t.Fatal(err)
	}
	l := &models.List{Name: "News", Optin: models.OptinSingle, Visibility: models.ListPrivate}
	if err := app.store.CreateList(ctx, l); err != nil {
		t.Fatal(err)
	}
	sub := &models.Subscriber{Email: "ada@example.org"}
	if err := app.store.CreateSubscriber(ctx, sub, nil, models.Evidence{Source: models.SourceAdmin}); err != nil {
		t.Fatal(err)
	}
	bigName := strings.Repeat("n", 1<<20)
	longDesc := strings.Repeat("é", models.MaxListDescriptionLength+1)
	bigAttrs := `{"blob":"` + strings.Repeat("a", 100<<10) + `"}`
	js := func(v any) string { b, _ := json.Marshal(v); return string(b) }

	// apiField is the API's 422 field message for field.
	apiField := func(p *page, field string) string {
		var body struct {
			Error struct {
				Fields map[string]string `json:"fields"`
			} `json:"error"`
		}
		json.Unmarshal([]byte(p.Body), &body)
		return body.Error.Fields[field]
	}
	cases := []struct {
		name      string
		field     string
		dashboard func() *page
		api       func() *page
	}{
		{"1 MB subscriber name", "name",
			func() *page {
				return m.postForm("/subscribers", url.Values{"email": {"x@example.org"}, "name": {bigName}, "lawful_basis": {"consent"}})
			},
			func() *page {
				return app.api("POST", "/api/v1/subscribers", tok, js(map[string]any{"email": "x@example.org", "name": bigName}))
			}},
		{"100 KB attributes", "attributes",
			func() *page {
				return m.postForm("/subscribers", url.Values{"email": {"y@example.org"}, "attributes": {bigAttrs}, "lawful_basis": {"consent"}})
			},
			func() *page {
				return app.api("POST", "/api/v1/subscribers", tok, `{"email":"y@example.org","attributes":`+bigAttrs+`}`)
			}},
		{"1 MB subscriber name on update", "name",
			func() *page {
				return m.postForm(fmt.Sprintf("/subscribers/%d", sub.ID), url.Values{"email": {sub.Email}, "name": {bigName}})
			},
			func() *page {
				return app.api("PUT", fmt.Sprintf("/api/v1/subscribers/%d", sub.ID), tok, js(map[string]any{"email": sub.Email, "name": bigName}))
			}},
		{"1 MB template name", "name",
			func() *page {
				return m.postForm("/templates", url.Values{"kind": {"campaign"}, "name": {bigName}, "subject": {"Hi"}, "html": {"<p>x</p>"}})
			},
			func() *page {
				return app.api("POST", "/api/v1/templates", tok, js(map[string]any{"kind": "campaign", "name": bigName, "subject": "Hi", "html": "<p>x</p>"}))
			}},
		{"unknown lawful basis", "lawful_basis",
			func() *page {
				return m.postForm("/subscribers", url.Values{"email": {"z@example.org"}, "lawful_basis": {"whatever"}, "lists": {fmt.Sprint(l.ID)}})
			},
			func() *page {
				return app.api("PUT", fmt.Sprintf("/api/v1/subscribers/%d/lists/%d", sub.ID, l.ID), tok, `{"status":"confirmed","lawful_basis":"whatever"}`)
			}},
		{"1 MB list name", "name",
			func() *page {
				return m.postForm("/lists", url.Values{"name": {bigName}, "optin": {"single"}, "visibility": {"private"}})
			},
			func() *page {
				return app.api("POST", "/api/v1/lists", tok, js(map[string]any{"name": bigName, "optin": "single", "visibility": "private"}))
			}},
		{"3,000-character list description", "description",
			func() *page {
				return m.postForm("/lists", url.Values{"name": {"L"}, "description": {longDesc}, "optin": {"single"}, "visibility": {"private"}})
			},
			func() *page {
				return app.api("POST", "/api/v1/lists", tok, js(map[string]any{"name": "L", "description": longDesc}))
			}},
		{"unknown opt-in on list update", "optin",
			func() *page {
				return m.postForm(fmt.Sprintf("/lists/%d", l.ID), url.Values{"name": {"News"}, "optin": {"triple"}, "visibility": {"private"}})
			},
			func() *page {
				return app.api("PUT", fmt.Sprintf("/api/v1/lists/%d", l.ID), tok, js(map[string]any{"name": "News", "optin": "triple", "visibility": "private"}))
			}},
		{"unknown visibility on list update", "visibility",
			func() *page {
				return m.postForm(fmt.Sprintf("/lists/%d", l.ID), url.Values{"name": {"News"}, "optin": {"single"}, "visibility": {"secret"}})
			},
			func() *page {
				return app.api("PUT", fmt.Sprintf("/api/v1/lists/%d", l.ID), tok, js(map[string]any{"name": "News", "optin": "single", "visibility": "secret"}))
			}},
	}
	for _, c := range cases {
		d := c.dashboard()
		if d.StatusCode != 422 || d.Doc.Find(`[data-testid="err-`+c.field+`"], #err-`+c.field+`, [aria-invalid="true"]`).Length() == 0 {
			t.Errorf("%s, dashboard: status %d, want 422 with the %s field marked", c.name, d.StatusCode, c.field)
		}
		a := c.api()
		if a.StatusCode != 422 || apiField(a, c.field) == "" {
			t.Errorf("%s, API: status %d %.200s, want 422 naming %s", c.name, a.StatusCode, a.Body, c.field)
		}
	}
	// Nothing of it was stored: no ledger row with the made-up basis.
	var n int64
	app.store.DB().Raw(`SELECT count(*) FROM consents WHERE lawful_basis = 'whatever'`).Scan(&n)
	if n != 0 {
		t.Errorf("%d consent rows with an unknown lawful basis", n)
	}
	// Nor any list change: the one list is as it was created.
	lists, err := app.store.Lists(ctx)
	if err != nil || len(lists) != 1 || lists[0].Optin != models.OptinSingle || lists[0].Visibility != models.ListPrivate {
		var got []string
		for _, l := range lists {
			got = append(got, fmt.Sprintf("%.20s/%s/%s", l.Name, l.Optin, l.Visibility))
		}
		t.Errorf("lists after refused changes = %v, %v; want only News/single/private", got, err)
	}

	// A campaign's transport: the API names it, the dashboard keeps the
	// one it has; both go through validateCampaign.
	tpl := &models.Template{Kind: models.TemplateCampaign, Name: "t", Subject: "Hi", HTML: "<p>x</p>"}
	if err := app.store.CreateTemplate(ctx, tpl); err != nil {
		t.Fatal(err)
	}
	p := app.api("POST", "/api/v1/campaigns", tok, js(map[string]any{"name": "c", "template_id": tpl.ID, "from_email": "news@example.com",
		"lists": []int64{l.ID}, "transport": "nowhere"}))
	if p.StatusCode != 422 || !strings.Contains(apiField(p, "transport"), "not configured") {
		t.Errorf("unknown transport, API: status %d %.200s, want 422 naming transport", p.StatusCode, p.Body)
	}
}

// Changes made through the dashboard and the API write their audit entry
// once, in the change's transaction, naming the object.
func TestAuditedChangesWriteOneEntry(t *testing.T) {
	app := newTestApp(t, nil)
	ctx := context.Background()
	m := app.user(models.RoleMarketer)
	l := &models.List{Name: "News", Optin: models.OptinSingle, Visibility: models.ListPrivate}
	if err := app.store.CreateList(ctx, l); err != nil {
		t.Fatal(err)
	}
	if p := m.postForm("/subscribers", url.Values{"email": {"ada@example.org"}, "lawful_basis": {"consent"}, "lists": {fmt.Sprint(l.ID)}}); p.StatusCode != 200 {
		t.Fatalf("create subscriber: status %d", p.StatusCode)
	}
	if p := m.postForm(fmt.Sprintf("/lists/%d/delete", l.ID), url.Values{}); p.StatusCode != 200 {
		t.Fatalf("delete list: status %d", p.StatusCode)
	}
	type row struct{ Action, ObjectID, Actor string }
	var rows []row
	app.store.DB().Raw("SELECT action, object_id, actor FROM audit_log WHERE action IN ('subscriber.create', 'list.delete') ORDER BY id").Scan(&rows)
	var sub models.Subscriber
	app.store.DB().Where("email = ?", "ada@example.org").First(&sub)
	want := []row{{"subscriber.create", fmt.Sprint(sub.ID), "marketer@example.com"}, {"list.delete", fmt.Sprint(l.ID), "marketer@example.com"}}
	if fmt.Sprint(rows) != fmt.Sprint(want) {
		t.Errorf("audit rows = %v, want %v", rows, want)
	}
}

// A membership status the store does not know is refused by the
// dashboard's membership form and the API's PUT alike, with the same
// message, and changes nothing.
func TestSubscriptionStatusRefusedBothWays(t *testing.T) {
	app := newTestApp(t, nil)
	ctx := context.Background()
	m := app.user(models.RoleMarketer)
	users, _ := app.store.Users(ctx)
	tok, _, err := app.store.CreateAPIToken(ctx, users[0].ID, "test")
	if err != nil {
		t.Fatal(err)
	}
	l := &models.List{Name: "News", Optin: models.OptinSingle, Visibility: models.ListPrivate}
	if err := app.store.CreateList(ctx, l); err != nil {
		t.Fatal(err)
	}
	sub := &models.Subscriber{Email: "ada@example.org"}
	if err := app.store.CreateSubscriber(ctx, sub, map[int64]string{l.ID: models.SubConfirmed}, models.Evidence{Source: models.SourceAdmin}); err != nil {
		t.Fatal(err)
	}
	want := models.ValidateSubscriptionStatus("maybe")["status"]
	if want == "" {
		t.Fatal(`ValidateSubscriptionStatus("maybe") accepted it`)
	}
	d := m.postForm(fmt.Sprintf("/subscribers/%d/lists", sub.ID), url.Values{"list": {fmt.Sprint(l.ID)}, "status": {"maybe"}})
	if d.StatusCode != 422 || !strings.Contains(d.Body, strings.ReplaceAll(want, `"`, "&#34;")) {
		t.Errorf("dashboard: status %d, want 422 saying %q", d.StatusCode, want)
	}
	a := app.api("PUT", fmt.Sprintf("/api/v1/subscribers/%d/lists/%d", sub.ID, l.ID), tok, `{"status":"maybe"}`)
	var body struct {
		Error struct {
			Fields map[string]string `json:"fields"`
		} `json:"error"`
	}
	json.Unmarshal([]byte(a.Body), &body)
	if a.StatusCode != 422 || body.Error.Fields["status"] != want {
		t.Errorf("API: status %d %.200s, want 422 naming status", a.StatusCode, a.Body)
	}
	subs, err := app.store.SubscriptionsOf(ctx, sub.ID)
	if err != nil || len(subs) != 1 || subs[0].Status != models.SubConfirmed {
		t.Errorf("subscriptions after refused changes = %+v, %v; want one, confirmed", subs, err)
	}
}
