package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"sync"
	"syscall"
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
	batch := fs.Int("batch", 0, "events the tracker writes in one transaction (0: its default)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the load phase to this file")
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
	tr := web.NewTracking(store, keys, log, web.TrackingOptions{BatchSize: *batch})
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	// The middleware the real server puts in front of every route.
	e.Use(middleware.RequestID(), middleware.Recover(), middleware.SecureWithConfig(middleware.SecureConfig{
		XSSProtection: "0", ContentTypeNosniff: "nosniff", XFrameOptions: "SAMEORIGIN", ReferrerPolicy: "same-origin",
	}))
	web.MountTracking(e, tr)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: e, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)

	// Requests are signed up front; the load client runs in a child
	// process (so its CPU is measured apart from the server's) and speaks
	// HTTP/1.1 over raw keep-alive connections, leaving the two cores to
	// the server rather than to net/http's client machinery.
	job := trackClientJob{Host: ln.Addr().String(), Conns: *conns, Duration: *dur}
	rng := rand.New(rand.NewPCG(1, 2))
	for range min(*n, 50_000) {
		d := deliveries[rng.IntN(len(deliveries))]
		if rng.Float64() < *clicks {
			job.Paths = append(job.Paths, "/t/c/"+keys.Sign(token.CampaignClick, d, links[rng.IntN(len(links))], campaign))
			job.Clicks = append(job.Clicks, true)
		} else {
			job.Paths = append(job.Paths, "/t/o/"+keys.Sign(token.Open, d))
			job.Clicks = append(job.Clicks, false)
		}
	}
	fmt.Fprintf(stdout, "campaign %d: %d deliveries, %d links; %d connections for %s\n", campaign, *n, *nLinks, *conns, *dur)

	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	cpu0 := sendBenchCPU()
	res, clientCPU, err := runTrackClientProcess(job)
	if err != nil {
		return err
	}
	cpu := sendBenchCPU() - cpu0
	pprof.StopCPUProfile()

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

	answered := res.Opens + res.Clicks
	elapsed := time.Duration(res.Elapsed)
	fmt.Fprintf(stdout, "requests: %d answered (%d opens, %d clicks), %d failed in %.1fs\n", answered, res.Opens, res.Clicks, res.Failed, elapsed.Seconds())
	fmt.Fprintf(stdout, "throughput: %.0f requests/s\n", float64(answered)/elapsed.Seconds())
	per := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(max(answered, 1)) }
	fmt.Fprintf(stdout, "cpu: server %.1f µs a request, load client %.1f µs (child process)\n", per(cpu), per(clientCPU))
	fmt.Fprintf(stdout, "latency: p50 %s, p99 %s, max %s\n", time.Duration(res.P50).Round(time.Microsecond),
		time.Duration(res.P99).Round(time.Microsecond), time.Duration(res.Max).Round(time.Microsecond))

	stats, err := store.CampaignEventStats(ctx, campaign)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "recorded: %d opens, %d clicks (final flush took %s)\n", stats.Opens.Total, stats.Clicks.Total, closeTook.Round(time.Millisecond))
	if res.FirstErr != "" {
		fmt.Fprintf(stdout, "first failure: %s\n", res.FirstErr)
	}
	if stats.Opens.Total != res.Opens || stats.Clicks.Total != res.Clicks {
		return fmt.Errorf("bench track: %d opens and %d clicks answered but %d and %d recorded", res.Opens, res.Clicks, stats.Opens.Total, stats.Clicks.Total)
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

// runTrackClientJob is the load client's process (see trackClientCommand):
// it reads its job from stdin as JSON and writes its result to stdout.
func runTrackClientJob(stdin io.Reader, stdout io.Writer) error {
	var job trackClientJob
	if err := json.NewDecoder(stdin).Decode(&job); err != nil {
		return fmt.Errorf("track client: %w", err)
	}
	return json.NewEncoder(stdout).Encode(runTrackClient(job))
}

// trackClientJob is what the load client is to do.
type trackClientJob struct {
	Host     string
	Conns    int
	Duration time.Duration
	Paths    []string
	Clicks   []bool // Paths[i] is a click (expects 302), else an open (200)
}

// trackClientResult is what it saw; durations in nanoseconds.
type trackClientResult struct {
	Opens, Clicks, Failed int64
	FirstErr              string
	Elapsed               int64
	P50, P99, Max         int64
}

// runTrackClientProcess runs the load client in a child process and
// returns its result and CPU time.
func runTrackClientProcess(job trackClientJob) (*trackClientResult, time.Duration, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, 0, err
	}
	in, err := json.Marshal(job)
	if err != nil {
		return nil, 0, err
	}
	cmd := exec.Command(exe, trackClientCommand)
	cmd.Stdin, cmd.Stderr = bytes.NewReader(in), os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, 0, fmt.Errorf("bench track: load client: %w", err)
	}
	var res trackClientResult
	if err := json.Unmarshal(out, &res); err != nil {
		return nil, 0, fmt.Errorf("bench track: load client: %w", err)
	}
	var cpu time.Duration
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	return &res, cpu, nil
}

// runTrackClient drives job.Conns keep-alive connections for job.Duration.
func runTrackClient(job trackClientJob) trackClientResult {
	reqs := make([][]byte, len(job.Paths))
	for i, p := range job.Paths {
		reqs[i] = []byte("GET " + p + " HTTP/1.1\r\nHost: " + job.Host + "\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64) herald-bench\r\n\r\n")
	}
	type result struct {
		lat           []time.Duration
		opens, clicks int64
		failed        int64
		firstErr      error
	}
	results := make([]result, job.Conns)
	stop := time.Now().Add(job.Duration)
	start := time.Now()
	var wg sync.WaitGroup
	for w := range job.Conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := &results[w]
			r.lat = make([]time.Duration, 0, 1<<14)
			fail := func(err error) {
				r.failed++
				if r.firstErr == nil {
					r.firstErr = err
				}
			}
			var conn net.Conn
			var br *bufio.Reader
			i := w * 7919
			for time.Now().Before(stop) {
				if conn == nil {
					c, err := net.Dial("tcp", job.Host)
					if err != nil {
						fail(err)
						time.Sleep(10 * time.Millisecond)
						continue
					}
					conn, br = c, bufio.NewReaderSize(c, 4096)
				}
				k := i % len(reqs)
				i++
				t0 := time.Now()
				status, err := benchTrackDo(conn, br, reqs[k])
				if err != nil {
					fail(err)
					conn.Close()
					conn = nil
					continue
				}
				r.lat = append(r.lat, time.Since(t0))
				switch {
				case job.Clicks[k] && status == http.StatusFound:
					r.clicks++
				case !job.Clicks[k] && status == http.StatusOK:
					r.opens++
				default:
					fail(fmt.Errorf("%s: status %d", job.Paths[k], status))
				}
			}
			if conn != nil {
				conn.Close()
			}
		}()
	}
	wg.Wait()
	out := trackClientResult{Elapsed: int64(time.Since(start))}
	var all []time.Duration
	for _, r := range results {
		all = append(all, r.lat...)
		out.Opens += r.opens
		out.Clicks += r.clicks
		out.Failed += r.failed
		if out.FirstErr == "" && r.firstErr != nil {
			out.FirstErr = r.firstErr.Error()
		}
	}
	slices.Sort(all)
	pct := func(p float64) int64 {
		if len(all) == 0 {
			return 0
		}
		return int64(all[min(len(all)-1, int(p*float64(len(all))))])
	}
	out.P50, out.P99, out.Max = pct(0.50), pct(0.99), pct(1)
	return out
}

// benchTrackDo writes one request on a keep-alive connection and reads the
// answer: the status code, and the body (Content-Length framed) discarded.
func benchTrackDo(conn net.Conn, br *bufio.Reader, req []byte) (int, error) {
	if _, err := conn.Write(req); err != nil {
		return 0, err
	}
	line, err := br.ReadSlice('\n')
	if err != nil {
		return 0, err
	}
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.1 ")) {
		return 0, fmt.Errorf("bad status line %q", line)
	}
	status, err := strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, fmt.Errorf("bad status line %q", line)
	}
	length := 0
	for {
		line, err = br.ReadSlice('\n')
		if err != nil {
			return 0, err
		}
		if len(line) <= 2 {
			break
		}
		if name, value, ok := bytes.Cut(line, []byte(":")); ok && bytes.EqualFold(name, []byte("Content-Length")) {
			if length, err = strconv.Atoi(string(bytes.TrimSpace(value))); err != nil {
				return 0, fmt.Errorf("bad Content-Length %q", value)
			}
		}
	}
	if _, err := br.Discard(length); err != nil {
		return 0, err
	}
	return status, nil
}
