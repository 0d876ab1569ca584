package web

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"

	"github.com/herald-mail/herald/internal/config"
	"github.com/herald-mail/herald/internal/testdb"
	"github.com/herald-mail/herald/mailer"
	"github.com/herald-mail/herald/models"
)

// BenchmarkCampaignProgressPoll measures the campaign page's progress poll
// (GET /campaigns/:id/progress, through HTTP, session and all) while a
// 200,000-recipient campaign is being materialised and sent by a real
// engine into the capture outbox on SQLite. It reports p50 and p99 latency;
// the goal is under 100 ms.
func BenchmarkCampaignProgressPoll(b *testing.B) {
	const n = 200_000
	ctx := context.Background()
	s := testdb.SQLite(b)
	now := time.Now().UTC()
	err := s.DB().Exec(`INSERT INTO subscribers (email, name, attributes, status, created_at, updated_at)
		WITH RECURSIVE seq(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < ?)
		SELECT 'user' || i || '@d' || (i % 97) || '.example', 'User ' || i, '{}', 'active', ?, ? FROM seq`, n, now, now).Error
	if err != nil {
		b.Fatal(err)
	}
	list, tmpl := composeFixture(b, s, 0)
	if err := s.DB().Exec(`INSERT INTO subscriptions (subscriber_id, list_id, status, created_at, updated_at)
		SELECT id, ?, 'confirmed', ?, ? FROM subscribers`, list, now, now).Error; err != nil {
		b.Fatal(err)
	}
	id := newCampaign(b, s, tmpl, []int64{list}, nil)

	cfg := &config.Config{RootURL: "http://herald.test", Secret: strings.Repeat("s", 32), Transport: "capture"}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	eng := mailer.New(mailer.Options{Logger: log, RootURL: cfg.RootURL, Secrets: []string{cfg.Secret}, NodeID: "bench"}, s)
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { eng.Run(runCtx); close(done) }()
	b.Cleanup(func() { stop(); <-done })
	hs := httptest.NewServer(New(cfg, s, eng, log))
	b.Cleanup(hs.Close)

	if _, err := s.CreateUser(ctx, "viewer@example.com", "", "correct horse battery", models.RoleViewer); err != nil {
		b.Fatal(err)
	}
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar}
	resp, err := hc.Get(hs.URL + "/login")
	if err != nil {
		b.Fatal(err)
	}
	doc, _ := goquery.NewDocumentFromReader(resp.Body)
	resp.Body.Close()
	tok, _ := doc.Find(`input[name="_csrf"]`).Attr("value")
	resp, err = hc.PostForm(hs.URL+"/login", url.Values{"_csrf": {tok}, "email": {"viewer@example.com"}, "password": {"correct horse battery"}})
	if err != nil || resp.StatusCode != 200 {
		b.Fatalf("login: %v %v", resp, err)
	}
	resp.Body.Close()

	if err := eng.StartCampaign(ctx, id); err != nil {
		b.Fatal(err)
	}
	// Let materialisation and sending get going.
	for deadline := time.Now().Add(30 * time.Second); ; {
		p, _ := s.CampaignProgress(ctx, id)
		if p.Sent > 2000 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	poll := hs.URL + fmt.Sprintf("/campaigns/%d/progress", id)
	var lat []time.Duration
	b.ResetTimer()
	for b.Loop() {
		t0 := time.Now()
		resp, err := hc.Get(poll)
		if err != nil {
			b.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		lat = append(lat, time.Since(t0))
		if resp.StatusCode != 200 || !strings.Contains(string(body), `data-testid="progress"`) {
			b.Fatalf("poll: %d %.200s", resp.StatusCode, body)
		}
	}
	b.StopTimer()
	// The same read-out without HTTP, session and rendering: what the
	// campaign's row and the engine's memory cost under the same load.
	var el []time.Duration
	for range 300 {
		t0 := time.Now()
		if _, err := eng.LiveProgress(ctx, id, 5); err != nil {
			b.Fatal(err)
		}
		el = append(el, time.Since(t0))
	}
	slices.Sort(el)
	slices.Sort(lat)
	p50, p99 := lat[len(lat)/2], lat[min(len(lat)-1, len(lat)*99/100)]
	b.ReportMetric(float64(p50.Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(p99.Microseconds())/1000, "p99-ms")
	pr, _ := s.CampaignProgress(ctx, id)
	b.ReportMetric(float64(el[len(el)*99/100].Microseconds())/1000, "engine-p99-ms")
	b.Logf("%d polls while sending: p50 %v, p99 %v (LiveProgress alone: p50 %v, p99 %v); campaign %s, %d of %d delivered so far",
		len(lat), p50, p99, el[len(el)/2], el[len(el)*99/100], pr.Status, pr.Sent, pr.Total())
	// p99 is at the mercy of the machine's other work (the engine sending
	// on the same cores, other processes), so only p50 is held to 100 ms and
	// p99 to a wide 1 s; the figures are reported either way.
	if p50 > 100*time.Millisecond || p99 > time.Second {
		b.Errorf("poll latency p50 %v, p99 %v: want p50 under 100ms", p50, p99)
	}
}
