package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/herald-mail/herald/internal/token"
	"github.com/herald-mail/herald/models"
	"github.com/herald-mail/herald/web"
)

// runBenchTrack measures the open and click endpoints: it serves the
// tracker over loopback HTTP on a new SQLite database holding one sent
// campaign, drives it with many keep-alive connections for a fixed time,
// then closes the tracker and checks that every answered request left
// exactly one event.
func runBenchTrack(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("bench track", flag.ContinueOnError)
	fs.SetOutput(stdout)
	n := fs.Int("n", 100_000, "deliveries in the campaign")
	nLinks := fs.Int("links", 10, "tracked links in the campaign")
	conns := fs.Int("c", 96, "concurrent keep-alive connections")
	dur := fs.Duration("d", 10*time.Second, "how long to send requests")
	clicks := fs.Float64("clicks", 0.5, "share of requests that are clicks (the rest are opens)")
	dbPath := fs.String("db", "", "new SQLite file (default: one in a temporary folder, removed afterwards)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *n < 1 || *nLinks < 1 || *conns < 1 {
		return errors.New("bench track: -n, -links and -c must be at least 1")
	}
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "herald-bench-track-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	path := *dbPath
	if path == "" {
		path = filepath.Join(dir, "bench.db")
	} else if _, err := os.Stat(path); err == nil {
		return fmt.Errorf("bench track: %s exists; give the path of a new file", path)
	}
	store, err := models.Open(ctx, path)
	if err != nil {
		return err
	}
	defer store.Close()
	if _, err := store.Migrate(ctx); err != nil {
		return err
	}
	campaign, deliveries, links, err := benchTrackFixture(ctx, store, *n, *nLinks)
	if err != nil {
		return err
	}

	keys := token.NewKeyring("bench-track-secret")
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	tr := web.NewTracking(store, keys, log, web.TrackingOptions{})
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	// The middleware the real server puts in front of every route.
	e.Use(middleware.RequestID(), middleware.Recover(), middleware.SecureWithConfig(middleware.SecureConfig{
		XSSProtection: "0", ContentTypeNosniff: "nosniff", XFrameOptions: "SAMEORIGIN", ReferrerPolicy: "same-origin",
	}))
	tr.Routes(e)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: e, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	base := "http://" + ln.Addr().String()

	// URLs are signed up front so the client spends its time on HTTP.
	urls := make([]string, min(*n, 50_000))
	isClick := make([]bool, len(urls))
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range urls {
		d := deliveries[rng.IntN(len(deliveries))]
		if rng.Float64() < *clicks {
			urls[i] = base + "/t/c/" + keys.Sign(token.Click, d, links[rng.IntN(len(links))])
			isClick[i] = true
		} else {
			urls[i] = base + "/t/o/" + keys.Sign(token.Open, d)
		}
	}
	fmt.Fprintf(stdout, "campaign %d: %d deliveries, %d links; %d connections for %s\n", campaign, *n, *nLinks, *conns, *dur)

	hc := &http.Client{
		Transport:     &http.Transport{MaxIdleConns: *conns, MaxIdleConnsPerHost: *conns, MaxConnsPerHost: *conns, DisableCompression: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	type result struct {
		lat           []time.Duration
		opens, clicks int64
		failed        int64
		firstErr      error
	}
	results := make([]result, *conns)
	stop := time.Now().Add(*dur)
	start := time.Now()
	var wg sync.WaitGroup
	for w := range *conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := &results[w]
			r.lat = make([]time.Duration, 0, 1<<14)
			i := w * 7919
			for time.Now().Before(stop) {
				k := i % len(urls)
				i++
				req, _ := http.NewRequest("GET", urls[k], nil)
				req.Header.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) herald-bench")
				t0 := time.Now()
				resp, err := hc.Do(req)
				if err != nil {
					r.failed++
					if r.firstErr == nil {
						r.firstErr = err
					}
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				r.lat = append(r.lat, time.Since(t0))
				switch {
				case isClick[k] && resp.StatusCode == http.StatusFound:
					r.clicks++
				case !isClick[k] && resp.StatusCode == http.StatusOK:
					r.opens++
				default:
					r.failed++
					if r.firstErr == nil {
						r.firstErr = fmt.Errorf("%s: status %d", urls[k], resp.StatusCode)
					}
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)

	// A graceful stop: the HTTP server first, then the tracker's buffer.
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return err
	}
	closeStart := time.Now()
	if err := tr.Close(sctx); err != nil {
		return fmt.Errorf("bench track: close: %w", err)
	}
	closeTook := time.Since(closeStart)

	var all []time.Duration
	var opens, clicksN, failed int64
	var firstErr error
	for _, r := range results {
		all = append(all, r.lat...)
		opens += r.opens
		clicksN += r.clicks
		failed += r.failed
		if firstErr == nil {
			firstErr = r.firstErr
		}
	}
	slices.Sort(all)
	pct := func(p float64) time.Duration {
		if len(all) == 0 {
			return 0
		}
		return all[min(len(all)-1, int(p*float64(len(all))))]
	}
	answered := opens + clicksN
	fmt.Fprintf(stdout, "requests: %d answered (%d opens, %d clicks), %d failed in %.1fs\n", answered, opens, clicksN, failed, elapsed.Seconds())
	fmt.Fprintf(stdout, "throughput: %.0f requests/s\n", float64(answered)/elapsed.Seconds())
	fmt.Fprintf(stdout, "latency: p50 %s, p99 %s, max %s\n", pct(0.50).Round(time.Microsecond), pct(0.99).Round(time.Microsecond), pct(1).Round(time.Microsecond))

	stats, err := store.CampaignEventStats(ctx, campaign)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "recorded: %d opens, %d clicks (final flush took %s)\n", stats.Opens.Total, stats.Clicks.Total, closeTook.Round(time.Millisecond))
	if firstErr != nil {
		fmt.Fprintf(stdout, "first failure: %v\n", firstErr)
	}
	if stats.Opens.Total != opens || stats.Clicks.Total != clicksN {
		return fmt.Errorf("bench track: %d opens and %d clicks answered but %d and %d recorded", opens, clicksN, stats.Opens.Total, stats.Clicks.Total)
	}
	fmt.Fprintln(stdout, "every answered request was recorded")
	return nil
}

// benchTrackFixture stores a running campaign with n deliveries sent an hour
// ago and its links, and returns their ids.
func benchTrackFixture(ctx context.Context, store *models.Store, n, nLinks int) (int64, []int64, []int64, error) {
	c := &models.Campaign{Name: "Bench", FromEmail: "bench@example.com", TrackOpens: true, TrackClicks: true, UTM: true}
	if err := store.CreateCampaign(ctx, c, nil); err != nil {
		return 0, nil, nil, err
	}
	sent := time.Now().UTC().Add(-time.Hour)
	err := store.DB().Exec(`WITH RECURSIVE seq(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM seq WHERE x < ?)
		INSERT INTO deliveries (campaign_id, domain, status, next_attempt_at, sent_at, created_at)
		SELECT ?, 'example.com', 'sent', ?, ?, ? FROM seq`, n, c.ID, sent, sent, sent).Error
	if err != nil {
		return 0, nil, nil, fmt.Errorf("bench track: deliveries: %w", err)
	}
	var ids []int64
	if err := store.DB().Raw("SELECT id FROM deliveries WHERE campaign_id = ? ORDER BY id", c.ID).Scan(&ids).Error; err != nil {
		return 0, nil, nil, err
	}
	urls := make([]string, nLinks)
	for i := range urls {
		urls[i] = fmt.Sprintf("https://shop.example/p/%d?ref=mail#top", i)
	}
	links, err := store.EnsureLinks(ctx, c.ID, urls)
	if err != nil {
		return 0, nil, nil, err
	}
	return c.ID, ids, links, nil
}
