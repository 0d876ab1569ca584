package web

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/herald-mail/herald/internal/testdb"
	"github.com/herald-mail/herald/models"
)

// readyzOf fetches /readyz and decodes it.
func readyzOf(t *testing.T, a *testApp) (int, readiness) {
	t.Helper()
	p := a.client().get("/readyz")
	var r readiness
	if err := json.Unmarshal([]byte(p.Body), &r); err != nil {
		t.Fatalf("/readyz body %q: %v", p.Body, err)
	}
	return p.StatusCode, r
}

// While the database does not answer, /healthz still answers (the process
// lives), /readyz answers 503 naming the database and the mailer, the API
// answers 503 with a JSON error instead of calling a valid token invalid,
// and dashboard pages, signed in or not, answer 503 with a page that says
// Herald recovers by itself.
func TestDatabaseUnreachable(t *testing.T) {
	ctx := context.Background()
	store := testdb.SQLite(t)
	a := newTestApp(t, store)
	admin := a.user(models.RoleAdmin)
	u, err := store.UserByEmail(ctx, "admin@example.com")
	if err != nil {
		t.Fatal(err)
	}
	token, _, err := store.CreateAPIToken(ctx, u.ID, "test")
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, r := readyzOf(t, a)
		if code == 200 && r.Ready && r.Database.OK && r.Mailer.OK && r.Mailer.LastClaim != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz = %d %+v with the database up, want 200 and every check ok", code, r)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if p := a.api("GET", "/api/v1/lists", token, ""); p.StatusCode != 200 {
		t.Fatalf("API with a valid token = %d before the outage: %s", p.StatusCode, p.Body)
	}
	if p := a.api("GET", "/api/v1/lists", "hrld_not-a-token", ""); p.StatusCode != 401 {
		t.Fatalf("API with an unknown token = %d, want 401: %s", p.StatusCode, p.Body)
	}

	store.Close() // every call fails from now on, as with a stopped server

	if p := a.client().get("/healthz"); p.StatusCode != 200 {
		t.Errorf("/healthz = %d during the outage, want 200 (liveness)", p.StatusCode)
	}
	deadline = time.Now().Add(10 * time.Second)
	for {
		code, r := readyzOf(t, a)
		if code == 503 && !r.Ready && !r.Database.OK && !r.Mailer.OK && r.Mailer.DatabaseDownSince != nil {
			if !strings.Contains(r.Database.Problem, "does not answer") || !strings.Contains(r.Mailer.Problem, "cannot reach the database") {
				t.Errorf("/readyz problems = %q, %q; want them to say what is down", r.Database.Problem, r.Mailer.Problem)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz = %d %+v during the outage, want 503 naming the database and the mailer", code, r)
		}
		time.Sleep(50 * time.Millisecond)
	}

	p := a.api("GET", "/api/v1/lists", token, "")
	var apiErr struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if err := json.Unmarshal([]byte(p.Body), &apiErr); err != nil || p.StatusCode != 503 || apiErr.Error.Code != "database_unreachable" {
		t.Errorf("API with a valid token during the outage = %d %s, want 503 with error code database_unreachable", p.StatusCode, p.Body)
	}
	if p.Header.Get("Retry-After") == "" {
		t.Error("the API's 503 has no Retry-After")
	}

	for _, tc := range []struct {
		name string
		c    *client
		path string
	}{
		{"signed-in page", admin, "/lists"},
		{"sign-in page", a.client(), "/login"},
	} {
		p := tc.c.get(tc.path)
		box := p.Doc.Find(`[data-testid="db-unavailable"]`)
		if p.StatusCode != 503 || box.Length() == 0 || !strings.Contains(box.Text(), "recover by itself") {
			t.Errorf("%s (%s) during the outage = %d, want 503 with the database-unreachable page:\n%s", tc.name, tc.path, p.StatusCode, p.Body)
		}
	}
}
