package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/herald-mail/herald/internal/outhook"
)

// A capture campaign to three people gives each a signed sent and a
// delivered event, once each, fed from the deliveries the engine
// recorded (the send path itself writes nothing for webhooks).
func TestWebhookSentEvents(t *testing.T) {
	t.Parallel() // functional: no rate or clock is measured, so it may share the machine
	h := Start(t, Options{Env: []string{"HERALD_WEBHOOK_POLL=200ms"}})
	var mu sync.Mutex
	secret := ""
	got := map[string]int{}
	var bad []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		if err := outhook.Verify(secret, r.Header.Get(outhook.SignatureHeader), body, time.Now(), 5*time.Minute); err != nil {
			bad = append(bad, err.Error())
			w.WriteHeader(400)
			return
		}
		var p struct {
			ID, Type string
			Data     struct{ Email string }
		}
		json.Unmarshal(body, &p)
		got[p.Type+" "+p.Data.Email]++
	}))
	defer srv.Close()

	d := h.Dashboard(t)
	if code, body := d.Post(t, "/settings/webhooks/private", url.Values{"allow_private": {"on"}}); code != http.StatusSeeOther {
		t.Fatalf("allow private targets = %d: %s", code, body)
	}
	code, body := d.Post(t, "/settings/webhooks", url.Values{"url": {srv.URL}, "events": {"sent", "delivered"}})
	m := regexp.MustCompile(`value="(whsec_[0-9a-f]+)"`).FindStringSubmatch(body)
	if code != http.StatusOK || m == nil {
		t.Fatalf("register webhook = %d, no secret in the page", code)
	}
	mu.Lock()
	secret = m[1]
	mu.Unlock()

	emails := []string{"a@example.com", "b@example.com", "c@example.com"}
	list := h.List(t, "Sent hooks", emails...)
	c := h.NewCampaign(t, Campaign{FromEmail: "hello@news.example", Lists: []int64{list}})
	h.StartCampaign(t, c)
	h.WaitCampaign(t, c, time.Minute, "finished")
	Eventually(t, 30*time.Second, "six sent/delivered events", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) == 6
	})
	time.Sleep(time.Second) // a repeat would arrive now
	mu.Lock()
	defer mu.Unlock()
	var keys []string
	for k, n := range got {
		keys = append(keys, k)
		if n != 1 {
			t.Errorf("%s received %d times, want once", k, n)
		}
	}
	sort.Strings(keys)
	want := []string{"delivered a@example.com", "delivered b@example.com", "delivered c@example.com", "sent a@example.com", "sent b@example.com", "sent c@example.com"}
	if len(bad) != 0 || len(keys) != 6 || keys[0] != want[0] || keys[5] != want[5] {
		t.Errorf("received %v (bad signatures %v), want %v", keys, bad, want)
	}
}
