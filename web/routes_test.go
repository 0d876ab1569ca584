package web

import (
	"context"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/herald-mail/herald/models"
)

// TestRouteTableIsTheRouter: what Echo serves is exactly the route table,
// and every line of the table has a role.
func TestRouteTableIsTheRouter(t *testing.T) {
	app := newTestApp(t, nil)
	table := app.srv.routeTable()

	want := map[string]bool{}
	for _, r := range table {
		if _, ok := roleNames[r.role]; !ok {
			t.Errorf("%s %s: role %v is not a role", r.method, r.path, r.role)
		}
		key := r.method + " " + r.path
		if want[key] {
			t.Errorf("%s is in the table twice", key)
		}
		want[key] = true
	}
	served := map[string]bool{}
	for _, r := range app.srv.echo.Routes() {
		if r.Method == echo.RouteNotFound {
			continue // the dashboard group's own 404
		}
		served[r.Method+" "+r.Path] = true
	}
	for key := range served {
		if want[key] {
			continue
		}
		method, path, _ := strings.Cut(key, " ")
		if !want[anyMethod+" "+path] || method == anyMethod {
			t.Errorf("Echo serves %s, which is not in the route table", key)
		}
	}
	for key := range want {
		method, path, _ := strings.Cut(key, " ")
		if method == anyMethod {
			method = http.MethodGet
		}
		if !served[method+" "+path] {
			t.Errorf("the route table has %s, which Echo does not serve", key)
		}
	}
	if len(table) < 150 {
		t.Fatalf("route table has %d lines, want the whole surface", len(table))
	}
}

// TestCheckRoutesRefusesAMissingRole: a line nobody gave a role stops the
// start instead of serving to whoever asks.
func TestCheckRoutesRefusesAMissingRole(t *testing.T) {
	defer func() {
		msg, _ := recover().(string)
		if !strings.Contains(msg, "GET /x has no role") {
			t.Fatalf("panic = %q, want one naming GET /x", msg)
		}
	}()
	checkRoutes([]route{{method: http.MethodGet, path: "/x", handler: notFound}})
}

// TestEveryRoleIsEnforced asks every dashboard and API route without
// credentials and as each role below the one the table names, and wants
// a refusal each time: the roles are the server's, not only the table's.
func TestEveryRoleIsEnforced(t *testing.T) {
	app := newTestApp(t, nil)
	ctx := context.Background()
	sessions := map[string]*client{}
	tokens := map[string]string{}
	for _, r := range []string{models.RoleViewer, models.RoleMarketer, models.RoleAdmin} {
		sessions[r] = app.user(r)
		u, err := app.store.UserByEmail(ctx, r+"@example.com")
		if err != nil {
			t.Fatal(err)
		}
		if tokens[r], _, err = app.store.CreateAPIToken(ctx, u.ID, "routes test"); err != nil {
			t.Fatal(err)
		}
	}
	anon := app.client()
	anon.get("/login") // for a CSRF token: the refusal must be the role's, not CSRF's

	below := map[role][]string{
		roleViewer:                nil,
		roleMarketer:              {models.RoleViewer},
		roleAdmin:                 {models.RoleViewer, models.RoleMarketer},
		roleComplianceReader:      {models.RoleMarketer}, // until an admin allows marketers
		roleTokenViewer:           nil,
		roleTokenMarketer:         {models.RoleViewer},
		roleTokenAdmin:            {models.RoleViewer, models.RoleMarketer},
		roleTokenComplianceReader: {models.RoleMarketer}, // until an admin allows marketers
	}
	param := regexp.MustCompile(`:[a-z_]+`)
	checked := 0
	for _, r := range app.srv.routeTable() {
		lower, guarded := below[r.role]
		if !guarded {
			continue
		}
		path := param.ReplaceAllString(r.path, "1")
		session := r.role.stack() == stackDashboard

		// No credentials.
		p := send(t, anon, r.method, app.http.URL+path, "")
		switch {
		case session && r.method == http.MethodGet:
			if p.StatusCode != http.StatusSeeOther || p.Header.Get("Location") != "/login" {
				t.Errorf("%s %s (%v) signed out: %d → %q, want 303 → /login", r.method, r.path, r.role, p.StatusCode, p.Header.Get("Location"))
			}
		case p.StatusCode != http.StatusUnauthorized:
			t.Errorf("%s %s (%v) signed out: %d, want 401", r.method, r.path, r.role, p.StatusCode)
		}

		// A role too low.
		for _, low := range lower {
			if session {
				p = send(t, sessions[low], r.method, app.http.URL+path, "")
			} else {
				p = send(t, anon, r.method, app.http.URL+path, tokens[low])
			}
			if p.StatusCode != http.StatusForbidden {
				t.Errorf("%s %s (%v) as %s: %d, want 403", r.method, r.path, r.role, low, p.StatusCode)
			}
		}
		checked++
	}
	if checked < 150 {
		t.Fatalf("checked %d guarded routes, want every dashboard and API route", checked)
	}
	t.Logf("%d guarded routes refused without credentials and below their role", checked)
}

// send makes one request as c (its cookies and CSRF token), with a bearer
// token when tok is set, and does not follow redirects.
func send(t *testing.T, c *client, method, url, tok string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	if method != http.MethodGet {
		req.Header.Set("X-CSRF-Token", c.csrf)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	hc := &http.Client{Jar: c.hc.Jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}
