package web

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/PuerkitoBio/goquery"

	"github.com/herald-mail/herald/internal/config"
	"github.com/herald-mail/herald/internal/testdb"
	"github.com/herald-mail/herald/mailer"
	"github.com/herald-mail/herald/models"
)

// testApp is a real server on a real database, reached over HTTP.
type testApp struct {
	t     *testing.T
	store *models.Store
	srv   *Server
	http  *httptest.Server
}

func newTestApp(t *testing.T, store *models.Store) *testApp {
	t.Helper()
	return newTestAppWith(t, store, nil)
}

// newTestAppWith is newTestApp with mod applied to the configuration
// first.
func newTestAppWith(t *testing.T, store *models.Store, mod func(*config.Config)) *testApp {
	t.Helper()
	if store == nil {
		store = testdb.SQLite(t)
	}
	cfg := &config.Config{Listen: "127.0.0.1:0", RootURL: "http://herald.test", Secret: strings.Repeat("s", 32), DatabaseURL: "test", Transport: "capture"}
	if mod != nil {
		mod(cfg)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	eng := mailer.New(mailer.Options{Logger: log, RootURL: cfg.RootURL, Secrets: []string{cfg.Secret}, NodeID: "test"}, store)
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { eng.Run(ctx); close(done) }()
	t.Cleanup(func() { stop(); <-done })
	srv := New(cfg, store, eng, log)
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	return &testApp{t: t, store: store, srv: srv, http: hs}
}

// user creates a user with a role and returns a signed-in client.
func (a *testApp) user(role string) *client {
	a.t.Helper()
	email := role + "@example.com"
	if _, err := a.store.CreateUser(context.Background(), email, "", "correct horse battery", role); err != nil {
		a.t.Fatal(err)
	}
	c := a.client()
	resp := c.postForm("/login", url.Values{"email": {email}, "password": {"correct horse battery"}})
	if resp.StatusCode != 200 || !strings.HasSuffix(resp.Request.URL.Path, "/") {
		a.t.Fatalf("login as %s: status %d at %s", role, resp.StatusCode, resp.Request.URL)
	}
	return c
}

// client is a browser-like HTTP client: cookies, and CSRF tokens taken from
// the last page it saw.
type client struct {
	t    *testing.T
	app  *testApp
	hc   *http.Client
	csrf string
}

func (a *testApp) client() *client {
	jar, _ := cookiejar.New(nil)
	return &client{t: a.t, app: a, hc: &http.Client{Jar: jar}}
}

type page struct {
	*http.Response
	Body string
	Doc  *goquery.Document
}

func (c *client) do(req *http.Request) *page {
	c.t.Helper()
	resp, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	p := &page{Response: resp, Body: string(b)}
	p.Doc, _ = goquery.NewDocumentFromReader(strings.NewReader(p.Body))
	if tok, ok := p.Doc.Find(`input[name="_csrf"]`).First().Attr("value"); ok && tok != "" {
		c.csrf = tok
	}
	return p
}

func (c *client) get(path string) *page {
	req, _ := http.NewRequest("GET", c.app.http.URL+path, nil)
	return c.do(req)
}

// postForm posts a form with the CSRF token, fetching a page first if the
// client has none yet.
func (c *client) postForm(path string, v url.Values) *page {
	if c.csrf == "" {
		c.get("/login")
	}
	v2 := url.Values{}
	for k, vs := range v {
		v2[k] = vs
	}
	if v2.Get("_csrf") == "" {
		v2.Set("_csrf", c.csrf)
	}
	return c.postRaw(path, v2)
}

// postRaw posts exactly v, with no token added.
func (c *client) postRaw(path string, v url.Values) *page {
	req, _ := http.NewRequest("POST", c.app.http.URL+path, strings.NewReader(v.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return c.do(req)
}

// api sends a JSON request with a bearer token.
func (a *testApp) api(method, path, token, body string) *page {
	a.t.Helper()
	req, _ := http.NewRequest(method, a.http.URL+path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
	c := a.client()
	return c.do(req)
}
