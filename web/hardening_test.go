package web

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/herald-mail/herald/internal/config"
	"github.com/herald-mail/herald/models"
)

// tempFiles lists the temp folder, the import folder's files included.
func tempFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.IsDir() {
			sub, _ := os.ReadDir(dir + "/" + e.Name())
			for _, s := range sub {
				out = append(out, e.Name()+"/"+s.Name())
			}
			continue
		}
		out = append(out, e.Name())
	}
	sort.Strings(out)
	return out
}

// bigCSV is a valid import over the 32 MB that multipart parsing keeps in
// memory, so its file part is spooled to the temp folder.
func bigCSV(rows int) []byte {
	var b bytes.Buffer
	b.WriteString("email,name\n")
	for i := range rows {
		fmt.Fprintf(&b, "reader%08d@example.com,Reader number %08d with a long name to fill the line\n", i, i)
	}
	return b.Bytes()
}

// An import upload leaves nothing in the temp folder, whether it is
// accepted, refused or over the limit: an accepted file waits for its
// start in the database, a refused one is not kept anywhere.
func TestUploadsLeaveNoTempFiles(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("TMPDIR", dir)
	app := newTestApp(t, nil)
	m := app.user(models.RoleMarketer)
	l := &models.List{Name: "News", Optin: models.OptinSingle, Visibility: models.ListPrivate}
	if err := app.store.CreateList(t.Context(), l); err != nil {
		t.Fatal(err)
	}
	data := bigCSV(440_000)
	t.Logf("upload of %d MB", len(data)>>20)
	before := tempFiles(t, dir)

	// Refused: no list chosen.
	if p := m.upload(0, "people.csv", data); p.StatusCode != 422 {
		t.Fatalf("upload without a list: status %d, want 422", p.StatusCode)
	}
	if got := tempFiles(t, dir); fmt.Sprint(got) != fmt.Sprint(before) {
		t.Errorf("after a refused upload the temp folder holds %v, want %v", got, before)
	}
	// Refused: a header that is not UTF-8 (a file in another encoding).
	bad := []byte("email,pr\xe9nom\nremy@example.com,R\xe9my\n")
	if p := m.upload(l.ID, "latin1.csv", bad); p.StatusCode != 422 {
		t.Fatalf("latin-1 upload: status %d, want 422", p.StatusCode)
	}
	if got := tempFiles(t, dir); fmt.Sprint(got) != fmt.Sprint(before) {
		t.Errorf("after a refused upload the temp folder holds %v, want %v", got, before)
	}
	if chunks, _ := importChunks(t, app.store); chunks != 0 {
		t.Errorf("after refused uploads the database holds %d chunks of them, want none", chunks)
	}
	// Accepted: the file waits for the start in the database.
	if p := m.upload(l.ID, "people.csv", data); p.StatusCode != 200 {
		t.Fatalf("upload: status %d, want 200", p.StatusCode)
	}
	if got := tempFiles(t, dir); fmt.Sprint(got) != fmt.Sprint(before) {
		t.Errorf("after an accepted upload the temp folder holds %v, want %v", got, before)
	}
	if _, stored := importChunks(t, app.store); stored != int64(len(data)) {
		t.Errorf("the database holds %d bytes of the accepted upload, want %d", stored, len(data))
	}
}

// The import limit is a setting, and a body over it is refused from its
// Content-Length before it is read.
func TestImportLimitIsConfigurable(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("TMPDIR", dir)
	app := newTestAppWith(t, nil, func(c *config.Config) { c.ImportMaxBytes = 1 << 20 })
	m := app.user(models.RoleMarketer)
	l := &models.List{Name: "News", Optin: models.OptinSingle, Visibility: models.ListPrivate}
	app.store.CreateList(t.Context(), l)
	p := m.upload(l.ID, "people.csv", bigCSV(40_000))
	if p.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(p.Body, "the limit here is 2 MB") {
		t.Fatalf("upload over the limit: status %d %.300s, want 413 naming the limit", p.StatusCode, p.Body)
	}
	if got := tempFiles(t, dir); len(got) != 0 {
		t.Errorf("temp folder after a refused upload: %v, want empty", got)
	}
	if p := m.upload(l.ID, "people.csv", bigCSV(1000)); p.StatusCode != 200 {
		t.Errorf("upload under the limit: status %d, want 200", p.StatusCode)
	}
}

// Every route that takes a body has a limit: a 5 MB form to the dashboard,
// a public page or the API is refused with 413.
func TestBodyLimits(t *testing.T) {
	app := newTestApp(t, nil)
	m := app.user(models.RoleMarketer)
	big := strings.Repeat("x", 5<<20)
	p := m.postForm("/lists", url.Values{"name": {big}})
	if p.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("5 MB dashboard form: status %d, want 413", p.StatusCode)
	}
	p = app.api("POST", "/api/v1/lists", "x", `{"name":"`+strings.Repeat("x", 11<<20)+`"}`)
	if p.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("11 MB API body: status %d, want 413", p.StatusCode)
	}
}

// The CSRF token counts only from the form body or the header, never from
// the query string; under an https root URL its cookie is Secure.
func TestCSRFTokenPlaces(t *testing.T) {
	app := newTestApp(t, nil)
	m := app.user(models.RoleMarketer)
	m.get("/lists/new")
	req, _ := http.NewRequest("POST", app.http.URL+"/lists?_csrf="+url.QueryEscape(m.csrf), strings.NewReader("name=Query"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if p := m.do(req); p.StatusCode != http.StatusForbidden {
		t.Errorf("token in the query string: status %d, want 403", p.StatusCode)
	}
	if p := m.postForm("/lists", url.Values{"name": {"Body"}, "optin": {"single"}, "visibility": {"private"}}); p.StatusCode != 200 {
		t.Errorf("token in the body: status %d, want 200", p.StatusCode)
	}

	for root, want := range map[string]bool{"https://herald.example": true, "http://herald.test": false} {
		app := newTestAppWith(t, nil, func(c *config.Config) { c.RootURL = root })
		resp, err := http.Get(app.http.URL + "/login")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		var secure, found bool
		for _, c := range resp.Cookies() {
			if c.Name == "herald_csrf" {
				found, secure = true, c.Secure
			}
		}
		if !found || secure != want {
			t.Errorf("root %s: CSRF cookie found %v, Secure %v; want Secure %v", root, found, secure, want)
		}
	}
}

// X-Forwarded-For is believed only from a configured trusted proxy.
func TestClientIP(t *testing.T) {
	_, proxies, _ := net.ParseCIDR("10.1.0.0/16")
	cases := []struct {
		name    string
		proxies []*net.IPNet
		peer    string
		xff     string
		want    string
	}{
		{"no proxies, private peer", nil, "192.168.1.5:4000", "203.0.113.9", "192.168.1.5"},
		{"no proxies, loopback peer", nil, "127.0.0.1:4000", "203.0.113.9", "127.0.0.1"},
		{"trusted proxy", []*net.IPNet{proxies}, "10.1.2.3:4000", "203.0.113.9", "203.0.113.9"},
		{"trusted proxy chain", []*net.IPNet{proxies}, "10.1.2.3:4000", "203.0.113.9, 10.1.9.9", "203.0.113.9"},
		{"untrusted peer", []*net.IPNet{proxies}, "10.2.0.1:4000", "203.0.113.9", "10.2.0.1"},
	}
	for _, c := range cases {
		req := httptest.NewRequest("GET", "/", nil)
		req.RemoteAddr = c.peer
		req.Header.Set(echo.HeaderXForwardedFor, c.xff)
		req.Header.Set(echo.HeaderXRealIP, "198.51.100.1")
		if got := clientIP(c.proxies)(req); got != c.want {
			t.Errorf("%s: client IP = %s, want %s", c.name, got, c.want)
		}
	}
}

// The HTTP server has read-header, read and idle timeouts.
func TestHTTPServerTimeouts(t *testing.T) {
	s := HTTPServer(http.NotFoundHandler())
	if s.ReadHeaderTimeout <= 0 || s.ReadTimeout <= 0 || s.IdleTimeout <= 0 {
		t.Errorf("HTTPServer() timeouts: header %v, read %v, idle %v; want all set", s.ReadHeaderTimeout, s.ReadTimeout, s.IdleTimeout)
	}
}

var (
	inlineScript  = regexp.MustCompile(`(?i)<script\b[^>]*>`)
	handlerAttrRE = regexp.MustCompile(`(?i)<[a-z][^>]*\son[a-z]+\s*=`)
)

// Every registered route answers with the Content-Security-Policy and the
// other security headers, signed out and as an admin, and no dashboard
// page holds an inline script or an on…= handler the policy would block.
func TestEveryRouteSendsSecurityHeaders(t *testing.T) {
	app := newTestApp(t, nil)
	admin := app.user(models.RoleAdmin)
	anon := app.client()
	// Rows with id 1 where the pages have actions (remove a user, revoke a
	// token, copy a DNS record, print a certificate).
	ctx := t.Context()
	other, err := app.store.CreateUser(ctx, "other@example.com", "Other", "correct horse battery", models.RoleViewer)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := app.store.CreateAPIToken(ctx, other.ID, "ci"); err != nil {
		t.Fatal(err)
	}
	if _, err := app.store.CreateSendingDomain(ctx, "news.example.com", app.srv.cfg.Secret, models.SendingDomainOptions{}); err != nil {
		t.Fatal(err)
	}
	l := &models.List{Name: "News", Optin: models.OptinSingle, Visibility: models.ListPublic}
	if err := app.store.CreateList(ctx, l); err != nil {
		t.Fatal(err)
	}
	if err := app.store.CreateSubscriber(ctx, &models.Subscriber{Email: "ada@example.org"}, map[int64]string{l.ID: models.SubConfirmed},
		models.Evidence{Source: models.SourceAdmin}); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"Content-Security-Policy": "script-src 'self';",
		"X-Content-Type-Options":  "nosniff",
		"Referrer-Policy":         "same-origin",
		"X-Frame-Options":         "SAMEORIGIN",
	}
	routes := app.srv.echo.Routes()
	if len(routes) < 100 {
		t.Fatalf("Routes() = %d routes, want the whole table", len(routes))
	}
	checked, pages := 0, 0
	for _, r := range routes {
		if r.Method == echo.RouteNotFound {
			continue
		}
		path := regexp.MustCompile(`:[a-z_]+`).ReplaceAllString(r.Path, "1")
		path = strings.ReplaceAll(path, "*", "x")
		for who, c := range map[string]*client{"anonymous": anon, "admin": admin} {
			req, _ := http.NewRequest(r.Method, app.http.URL+path, nil)
			p := c.do(req)
			for h, v := range want {
				if got := p.Header.Get(h); !strings.Contains(got, v) {
					t.Errorf("%s %s (%s, status %d): %s = %q, want it to contain %q", r.Method, r.Path, who, p.StatusCode, h, got, v)
				}
			}
			if csp := p.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors") {
				t.Errorf("%s %s (%s): CSP %q has no frame-ancestors", r.Method, r.Path, who, csp)
			}
			if strings.HasPrefix(p.Header.Get("Content-Type"), "text/html") && p.StatusCode == 200 {
				pages++
				for _, m := range inlineScript.FindAllString(p.Body, -1) {
					if !strings.Contains(m, " src=") {
						t.Errorf("%s %s (%s): inline script %q", r.Method, r.Path, who, m)
					}
				}
				if m := handlerAttrRE.FindString(p.Body); m != "" && !strings.Contains(r.Path, "/outbox/") {
					t.Errorf("%s %s (%s): inline handler in %q", r.Method, r.Path, who, m)
				}
			}
			checked++
		}
	}
	t.Logf("checked %d routes twice (%d requests), %d HTML pages for inline script", len(routes), checked, pages)
}

// The reported templates, through the dashboard's preview and save: each
// is answered within 2 s with a message naming the limit, and the process
// does not grow by the 150 MB the printf case used to allocate.
func TestTemplatePreviewIsBounded(t *testing.T) {
	app := newTestApp(t, nil)
	m := app.user(models.RoleMarketer)
	for _, src := range []string{`{{range 50000000}}{{end}}`, `{{range 5}}{{printf "%010000000d" 0}}{{end}}`, `{{range 100000}}{{range 100000}}{{end}}{{end}}`} {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		start := time.Now()
		p := m.postForm("/templates/preview", url.Values{"subject": {"Hi"}, "text": {src}})
		took := time.Since(start)
		runtime.ReadMemStats(&after)
		grew := int64(after.TotalAlloc - before.TotalAlloc)
		t.Logf("%s: preview status %d in %v, %.1f MB allocated", src, p.StatusCode, took, float64(grew)/(1<<20))
		if !strings.Contains(p.Body, "limit") {
			t.Errorf("%s: preview %.300s, want a message naming the limit", src, p.Body)
		}
		if took > 2*time.Second || grew > 50<<20 {
			t.Errorf("%s: preview took %v and allocated %d MB, want under 2 s and 50 MB", src, took, grew>>20)
		}
		save := m.postForm("/templates", url.Values{"kind": {"campaign"}, "name": {"loop"}, "subject": {"Hi"}, "text": {src}})
		if save.StatusCode != 422 || !strings.Contains(save.Body, "limit") {
			t.Errorf("%s: save status %d, want 422 naming the limit", src, save.StatusCode)
		}
	}
}
