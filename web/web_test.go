package web

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/PuerkitoBio/goquery"

	"github.com/herald-mail/herald/internal/testdb"
	"github.com/herald-mail/herald/models"
)

func TestFirstRunSetupOnlyOnce(t *testing.T) {
	app := newTestApp(t, nil)
	c := app.client()
	p := c.get("/")
	if p.Request.URL.Path != "/login" || p.Doc.Find(`[data-testid="setup"]`).Length() != 1 {
		t.Fatalf("first visit: at %s, setup form present=%d; want the setup form on /login", p.Request.URL.Path, p.Doc.Find(`[data-testid="setup"]`).Length())
	}
	p = c.postForm("/setup", url.Values{"email": {"not-an-email"}, "password": {"short"}})
	if p.StatusCode != 422 || !strings.Contains(p.Body, "has no @") || !strings.Contains(p.Body, "at least 10") {
		t.Fatalf("bad setup: status %d, want 422 with field messages; body: %.300s", p.StatusCode, p.Body)
	}
	p = c.postForm("/setup", url.Values{"email": {"Boss@Example.com"}, "password": {"a long password"}, "name": {"Boss"}})
	if p.StatusCode != 200 || p.Request.URL.Path != "/" || !strings.Contains(p.Body, "Dashboard") {
		t.Fatalf("setup: status %d at %s", p.StatusCode, p.Request.URL.Path)
	}
	// A second setup attempt, even with a valid token, is refused.
	other := app.client()
	p = other.postForm("/setup", url.Values{"email": {"mallory@example.com"}, "password": {"a long password"}})
	if p.StatusCode != 403 {
		t.Fatalf("second setup: status %d, want 403", p.StatusCode)
	}
	if n, _ := app.store.UserCount(context.Background()); n != 1 {
		t.Fatalf("users = %d, want 1", n)
	}
}

func TestRolesAreEnforcedOnTheServer(t *testing.T) {
	app := newTestApp(t, nil)
	admin := app.user(models.RoleAdmin)
	viewer := app.user(models.RoleViewer)
	marketer := app.user(models.RoleMarketer)

	list := url.Values{"name": {"News"}, "optin": {"single"}, "visibility": {"public"}}
	if p := viewer.postForm("/lists", list); p.StatusCode != 403 {
		t.Errorf("viewer creates list: status %d, want 403", p.StatusCode)
	}
	if p := viewer.get("/lists/new"); p.StatusCode != 403 {
		t.Errorf("viewer opens new-list form: status %d, want 403", p.StatusCode)
	}
	if p := viewer.get("/lists"); p.StatusCode != 200 {
		t.Errorf("viewer reads lists: status %d, want 200", p.StatusCode)
	}
	if p := marketer.postForm("/lists", list); p.StatusCode != 200 || !strings.Contains(p.Body, "News") {
		t.Errorf("marketer creates list: status %d", p.StatusCode)
	}
	userForm := url.Values{"email": {"new@example.com"}, "role": {"admin"}, "password": {"another long one"}}
	if p := marketer.postForm("/settings/users", userForm); p.StatusCode != 403 {
		t.Errorf("marketer creates user: status %d, want 403", p.StatusCode)
	}
	if p := marketer.get("/settings/users"); p.StatusCode != 403 {
		t.Errorf("marketer opens users page: status %d, want 403", p.StatusCode)
	}
	if p := admin.postForm("/settings/users", userForm); p.StatusCode != 200 || !strings.Contains(p.Body, "new@example.com") {
		t.Errorf("admin creates user: status %d", p.StatusCode)
	}
	if p := viewer.postForm("/settings", url.Values{"org_name": {"Evil"}}); p.StatusCode != 403 {
		t.Errorf("viewer changes settings: status %d, want 403", p.StatusCode)
	}
	anon := app.client()
	if p := anon.get("/subscribers"); p.Request.URL.Path != "/login" {
		t.Errorf("anonymous GET /subscribers ended at %s, want /login", p.Request.URL.Path)
	}
	if p := anon.postForm("/lists", list); p.StatusCode != 401 {
		t.Errorf("anonymous POST /lists: status %d, want 401", p.StatusCode)
	}
}

func TestCSRFIsRequired(t *testing.T) {
	app := newTestApp(t, nil)
	m := app.user(models.RoleMarketer)
	list := url.Values{"name": {"News"}, "optin": {"single"}, "visibility": {"public"}}
	if p := m.postRaw("/lists", list); p.StatusCode != 403 || !strings.Contains(p.Body, "Reload the page") {
		t.Fatalf("POST without token: status %d, want 403 with a hint; body %.200s", p.StatusCode, p.Body)
	}
	bad := url.Values{"_csrf": {"forged"}}
	for k, v := range list {
		bad[k] = v
	}
	if p := m.postRaw("/lists", bad); p.StatusCode != 403 {
		t.Fatalf("POST with forged token: status %d, want 403", p.StatusCode)
	}
	lists, _ := app.store.Lists(context.Background())
	if len(lists) != 0 {
		t.Fatalf("lists = %d after refused posts, want 0", len(lists))
	}
	// Logging in needs the token too (login CSRF).
	if p := app.client().postRaw("/login", url.Values{"email": {"marketer@example.com"}, "password": {"correct horse battery"}}); p.StatusCode != 403 {
		t.Fatalf("login without token: status %d, want 403", p.StatusCode)
	}
}

func TestLoginRateLimit(t *testing.T) {
	app := newTestApp(t, nil)
	app.user(models.RoleAdmin)
	c := app.client()
	for i := 0; i < 5; i++ {
		p := c.postForm("/login", url.Values{"email": {"admin@example.com"}, "password": {"wrong password"}})
		if p.StatusCode != 401 {
			t.Fatalf("attempt %d: status %d, want 401", i+1, p.StatusCode)
		}
	}
	// The sixth attempt is refused even with the right password.
	p := c.postForm("/login", url.Values{"email": {"admin@example.com"}, "password": {"correct horse battery"}})
	if p.StatusCode != 429 || !strings.Contains(p.Body, "Too many failed attempts") {
		t.Fatalf("after 5 failures: status %d, want 429", p.StatusCode)
	}
	// Another account from the same IP still works until the per-IP limit.
	app.store.CreateUser(context.Background(), "other@example.com", "", "correct horse battery", models.RoleViewer)
	p = c.postForm("/login", url.Values{"email": {"other@example.com"}, "password": {"correct horse battery"}})
	if p.StatusCode != 200 || p.Request.URL.Path != "/" {
		t.Fatalf("other account: status %d at %s", p.StatusCode, p.Request.URL.Path)
	}
	// Per IP: 20 failures over many accounts block the address.
	c2 := app.client()
	for i := 0; i < 20; i++ {
		c2.postForm("/login", url.Values{"email": {fmt.Sprintf("nobody%d@example.com", i)}, "password": {"x"}})
	}
	if p := c2.postForm("/login", url.Values{"email": {"other@example.com"}, "password": {"correct horse battery"}}); p.StatusCode != 429 {
		t.Fatalf("after 20 failures from one IP: status %d, want 429", p.StatusCode)
	}
}

func TestAPITokens(t *testing.T) {
	app := newTestApp(t, nil)
	ctx := context.Background()
	m := app.user(models.RoleMarketer)
	p := m.postForm("/settings/tokens", url.Values{"name": {"crm"}})
	tok := strings.TrimSpace(p.Doc.Find(`[data-testid="new-token"] code`).Text())
	if !strings.HasPrefix(tok, "hrld_") {
		t.Fatalf("token page did not show a token: %.300s", p.Body)
	}
	// Shown once: the tokens page no longer has it.
	if p := m.get("/settings/tokens"); strings.Contains(p.Body, tok) {
		t.Fatal("token shown again on a later visit")
	}
	var stored []models.APIToken
	app.store.DB().Find(&stored)
	if len(stored) != 1 || strings.Contains(stored[0].TokenHash, tok) || stored[0].TokenHash == tok {
		t.Fatalf("stored tokens = %+v; want one, hashed", stored)
	}

	if p := app.api("GET", "/api/v1/lists", "", ""); p.StatusCode != 401 || !strings.Contains(p.Body, `"code":"unauthorized"`) {
		t.Fatalf("no token: %d %s", p.StatusCode, p.Body)
	}
	if p := app.api("GET", "/api/v1/lists", "hrld_forged", ""); p.StatusCode != 401 {
		t.Fatalf("forged token: %d", p.StatusCode)
	}
	p = app.api("POST", "/api/v1/lists", tok, `{"name":"API list","optin":"single","visibility":"private"}`)
	if p.StatusCode != 201 {
		t.Fatalf("create list: %d %s", p.StatusCode, p.Body)
	}
	var created struct{ Data struct{ ID int64 } }
	json.Unmarshal([]byte(p.Body), &created)

	// A viewer's token may read but not write.
	viewer, _ := app.store.CreateUser(ctx, "v2@example.com", "", "correct horse battery", models.RoleViewer)
	vtok, _, _ := app.store.CreateAPIToken(ctx, viewer.ID, "read")
	if p := app.api("GET", "/api/v1/lists", vtok, ""); p.StatusCode != 200 {
		t.Fatalf("viewer read: %d", p.StatusCode)
	}
	if p := app.api("POST", "/api/v1/lists", vtok, `{"name":"x","optin":"single","visibility":"private"}`); p.StatusCode != 403 || !strings.Contains(p.Body, `"code":"forbidden"`) {
		t.Fatalf("viewer write: %d %s", p.StatusCode, p.Body)
	}

	// Status codes and error bodies.
	cases := []struct {
		method, path, body string
		status             int
		code               string
	}{
		{"POST", "/api/v1/subscribers", `{"email":"bad"}`, 422, "invalid_email"},
		{"POST", "/api/v1/subscribers", `{"email":`, 400, "bad_request"},
		{"POST", "/api/v1/subscribers", `{"emial":"a@b.co"}`, 400, "bad_request"},
		{"POST", "/api/v1/subscribers", fmt.Sprintf(`{"email":"Ann@Example.COM","name":"Ann","lists":[%d]}`, created.Data.ID), 201, ""},
		{"POST", "/api/v1/subscribers", `{"email":"ann@example.com"}`, 409, "conflict"},
		{"POST", "/api/v1/subscribers", `{"email":"zed@example.com","lists":[99999]}`, 422, "invalid"},
		{"GET", "/api/v1/subscribers/99999", "", 404, "not_found"},
		{"GET", "/api/v1/subscribers/abc", "", 404, "not_found"},
		{"POST", "/api/v1/lists", `{"name":"","optin":"triple"}`, 422, "invalid"},
		{"GET", "/api/v1/nothing", "", 404, "not_found"},
	}
	for _, tc := range cases {
		p := app.api(tc.method, tc.path, tok, tc.body)
		if p.StatusCode != tc.status || (tc.code != "" && !strings.Contains(p.Body, `"code":"`+tc.code+`"`)) {
			t.Errorf("%s %s %s: %d %s; want %d %s", tc.method, tc.path, tc.body, p.StatusCode, p.Body, tc.status, tc.code)
		}
	}
	sub, err := app.store.SubscriberByEmail(ctx, "ann@example.com")
	if err != nil || sub.Email != "Ann@example.com" {
		t.Fatalf("normalised email = %v, %v; want Ann@example.com", sub, err)
	}
	p = app.api("DELETE", fmt.Sprintf("/api/v1/subscribers/%d/lists/%d", sub.ID, created.Data.ID), tok, "")
	if p.StatusCode != 200 || !strings.Contains(p.Body, `"status":"unsubscribed"`) {
		t.Fatalf("unsubscribe via API: %d %s", p.StatusCode, p.Body)
	}
	hist, _ := app.store.ConsentsBySubscriber(ctx, sub.ID)
	if len(hist) != 2 || hist[0].Source != models.SourceAPI || hist[1].Action != models.ConsentWithdrawn {
		t.Fatalf("consents after API subscribe+unsubscribe = %+v", hist)
	}
	p = app.api("GET", "/api/v1/subscribers?q=ann", tok, "")
	if p.StatusCode != 200 || !strings.Contains(p.Body, "Ann@example.com") {
		t.Fatalf("search: %d %s", p.StatusCode, p.Body)
	}
}

func TestSubscriberFormBadInputKeepsValues(t *testing.T) {
	app := newTestApp(t, nil)
	m := app.user(models.RoleMarketer)
	p := m.postForm("/subscribers", url.Values{"email": {"jo@@example"}, "name": {"Jo <b>"}, "attributes": {"{not json"}, "lawful_basis": {"consent"}})
	if p.StatusCode != 422 {
		t.Fatalf("status %d, want 422", p.StatusCode)
	}
	if got := p.Doc.Find(`input[name="name"]`).AttrOr("value", ""); got != "Jo <b>" {
		t.Errorf("name field = %q, want what was typed", got)
	}
	if p.Doc.Find(`[data-testid="err-email"]`).Length() != 1 || p.Doc.Find(`[data-testid="err-attributes"]`).Length() != 1 {
		t.Errorf("missing field messages: %.500s", p.Body)
	}
	if strings.Contains(p.Body, "<b>") && !strings.Contains(p.Body, "&lt;b&gt;") {
		t.Error("name not escaped")
	}
}

func TestSubscriberLifecycleWritesConsents(t *testing.T) {
	testdb.Each(t, func(t *testing.T, store *models.Store) {
		app := newTestApp(t, store)
		ctx := context.Background()
		m := app.user(models.RoleMarketer)
		m.postForm("/lists", url.Values{"name": {"Weekly"}, "optin": {"double"}, "visibility": {"public"}})
		lists, _ := store.Lists(ctx)
		if len(lists) != 1 {
			t.Fatalf("lists = %d", len(lists))
		}
		lid := fmt.Sprint(lists[0].ID)
		p := m.postForm("/subscribers", url.Values{"email": {" Zoë@Bücher.example "}, "name": {"Zoë"}, "lists": {lid}, "status": {"unconfirmed"}, "lawful_basis": {"consent"}})
		if p.StatusCode != 200 || !strings.Contains(p.Body, "Zoë@xn--bcher-kva.example") {
			t.Fatalf("create: %d %.300s", p.StatusCode, p.Body)
		}
		sub, err := store.SubscriberByEmail(ctx, "zoë@xn--bcher-kva.example")
		if err != nil {
			t.Fatal(err)
		}
		path := fmt.Sprintf("/subscribers/%d", sub.ID)
		m.postForm(path+"/lists", url.Values{"list": {lid}, "status": {"confirmed"}})
		m.postForm(path+"/blocklist", url.Values{"blocked": {"true"}})
		p = m.get(path)
		rows := p.Doc.Find(`[data-testid="consent-history"] tbody tr`)
		var actions []string
		rows.Each(func(_ int, r *goquery.Selection) {
			actions = append(actions, strings.TrimSpace(r.Find("td").Eq(1).Text()))
		})
		if strings.Join(actions, ",") != "granted,confirmed,withdrawn" {
			t.Fatalf("consent history actions = %v, want granted,confirmed,withdrawn", actions)
		}
		if brk, n, err := store.VerifyConsents(ctx); brk != nil || err != nil || n != 3 {
			t.Fatalf("verify = %v %d %v", brk, n, err)
		}
		l, _ := store.List(ctx, lists[0].ID)
		if l.Unsubscribed != 1 || l.Confirmed != 0 {
			t.Fatalf("list counts = %+v", l)
		}
		// Deleting asks first; the POST deletes.
		if p := m.get(path + "/delete"); p.Doc.Find(`[data-testid="confirm-delete"]`).Length() != 1 {
			t.Fatal("no confirmation page")
		}
		m.postForm(path+"/delete", url.Values{})
		if _, err := store.Subscriber(ctx, sub.ID); err == nil {
			t.Fatal("subscriber still there after delete")
		}
		if p := m.get(path); p.StatusCode != 404 || !strings.Contains(p.Body, "Request id") {
			t.Fatalf("deleted subscriber page: %d", p.StatusCode)
		}
	})
}

// The per-IP login limit cannot be dodged by claiming another address in
// X-Real-IP or X-Forwarded-For from a loopback or LAN peer when no proxy
// is configured.
func TestLoginLimitIgnoresSpoofedRealIP(t *testing.T) {
	for _, header := range []string{"X-Real-IP", "X-Forwarded-For"} {
		t.Run(header, func(t *testing.T) {
			app := newTestApp(t, nil)
			app.user(models.RoleAdmin)
			c := app.client()
			c.get("/login")
			// 20 failures for 20 different accounts, each claiming another
			// address: the per-IP limit must still count them all.
			for i := 0; i <= 20; i++ {
				email, password := fmt.Sprintf("nobody%d@example.com", i), "wrong"
				if i == 20 {
					email, password = "admin@example.com", "correct horse battery"
				}
				v := url.Values{"email": {email}, "password": {password}, "_csrf": {c.csrf}}
				req, _ := http.NewRequest("POST", app.http.URL+"/login", strings.NewReader(v.Encode()))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				req.Header.Set(header, fmt.Sprintf("203.0.113.%d", i))
				p := c.do(req)
				if i == 20 && p.StatusCode != 429 {
					t.Fatalf("21st attempt with a new %s: status %d, want 429", header, p.StatusCode)
				}
			}
		})
	}
}
