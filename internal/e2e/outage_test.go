package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/herald-mail/herald/internal/e2e"
	"github.com/herald-mail/herald/models"
)

// The private server stops and starts: connections are refused while it
// is stopped, and a store keeps working across the restart.
func TestPostgresStopStart(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a PostgreSQL server")
	}
	pg := e2e.StartPostgres(t)
	ctx := context.Background()
	s, err := models.Open(ctx, pg.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	pg.Stop()
	if err := s.Ping(ctx); err == nil {
		t.Fatal("Ping() = nil with the server stopped")
	}
	pg.Start()
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping() after Start = %v", err)
	}
}

// The outages run beside each other and beside other tests (make test
// runs them beside the web package): each has a PostgreSQL server,
// binary and receiver of its own, and what they check (nobody missing or
// served twice, nothing deferred, the answers during the outage) does not
// depend on the machine's speed. They spend most of their time waiting
// for the outage to end.

func TestPostgresOutage60s(t *testing.T) {
	t.Parallel()
	testPostgresOutage(t, 60*time.Second)
}

func TestPostgresOutage5m(t *testing.T) {
	t.Parallel()
	testPostgresOutage(t, 5*time.Minute)
}

// testPostgresOutage stops Herald's PostgreSQL server for outage in the
// middle of a campaign (direct delivery to a receiver on 127.0.0.2, 40
// messages a second) and checks what the issue asks: /readyz answers 503
// during the outage and 200 after; the API answers 503 with a JSON error,
// not 401; a dashboard page answers 503 with the readable page; and once
// the database is back the campaign completes with every recipient served
// once, no delivery deferred or attempted twice because of the outage.
func testPostgresOutage(t *testing.T, outage time.Duration) {
	if testing.Short() {
		t.Skip("starts the built binary and a PostgreSQL server")
	}
	const n = 3000
	begin := time.Now()
	at := func() string { return time.Since(begin).Round(100 * time.Millisecond).String() }
	dns := e2e.StartDNS(t)
	port := e2e.FreePort(t)
	rcv := e2e.StartReceiver(t, "127.0.0.2", port, e2e.ReceiverOptions{})
	dns.Provider(t, "mx.outage.test", "127.0.0.2", "outage.test")
	pg := e2e.StartPostgres(t)
	h := e2e.Start(t, e2e.Options{DatabaseURL: pg.URL(), Transport: "direct", DNS: dns, MXPort: port})
	rule(t, h, url.Values{"name": {"outage"}, "domains": {"outage.test"}, "per_second": {"40"},
		"max_connections": {"4"}, "backoff_min_seconds": {"60"}, "backoff_max_seconds": {"600"}, "position": {"50"}})
	h.SendingDomain(t, dns, "news.example")
	list := h.Audience(t, n, "outage.test")
	id := h.NewCampaign(t, e2e.Campaign{FromEmail: "hello@news.example", Lists: []int64{list}})
	d := h.Dashboard(t)
	h.StartCampaign(t, id)

	e2e.Eventually(t, 60*time.Second, "a fifth of the campaign at the receiver", func() bool { return rcv.Count() >= n/5 })
	before := rcv.Count()
	pg.Stop()
	stopped := time.Now()
	t.Logf("%s: PostgreSQL stopped with %d of %d messages at the receiver", at(), before, n)

	e2e.Eventually(t, 30*time.Second, "/readyz to answer 503 naming the database and the mailer", func() bool {
		code, r := readyz(t, h)
		return code == http.StatusServiceUnavailable && !r.Database.OK && !r.Mailer.OK
	})
	t.Logf("%s: /readyz answers 503 (%v after the stop)", at(), time.Since(stopped).Round(100*time.Millisecond))
	code, body := rawAPI(t, h, "GET", fmt.Sprintf("/campaigns/%d", id))
	var apiErr struct {
		Error struct{ Code string } `json:"error"`
	}
	if json.Unmarshal([]byte(body), &apiErr); code != http.StatusServiceUnavailable || apiErr.Error.Code != "database_unreachable" {
		t.Errorf("API during the outage = %d %s, want 503 with error code database_unreachable", code, body)
	}
	if code, page := d.Get(t, "/"); code != http.StatusServiceUnavailable || !strings.Contains(page, `data-testid="db-unavailable"`) ||
		!strings.Contains(page, "recover by itself") {
		t.Errorf("dashboard during the outage = %d, want 503 with the database-unreachable page:\n%s", code, page)
	}
	time.Sleep(time.Until(stopped.Add(outage)))
	during := rcv.Count()
	pg.Start()
	restarted := time.Now()
	t.Logf("%s: PostgreSQL started after %v; %d messages reached the receiver during the outage", at(),
		restarted.Sub(stopped).Round(100*time.Millisecond), during-before)

	e2e.Eventually(t, 60*time.Second, "/readyz to answer 200", func() bool {
		code, _ := readyz(t, h)
		return code == http.StatusOK
	})
	t.Logf("%s: /readyz answers 200 (%v after the start)", at(), time.Since(restarted).Round(100*time.Millisecond))
	st := h.WaitCampaign(t, id, 10*time.Minute, "finished")
	t.Logf("%s: campaign finished, counters %v", at(), st.Counters)
	time.Sleep(2 * time.Second) // a late duplicate would arrive by now

	got := map[string]int{}
	for _, m := range rcv.Messages() {
		for _, to := range m.To {
			got[strings.ToLower(to)]++
		}
	}
	dups := 0
	for _, c := range got {
		dups += c - 1
	}
	var retried []struct {
		Email    string
		Status   string
		Attempts int
		LastText string
	}
	if err := h.Store(t).DB().Raw(`SELECT email, status, attempts, COALESCE(last_text, '') AS last_text FROM deliveries
		WHERE campaign_id = ? AND (status <> 'sent' OR attempts <> 1)`, id).Scan(&retried).Error; err != nil {
		t.Fatal(err)
	}
	t.Logf("receiver: %d messages, %d recipients of %d, %d missing, %d duplicates; %d deliveries not sent at the first attempt",
		rcv.Count(), len(got), n, n-len(got), dups, len(retried))
	if len(got) != n {
		t.Errorf("%d of %d recipients got the campaign, want all", len(got), n)
	}
	if dups != 0 {
		t.Errorf("%d duplicates at the receiver, want 0", dups)
	}
	if len(retried) > 0 {
		t.Errorf("%d deliveries were deferred or retried, e.g. %+v; want none (the outage is no delivery outcome)", len(retried), retried[0])
	}
	if sent := st.Counters["sent"]; sent != n {
		t.Errorf("counters.sent = %d, want %d", sent, n)
	}
}

// readiness is /readyz's body, as far as the tests read it.
type readiness struct {
	Ready    bool `json:"ready"`
	Database struct {
		OK bool `json:"ok"`
	} `json:"database"`
	Mailer struct {
		OK bool `json:"ok"`
	} `json:"mailer"`
}

func readyz(t *testing.T, h *e2e.Herald) (int, readiness) {
	t.Helper()
	resp, err := http.Get(h.URL + "/readyz")
	if err != nil {
		t.Fatalf("GET /readyz: %v", err)
	}
	defer resp.Body.Close()
	var r readiness
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("/readyz = %d %q: %v", resp.StatusCode, b, err)
	}
	return resp.StatusCode, r
}

// rawAPI calls the API with the admin's token and returns the status and
// body as they came, whatever the status.
func rawAPI(t *testing.T, h *e2e.Herald, method, path string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, h.URL+"/api/v1"+path, nil)
	req.Header.Set("Authorization", "Bearer "+h.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
