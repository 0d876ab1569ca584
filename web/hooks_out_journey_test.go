package web

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/herald-mail/herald/internal/browsertest"
	"github.com/herald-mail/herald/internal/e2e"
	"github.com/herald-mail/herald/internal/outhook"
)

// hookReceiver is a webhook receiver as an integrator writes one: it
// checks the signature and the timestamp, and answers with the codes it
// is told to, then 200.
type hookReceiver struct {
	mu      sync.Mutex
	secret  string
	answers []int
	posts   []hookPost
}

type hookPost struct {
	id, event string
	code      int
	bad       string // why the signature was refused
}

func (r *hookReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	var p struct {
		ID   string `json:"id"`
		Type string `json:"type"`
	}
	json.Unmarshal(body, &p)
	post := hookPost{id: p.ID, event: p.Type, code: http.StatusOK}
	if err := outhook.Verify(r.secret, req.Header.Get(outhook.SignatureHeader), body, time.Now(), 5*time.Minute); err != nil {
		post.bad, post.code = err.Error(), http.StatusBadRequest
	} else if req.Header.Get("Herald-Event-Id") != p.ID {
		post.bad, post.code = "event id header differs from the payload's", http.StatusBadRequest
	} else if len(r.answers) > 0 {
		post.code, r.answers = r.answers[0], r.answers[1:]
	}
	r.posts = append(r.posts, post)
	w.WriteHeader(post.code)
}

func (r *hookReceiver) seen() []hookPost {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]hookPost(nil), r.posts...)
}

// An admin registers a webhook in the browser (after allowing private
// targets, which the receiver on loopback needs); a subscription reaches
// the receiver signed, first answered 500 and retried, and the log in the
// browser shows both; the test button sends a test event.
func TestJourneyOutgoingWebhook(t *testing.T) {
	ctx := browsertest.New(t, 120*time.Second)
	h := e2e.Start(t, e2e.Options{Env: []string{"HERALD_WEBHOOK_POLL=200ms", "HERALD_WEBHOOK_BACKOFF=2s,2s,2s"}})
	recv := &hookReceiver{answers: []int{http.StatusInternalServerError}}
	srv := httptest.NewServer(recv)
	defer srv.Close()
	target := srv.URL + "/herald"
	shots := filepath.Join(os.TempDir(), "herald-screenshots")
	step, text := browsertest.Steps(t, ctx, shots)

	step("sign in",
		chromedp.Navigate(h.URL+"/login"),
		chromedp.SendKeys(chromedp.CSS(`input[name="email"]`), h.Admin),
		chromedp.SendKeys(chromedp.CSS(`input[name="password"]`), h.Password),
		chromedp.Click(chromedp.CSS(`button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`.mainnav`)),
	)
	register := []chromedp.Action[chromedp.Void]{
		chromedp.Navigate(h.URL + "/settings/webhooks"),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="webhook-form"]`)),
		chromedp.SendKeys(chromedp.CSS(`[data-testid="webhook-url"]`), target),
		chromedp.Click(chromedp.CSS(`[data-testid="event-subscribed"]`)),
		chromedp.Click(chromedp.CSS(`[data-testid="webhook-submit"]`)),
	}
	step("a loopback URL is refused", append(register, chromedp.WaitVisible(chromedp.CSS(`[aria-invalid="true"]`)))...)
	if got := text(`[data-testid="webhook-form"]`); !strings.Contains(got, "loopback address") || !strings.Contains(got, "allows private targets") {
		t.Errorf("refusal = %q; want it to name the loopback address and how to allow it", got)
	}
	step("allow private targets",
		chromedp.Click(chromedp.CSS(`[data-testid="allow-private"]`)),
		chromedp.Click(chromedp.CSS(`[data-testid="webhook-private-form"] button[type="submit"]`)),
		// The page after the redirect, not the ticked box before it.
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="flash"]`)),
	)
	if got := text(`[data-testid="flash"]`); !strings.Contains(got, "may now target loopback") {
		t.Fatalf("flash after allowing private targets = %q", got)
	}
	step("register the webhook", append(register, chromedp.WaitVisible(chromedp.CSS(`[data-testid="webhook-secret"]`)))...)
	secret, err := chromedp.Run(ctx, chromedp.Value(chromedp.CSS(`[data-testid="webhook-secret"]`)))
	if err != nil || !strings.HasPrefix(secret, "whsec_") {
		t.Fatalf("secret shown = %q, %v", secret, err)
	}
	recv.mu.Lock()
	recv.secret = secret
	recv.mu.Unlock()
	browsertest.Screenshot(t, ctx, shots, "webhook-created")

	// Someone subscribes: the receiver gets it signed, answers 500, and
	// gets it again after the backoff.
	h.List(t, "Webhook news", "ann@example.com")
	e2e.Eventually(t, 30*time.Second, "the subscription delivered after a retry", func() bool {
		p := recv.seen()
		return len(p) >= 2 && p[len(p)-1].code == http.StatusOK
	})
	posts := recv.seen()
	if len(posts) != 2 || posts[0].event != "subscribed" || posts[0].code != 500 || posts[1].id != posts[0].id || posts[0].bad != "" || posts[1].bad != "" {
		t.Fatalf("receiver saw %+v; want one subscribed event, answered 500 then 200, signed", posts)
	}

	// The receiver answers before the attempt is recorded: the log may
	// be a moment behind it.
	waitLog := func(want string) string {
		t.Helper()
		var log string
		e2e.Eventually(t, 10*time.Second, "the log to show "+want, func() bool {
			step("refresh the log", chromedp.Click(chromedp.CSS(`[data-testid="webhook-refresh"]`)),
				chromedp.WaitVisible(chromedp.CSS(`[data-testid="webhook-log"]`)))
			log = text(`[data-testid="webhook-log"]`)
			return strings.Contains(log, want)
		})
		return log
	}
	step("the webhook's page",
		chromedp.Navigate(h.URL+"/settings/webhooks"),
		chromedp.Click(chromedp.CSS(`[data-testid="webhooks"] td a`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="webhook-log"]`)),
	)
	log := waitLog("200 OK")
	if !strings.Contains(log, "HTTP 500") || !strings.Contains(log, "200 OK") || !strings.Contains(log, posts[0].id) {
		t.Errorf("delivery log = %q; want the 500 and the 200 of %s", log, posts[0].id)
	}
	browsertest.Screenshot(t, ctx, shots, "webhook-log")

	step("send a test event",
		chromedp.Click(chromedp.CSS(`[data-testid="webhook-test"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="flash"]`)),
	)
	e2e.Eventually(t, 20*time.Second, "the test event", func() bool {
		p := recv.seen()
		return len(p) == 3 && p[2].event == "test" && p[2].code == http.StatusOK
	})
	waitLog("test_")
	step("phone width",
		chromedp.EmulateViewport(390, 844),
		chromedp.Reload(),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="webhook-log"]`)),
	)
	browsertest.Screenshot(t, ctx, shots, "webhook-log-390px")
	if ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.documentElement.scrollWidth <= window.innerWidth + 1`)); err != nil || !ok {
		t.Errorf("the webhook page scrolls sideways at 390px (%v)", err)
	}
}
