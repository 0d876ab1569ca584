package outhook_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/herald-mail/herald/internal/e2e"
	"github.com/herald-mail/herald/internal/outhook"
	"github.com/herald-mail/herald/internal/testdb"
	"github.com/herald-mail/herald/models"
)

func TestCheckURLRefusesPrivateTargets(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct{ url, want string }{
		{"http://127.0.0.1:8080/hook", "127.0.0.1 is a loopback address"},
		{"http://10.1.2.3/hook", "10.1.2.3 is a private address"},
		{"https://192.168.1.20/hook", "192.168.1.20 is a private address"},
		{"http://172.16.0.1/", "a private address"},
		{"http://[::1]:9000/hook", "::1 is a loopback address"},
		{"http://[fd12:3456::1]/", "a unique-local address"},
		{"http://169.254.169.254/latest/meta-data", "a link-local address"},
		{"http://0.0.0.0/", "the unspecified address"},
		{"http://localhost:9/hook", "localhost resolves to"},
	} {
		err := outhook.CheckURL(ctx, tc.url, false, nil)
		if !errors.Is(err, outhook.ErrTarget) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "allows private targets") {
			t.Errorf("CheckURL(%s) = %v; want a refusal saying %q and how to allow it", tc.url, err, tc.want)
		}
		if err := outhook.CheckURL(ctx, tc.url, true, nil); err != nil {
			t.Errorf("CheckURL(%s) with private targets allowed = %v", tc.url, err)
		}
	}
	for _, tc := range []struct{ url, want string }{
		{"ftp://example.com/x", "http:// or https://"},
		{"/relative", "http:// or https://"},
		{"https://user:pw@93.184.216.34/", "Leave user and password out"},
		{"https://no-such-host.invalid/", "could not be resolved"},
	} {
		if err := outhook.CheckURL(ctx, tc.url, true, nil); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("CheckURL(%s) = %v; want %q", tc.url, err, tc.want)
		}
	}
	if err := outhook.CheckURL(ctx, "https://93.184.216.34/hook", false, nil); err != nil {
		t.Errorf("public address refused: %v", err)
	}
}

// The check at delivery runs on the dialled address, whatever the URL
// said when it was saved.
func TestClientRefusesPrivateAtDial(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	url := strings.Replace(srv.URL, "127.0.0.1", "localhost", 1)
	_, err := outhook.Client(false, 5*time.Second, nil).Post(url, "application/json", strings.NewReader("{}"))
	if !errors.Is(err, outhook.ErrTarget) {
		t.Fatalf("post to %s = %v; want the target refused", url, err)
	}
	resp, err := outhook.Client(true, 5*time.Second, nil).Post(url, "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatalf("post with private targets allowed: %v", err)
	}
	resp.Body.Close()
}

func TestSignature(t *testing.T) {
	body := []byte(`{"id":"opened_1"}`)
	at := time.Unix(1_700_000_000, 0)
	h := outhook.Sign("whsec_x", at, body)
	if !strings.HasPrefix(h, "t=1700000000,v1=") || len(h) != len("t=1700000000,v1=")+64 {
		t.Fatalf("Sign() = %q", h)
	}
	if err := outhook.Verify("whsec_x", h, body, at.Add(time.Minute), 5*time.Minute); err != nil {
		t.Errorf("Verify(fresh) = %v", err)
	}
	if err := outhook.Verify("whsec_x", h, body, at.Add(10*time.Minute), 5*time.Minute); err == nil {
		t.Error("Verify accepted a stale timestamp")
	}
	if err := outhook.Verify("whsec_y", h, body, at, 5*time.Minute); err == nil {
		t.Error("Verify accepted another secret")
	}
	if err := outhook.Verify("whsec_x", h, []byte(`{"id":"opened_2"}`), at, 5*time.Minute); err == nil {
		t.Error("Verify accepted another body")
	}
}

// receiver records signed posts and answers with the codes given, then 200.
type receiver struct {
	mu     sync.Mutex
	codes  []int
	secret string
	got    []string // event ids of verified posts, in order
	bad    []string
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	defer rc.mu.Unlock()
	// The dispatcher's clock runs ahead in these tests: a day's tolerance.
	if err := outhook.Verify(rc.secret, r.Header.Get(outhook.SignatureHeader), body, time.Now(), 24*time.Hour); err != nil {
		rc.bad = append(rc.bad, err.Error())
		w.WriteHeader(400)
		return
	}
	rc.got = append(rc.got, r.Header.Get("Herald-Event-Id"))
	code := 200
	if len(rc.codes) > 0 {
		code, rc.codes = rc.codes[0], rc.codes[1:]
	}
	w.WriteHeader(code)
}

func TestDispatcherRetriesWithBackoff(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		rc := &receiver{codes: []int{500, 503}}
		srv := httptest.NewServer(rc)
		defer srv.Close()
		h, err := s.CreateWebhook(ctx, srv.URL+"/hook", []string{models.HookOpened})
		if err != nil {
			t.Fatal(err)
		}
		rc.secret = h.Secret
		clock := time.Now()
		d := &outhook.Dispatcher{Store: s, Log: slog.New(slog.DiscardHandler), Owner: "n1", Backoff: []time.Duration{time.Minute, time.Hour},
			Now: func() time.Time { return clock }}
		ev := models.TestHookEvent(clock)
		if _, err := s.EnqueueWebhookEvents(ctx, []models.Webhook{*h}, []models.HookEvent{ev}, clock); err != nil {
			t.Fatal(err)
		}

		// Private targets not allowed: refused at dial, logged, retried.
		if err := d.Run(ctx); err != nil {
			t.Fatal(err)
		}
		log, _ := s.WebhookLog(ctx, h.ID, 10)
		if len(log) != 1 || !strings.Contains(log[0].Error, "loopback") || log[0].NextAt.IsZero() || len(rc.got) != 0 {
			t.Fatalf("log %+v, receiver got %v; want the loopback refusal and a retry", log, rc.got)
		}
		if err := s.SetSetting(ctx, models.SettingWebhookPrivate, "on"); err != nil {
			t.Fatal(err)
		}
		// Not due yet.
		clock = clock.Add(30 * time.Second)
		if err := d.Run(ctx); err != nil {
			t.Fatal(err)
		}
		if len(rc.got) != 0 {
			t.Fatalf("posted before the backoff: %v", rc.got)
		}
		clock = clock.Add(31 * time.Second) // attempt 2: 500
		if err := d.Run(ctx); err != nil {
			t.Fatal(err)
		}
		clock = clock.Add(time.Hour + time.Second) // attempt 3: 503, the last
		if err := d.Run(ctx); err != nil {
			t.Fatal(err)
		}
		log, _ = s.WebhookLog(ctx, h.ID, 10)
		if len(rc.got) != 2 || len(rc.bad) != 0 || len(log) != 3 || log[0].Status != models.HookGivenUp ||
			!strings.Contains(log[0].Error, "HTTP 503") || log[1].Code != 500 {
			t.Fatalf("log %+v, receiver got %v bad %v; want 500 then 503 and given up", log, rc.got, rc.bad)
		}

		// A fresh event goes through at once; its id is the payload's.
		ev2 := models.TestHookEvent(clock)
		if _, err := s.EnqueueWebhookEvents(ctx, []models.Webhook{*h}, []models.HookEvent{ev2}, clock); err != nil {
			t.Fatal(err)
		}
		if err := d.Run(ctx); err != nil {
			t.Fatal(err)
		}
		if len(rc.got) != 3 || rc.got[2] != ev2.ID {
			t.Fatalf("receiver got %v, want %s last", rc.got, ev2.ID)
		}
		log, _ = s.WebhookLog(ctx, h.ID, 10)
		if log[0].Status != models.HookDone || log[0].Code != 200 {
			t.Errorf("latest log entry %+v, want delivered with 200", log[0])
		}
	})
}

// Two nodes dispatching at once post each delivery once: the rows are
// leased to one of them.
func TestDispatchersShareWithoutRepeats(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		var mu sync.Mutex
		seen := map[string]int{}
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			time.Sleep(5 * time.Millisecond)
			mu.Lock()
			seen[r.Header.Get("Herald-Event-Id")]++
			mu.Unlock()
		}))
		defer srv.Close()
		if err := s.SetSetting(ctx, models.SettingWebhookPrivate, "on"); err != nil {
			t.Fatal(err)
		}
		h, err := s.CreateWebhook(ctx, srv.URL, []string{models.HookSent})
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		var evs []models.HookEvent
		for range 120 {
			evs = append(evs, models.TestHookEvent(now))
		}
		if n, err := s.EnqueueWebhookEvents(ctx, []models.Webhook{*h}, evs, now); err != nil || n != len(evs) {
			t.Fatalf("enqueued %d, %v", n, err)
		}
		var wg sync.WaitGroup
		for _, owner := range []string{"node-a", "node-b", "node-c"} {
			d := &outhook.Dispatcher{Store: s, Log: slog.New(slog.DiscardHandler), Owner: owner, Parallel: 4}
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := d.Run(ctx); err != nil {
					t.Errorf("%s: %v", owner, err)
				}
			}()
		}
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		if len(seen) != len(evs) {
			t.Errorf("%d events posted, want %d", len(seen), len(evs))
		}
		for id, n := range seen {
			if n != 1 {
				t.Errorf("%s posted %d times", id, n)
			}
		}
	})
}

// A name that resolved to a public address when the webhook was saved
// and to a loopback one when a delivery is made (DNS rebinding) is
// refused at the dial, and a name resolving to a private address is
// refused when it is saved.
func TestRebindingRefusedAtDial(t *testing.T) {
	ns := e2e.StartDNS(t)
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, ns.Addr)
	}}
	ctx := context.Background()
	ns.Add(t, "inside.hooks.test. 60 IN A 192.168.7.7")
	if err := outhook.CheckURL(ctx, "https://inside.hooks.test/h", false, r); err == nil ||
		!strings.Contains(err.Error(), "inside.hooks.test resolves to 192.168.7.7, a private address") {
		t.Errorf("CheckURL(inside.hooks.test) = %v; want the private address named", err)
	}
	ns.Add(t, "rebind.hooks.test. 60 IN A 93.184.216.34")
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(srv.URL, "http://"))
	url := "http://rebind.hooks.test:" + port + "/h"
	if err := outhook.CheckURL(ctx, url, false, r); err != nil {
		t.Fatalf("CheckURL while public = %v", err)
	}
	ns.Remove("rebind.hooks.test.", "A")
	ns.Add(t, "rebind.hooks.test. 60 IN A 127.0.0.1")
	_, err := outhook.Client(false, 5*time.Second, r).Post(url, "application/json", strings.NewReader("{}"))
	if !errors.Is(err, outhook.ErrTarget) || !strings.Contains(err.Error(), "127.0.0.1 is a loopback address") {
		t.Fatalf("post after rebinding = %v; want the loopback refused", err)
	}
	resp, err := outhook.Client(true, 5*time.Second, r).Post(url, "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatalf("post with private targets allowed = %v", err)
	}
	resp.Body.Close()
}
