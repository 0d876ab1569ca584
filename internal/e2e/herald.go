// Package e2e runs Herald as a user runs it, for end-to-end tests: the built
// binary (`herald serve`) as a subprocess, a local DNS server standing in for
// the internet's, and go-smtp receivers on 127.0.0.x standing in for mail
// providers. Tests drive Herald through its JSON API and its dashboard, and
// read the outcome at the receivers (and, for assertions, in the database).
//
// Nothing here assembles an engine: what runs is the binary, wired as
// `serve` wires it.
package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/herald-mail/herald/models"
)

var build struct {
	once sync.Once
	path string
	err  error
}

// Binary builds cmd/herald once per test process and returns its path.
func Binary(t testing.TB) string {
	t.Helper()
	build.once.Do(func() {
		dir, err := os.MkdirTemp("", "herald-e2e-bin-")
		if err != nil {
			build.err = err
			return
		}
		build.path = filepath.Join(dir, "herald")
		out, err := exec.Command("go", "build", "-o", build.path, "github.com/herald-mail/herald/cmd/herald").CombinedOutput()
		if err != nil {
			build.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if build.err != nil {
		t.Fatal(build.err)
	}
	return build.path
}

// Options says how to start Herald. The zero value starts it on a new
// SQLite file with the capture transport.
type Options struct {
	// Transport is capture (""), direct or relay.
	Transport string
	// DNS is the local DNS server MX lookups and DNS checks ask; nil means
	// the system resolver.
	DNS *DNS
	// MXPort is the port receivers listen on, standing in for port 25.
	MXPort int
	// DatabaseURL is a postgres:// URL; "" means a new SQLite file.
	DatabaseURL string
	// Env adds HERALD_* (or other) variables, e.g. "HERALD_RELAY=smtp://…".
	Env []string
	// Args adds flags after `serve`.
	Args []string
}

// Herald is a running `herald serve`.
type Herald struct {
	// URL is the dashboard's root, e.g. http://127.0.0.1:41234.
	URL string
	// DatabaseURL is the database the process uses.
	DatabaseURL string
	// Secret is the server secret (HERALD_SECRET) the process was given.
	Secret string
	// Token is an admin's API token; Admin and Password sign in to the
	// dashboard.
	Token, Admin, Password string

	t      testing.TB
	bin    string
	env    []string
	args   []string
	cmd    *exec.Cmd
	exited chan struct{}
	logs   *syncBuffer
	store  *models.Store
	client *http.Client
}

// Start starts Herald and waits until it answers; it is stopped (SIGTERM)
// when the test ends, and its log is printed when the test failed.
func Start(t testing.TB, o Options) *Herald {
	t.Helper()
	bin := Binary(t)
	dir := t.TempDir()
	h := &Herald{t: t, bin: bin, DatabaseURL: o.DatabaseURL, Secret: randomHex(24), logs: &syncBuffer{},
		Admin: "admin@herald.test", Password: randomHex(8), client: &http.Client{Timeout: 30 * time.Second}}
	if h.DatabaseURL == "" {
		h.DatabaseURL = filepath.Join(dir, "herald.db")
	}
	listen := "127.0.0.1:" + strconv.Itoa(FreePort(t))
	h.URL = "http://" + listen
	h.env = append(os.Environ(),
		"HERALD_DATABASE_URL="+h.DatabaseURL, "HERALD_LISTEN="+listen, "HERALD_SECRET="+h.Secret,
		"HERALD_TRANSPORT="+firstOf(o.Transport, "capture"), "HERALD_NODE_ID=e2e-"+randomHex(3))
	if o.DNS != nil {
		h.env = append(h.env, "HERALD_DNS_SERVER="+o.DNS.Addr)
	}
	if o.MXPort != 0 {
		h.env = append(h.env, "HERALD_MX_PORT="+strconv.Itoa(o.MXPort))
	}
	h.env = append(h.env, o.Env...)
	h.args = o.Args

	h.run(t, "migrate")
	h.run(t, "user", "create", "--email", h.Admin, "--password", h.Password, "--name", "E2E Admin")
	h.Token = h.createToken(t)
	h.organisation(t)
	h.start(t)
	t.Cleanup(func() {
		h.Stop()
		if t.Failed() {
			t.Logf("herald log (tail):\n%s", tail(h.logs.String(), 60))
		}
		if h.store != nil {
			h.store.Close()
		}
	})
	return h
}

// Node starts another `herald serve` on h's database, as a second node of
// a cluster runs: its own listen address and node id, h's settings,
// secret and admin otherwise. It is stopped when the test ends.
func (h *Herald) Node(t testing.TB) *Herald {
	t.Helper()
	listen := "127.0.0.1:" + strconv.Itoa(FreePort(t))
	n := &Herald{URL: "http://" + listen, DatabaseURL: h.DatabaseURL, Secret: h.Secret, Token: h.Token, Admin: h.Admin,
		Password: h.Password, t: t, bin: h.bin, args: h.args, logs: &syncBuffer{}, client: &http.Client{Timeout: 30 * time.Second}}
	// Later entries win: exec keeps the last value of a repeated variable.
	n.env = append(append([]string(nil), h.env...), "HERALD_LISTEN="+listen, "HERALD_NODE_ID=e2e-"+randomHex(3))
	n.start(t)
	t.Cleanup(func() {
		n.Stop()
		if t.Failed() {
			t.Logf("herald node log (tail):\n%s", tail(n.logs.String(), 60))
		}
		if n.store != nil {
			n.store.Close()
		}
	})
	return n
}

// createToken makes an API token for the admin with `herald token create`,
// as a deployment script would.
func (h *Herald) createToken(t testing.TB) string {
	t.Helper()
	cmd := exec.Command(h.bin, "token", "create", "--email", h.Admin, "--name", "e2e")
	cmd.Env = h.env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	tok := strings.TrimSpace(string(out))
	if err != nil || tok == "" || strings.ContainsAny(tok, " \n") {
		t.Fatalf("e2e: herald token create = %q, %v\n%s", out, err, stderr.String())
	}
	return tok
}

// run runs one herald subcommand to completion with the test's settings.
func (h *Herald) run(t testing.TB, args ...string) string {
	t.Helper()
	cmd := exec.Command(h.bin, args...)
	cmd.Env = h.env
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("herald %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// Run runs a herald subcommand (e.g. "bounce", "parse") against the same
// database and settings, and returns its combined output and error.
func (h *Herald) Run(args ...string) (string, error) {
	cmd := exec.Command(h.bin, args...)
	cmd.Env = h.env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (h *Herald) start(t testing.TB) {
	t.Helper()
	cmd := exec.Command(h.bin, append([]string{"serve"}, h.args...)...)
	cmd.Env = h.env
	cmd.Stdout, cmd.Stderr = h.logs, h.logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("e2e: start herald: %v", err)
	}
	h.cmd, h.exited = cmd, make(chan struct{})
	go func() { cmd.Wait(); close(h.exited) }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-h.exited:
			t.Fatalf("e2e: herald serve exited at start:\n%s", tail(h.logs.String(), 40))
		default:
		}
		resp, err := h.client.Get(h.URL + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("e2e: herald did not answer /healthz within 60 s:\n%s", tail(h.logs.String(), 40))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Restart starts the process again after Stop or Kill, on the same database.
func (h *Herald) Restart() {
	h.t.Helper()
	h.Stop()
	h.start(h.t)
}

// Stop ends the process with SIGTERM (a clean shutdown), waiting for it.
func (h *Herald) Stop() { h.signal(syscall.SIGTERM, 30*time.Second) }

// Kill ends the process with SIGKILL, as a crash would.
func (h *Herald) Kill() { h.signal(syscall.SIGKILL, 10*time.Second) }

func (h *Herald) signal(sig syscall.Signal, wait time.Duration) {
	if h.cmd == nil {
		return
	}
	select {
	case <-h.exited:
	default:
		h.cmd.Process.Signal(sig)
		select {
		case <-h.exited:
		case <-time.After(wait):
			h.cmd.Process.Kill()
			<-h.exited
		}
	}
	h.cmd = nil
}

// PID is the running process's id (for reading its memory in /proc).
func (h *Herald) PID() int { return h.cmd.Process.Pid }

// Logs returns everything the process wrote so far.
func (h *Herald) Logs() string { return h.logs.String() }

// Store opens (once) the database the process uses, for setup and
// assertions beside the API.
func (h *Herald) Store(t testing.TB) *models.Store {
	t.Helper()
	if h.store == nil {
		s, err := models.Open(context.Background(), h.DatabaseURL)
		if err != nil {
			t.Fatalf("e2e: open %s: %v", h.DatabaseURL, err)
		}
		if _, err := s.Migrate(context.Background()); err != nil {
			t.Fatalf("e2e: migrate: %v", err)
		}
		h.store = s
	}
	return h.store
}

// API calls the JSON API with the admin's token. in (when not nil) is sent
// as JSON, the answer is decoded into out (when not nil), and the status is
// returned.
func (h *Herald) API(t testing.TB, method, path string, in, out any) int {
	t.Helper()
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			t.Fatal(err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, h.URL+"/api/v1"+path, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+h.Token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := h.client.Do(req)
	if err != nil {
		t.Fatalf("e2e: %s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	// An error's JSON body is decoded into out too (an error field), when
	// it is JSON; a success must be.
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil && resp.StatusCode < 300 {
			t.Fatalf("e2e: %s %s: decode %q: %v", method, path, raw, err)
		}
	}
	if resp.StatusCode >= 300 {
		t.Logf("e2e: %s %s answered %d: %s", method, path, resp.StatusCode, raw)
	}
	return resp.StatusCode
}

// MustAPI is API that fails the test unless the status is want.
func (h *Herald) MustAPI(t testing.TB, want int, method, path string, in, out any) {
	t.Helper()
	if got := h.API(t, method, path, in, out); got != want {
		t.Fatalf("e2e: %s %s = %d, want %d", method, path, got, want)
	}
}

// Dashboard is a signed-in browser-less session of the admin: cookies and
// the CSRF token, for the dashboard's forms.
type Dashboard struct {
	h      *Herald
	client *http.Client
	csrf   string
}

// Dashboard signs the admin in.
func (h *Herald) Dashboard(t testing.TB) *Dashboard {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	d := &Dashboard{h: h, client: &http.Client{Jar: jar, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	d.Get(t, "/login")
	u, _ := url.Parse(h.URL)
	for _, c := range jar.Cookies(u) {
		if c.Name == "herald_csrf" {
			d.csrf = c.Value
		}
	}
	if d.csrf == "" {
		t.Fatal("e2e: no CSRF cookie after GET /login")
	}
	if code, body := d.Post(t, "/login", url.Values{"email": {h.Admin}, "password": {h.Password}}); code != http.StatusSeeOther {
		t.Fatalf("e2e: login = %d: %s", code, tail(body, 10))
	}
	return d
}

// Get fetches a dashboard page and returns its status and body.
func (d *Dashboard) Get(t testing.TB, path string) (int, string) {
	t.Helper()
	resp, err := d.client.Get(d.h.URL + path)
	if err != nil {
		t.Fatalf("e2e: GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// Post submits a dashboard form (with the CSRF token) and returns the
// status and body; redirects are not followed (Location is in the body's
// place when the answer is a redirect).
func (d *Dashboard) Post(t testing.TB, path string, form url.Values) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, d.h.URL+path, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-CSRF-Token", d.csrf)
	resp, err := d.client.Do(req)
	if err != nil {
		t.Fatalf("e2e: POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if loc := resp.Header.Get("Location"); loc != "" && resp.StatusCode/100 == 3 {
		return resp.StatusCode, loc
	}
	return resp.StatusCode, string(b)
}

// FreePort returns a TCP port free on every loopback address a test uses
// (127.0.0.1 to 127.0.0.9) at the time of the call. Ports come from below
// the kernel's ephemeral range (32768 and up on Linux): a port taken from
// that range can meanwhile become the source port of one of Herald's own
// connections leaving from 127.0.0.2, and the receiver that then listens
// there fails with "address already in use". A counter, started at a
// place that differs per process, keeps the tests of one package (which
// run in parallel) from being handed the same port.
func FreePort(t testing.TB) int {
	t.Helper()
	for range 2000 {
		p := int(nextPort.Add(1))%(32000-20000) + 20000
		if portFree(p) {
			return p
		}
	}
	t.Fatal("e2e: no free port between 20000 and 32000")
	return 0
}

var nextPort atomic.Int64

func init() { nextPort.Store(int64(os.Getpid()) * 97) }

func portFree(p int) bool {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for i := 1; i <= 9; i++ {
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.%d:%d", i, p))
		if err != nil {
			return false
		}
		ls = append(ls, l)
	}
	return true
}

// Eventually polls cond every 50 ms until it holds, failing the test with
// what after timeout.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("e2e: timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func firstOf(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func tail(s string, lines int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > lines {
		l = l[len(l)-lines:]
	}
	return strings.Join(l, "\n")
}

// syncBuffer is a bytes.Buffer safe for the process's writes and the
// test's reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
