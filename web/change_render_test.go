package web

import (
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/herald-mail/herald/models"
)

// TestRefusedFormInsideAChangeSavesTheSession: a handler that refuses its
// input inside an open change (a duplicate template name) re-shows its
// form, and writing that answer saves the session. On SQLite the change
// held the write lock until the handler returned, so the session's save
// waited busy_timeout (10 s) and the answer was a 500. Here the session
// has a flash waiting (the redirect after the first save is not followed),
// so the refused form's page takes it and the session must be saved.
func TestRefusedFormInsideAChangeSavesTheSession(t *testing.T) {
	app := newTestApp(t, nil)
	m := app.user(models.RoleMarketer)
	follow := m.hc.CheckRedirect
	m.hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	form := url.Values{"name": {"Monthly"}, "kind": {"campaign"}, "subject": {"News"}, "html": {goodHTML}}
	if p := m.postForm("/templates", form); p.StatusCode != http.StatusSeeOther {
		t.Fatalf("create: %d, want 303", p.StatusCode)
	}
	m.hc.CheckRedirect = follow
	start := time.Now()
	p := m.postForm("/templates", form)
	if p.StatusCode != http.StatusUnprocessableEntity || p.Doc.Find(`[data-testid="err-name"]`).Length() == 0 {
		t.Fatalf("duplicate name: %d after %v, want 422 with the name's message", p.StatusCode, time.Since(start).Round(time.Millisecond))
	}
}
