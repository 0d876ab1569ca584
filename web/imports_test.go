package web

import (
	"bytes"
	"context"
	"fmt"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/herald-mail/herald/models"
)

// upload posts a CSV file to /imports as the browser form does.
func (c *client) upload(listID int64, name string, data []byte) *page {
	c.t.Helper()
	if c.csrf == "" {
		c.get("/imports/new")
	}
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	mw.WriteField("_csrf", c.csrf)
	mw.WriteField("list", fmt.Sprint(listID))
	fw, _ := mw.CreateFormFile("file", name)
	fw.Write(data)
	mw.Close()
	req, _ := http.NewRequest("POST", c.app.http.URL+"/imports", &body)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	return c.do(req)
}

func TestImportBadInputIsExplained(t *testing.T) {
	app := newTestApp(t, nil)
	ctx := context.Background()
	m := app.user(models.RoleMarketer)
	l := &models.List{Name: "News", Optin: models.OptinSingle, Visibility: models.ListPrivate}
	app.store.CreateList(ctx, l)
	// Someone already on the list must survive every failed import.
	keep := &models.Subscriber{Email: "keep@example.com"}
	app.store.CreateSubscriber(ctx, keep, map[int64]string{l.ID: models.SubConfirmed}, models.Evidence{Source: models.SourceAdmin})

	cases := []struct {
		name, file string
		data       []byte
		want       string
	}{
		{"invalid UTF-8", "latin1.csv", []byte("email,name\nr\xe9my@example.com,R\xe9my\n"), "UTF-8"},
		{"empty", "empty.csv", nil, "empty"},
		{"header only", "header.csv", []byte("email,name\n"), "no rows"},
	}
	for _, tc := range cases {
		p := m.upload(l.ID, tc.file, tc.data)
		msg := p.Doc.Find(`[data-testid="import-error"]`).Text()
		if p.StatusCode != 422 || !strings.Contains(strings.ToLower(msg), strings.ToLower(tc.want)) {
			t.Errorf("%s: status %d, message %q; want 422 mentioning %q", tc.name, p.StatusCode, msg, tc.want)
		}
	}

	// Good file, but the mapping misses the lawful basis and the source.
	p := m.upload(l.ID, "people.csv", []byte("name,e-mail\nAnn,ann@example.com\nBad,not-an-email\nBob,bob@example.com\n"))
	if p.StatusCode != 200 || p.Doc.Find(`[data-testid="import-mapping"]`).Length() != 1 {
		t.Fatalf("upload: %d %.300s", p.StatusCode, p.Body)
	}
	if got := p.Doc.Find(`select[name="email_column"] option[selected]`).Text(); got != "e-mail" {
		t.Errorf("guessed email column = %q, want e-mail", got)
	}
	action, _ := p.Doc.Find(`[data-testid="import-mapping"]`).Attr("action")
	p = m.postForm(action, url.Values{"email_column": {"1"}, "name_column": {"0"}, "mode": {"skip"}, "status": {"confirmed"}})
	if p.StatusCode != 422 || p.Doc.Find(`[data-testid="err-lawful_basis"]`).Length() != 1 || p.Doc.Find(`[data-testid="err-source"]`).Length() != 1 {
		t.Fatalf("mapping without basis/source: %d %.300s", p.StatusCode, p.Body)
	}
	p = m.postForm(action, url.Values{"email_column": {"1"}, "name_column": {"0"}, "mode": {"skip"}, "status": {"confirmed"}, "lawful_basis": {"consent"}, "source": {"fair"}})
	if p.StatusCode != 200 {
		t.Fatalf("start: %d", p.StatusCode)
	}
	var im *models.Import
	for deadline := time.Now().Add(10 * time.Second); ; {
		var err error
		im, err = app.store.Import(ctx, mustImportID(t, p.Request.URL.Path))
		if err == nil && im.Done() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("import did not finish: %+v %v", im, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if im.Inserted != 2 || im.Failed != 1 {
		t.Fatalf("import = inserted %d failed %d, want 2 and 1", im.Inserted, im.Failed)
	}
	rep := m.get(fmt.Sprintf("/imports/%d/errors.csv", im.ID))
	if !strings.Contains(rep.Body, "not-an-email") || !strings.Contains(rep.Header.Get("Content-Type"), "text/csv") {
		t.Errorf("error report = %q", rep.Body)
	}
	l2, _ := app.store.List(ctx, l.ID)
	if l2.Confirmed != 3 {
		t.Errorf("confirmed on list = %d, want 3 (keep + ann + bob)", l2.Confirmed)
	}
}

func mustImportID(t *testing.T, path string) int64 {
	t.Helper()
	var id int64
	if _, err := fmt.Sscanf(path, "/imports/%d", &id); err != nil {
		t.Fatalf("not an import page: %s", path)
	}
	return id
}
