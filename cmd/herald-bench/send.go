package main

import (
	"bufio"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/herald-mail/herald/mailer"
	"github.com/herald-mail/herald/models"
)

// runBenchSend creates N subscribers on SQLite (or, with -database-url,
// in a schema of its own on a PostgreSQL server, dropped afterwards) and
// sends them a
// personalised HTML campaign (5 tracked links, open pixel, RSA-2048 DKIM
// unless -dkim=false) through the whole pipeline to a loopback SMTP sink
// running in a child process, then prints throughput, Herald's CPU per
// message, peak RSS and the machine's RSA-2048 signing rate.
func runBenchSend(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("bench send", flag.ContinueOnError)
	fs.SetOutput(stdout)
	n := fs.Int("n", 10000, "recipients")
	useDKIM := fs.Bool("dkim", true, "sign with RSA-2048 DKIM")
	dbPath := fs.String("db", "", "new SQLite file (default: one in a temporary folder, removed afterwards)")
	pgURL := fs.String("database-url", "", "PostgreSQL server URL (postgres://…) to run on instead of SQLite, in a new schema dropped afterwards")
	conns := fs.Int("conns", 0, "connections to the sink (default: 4 per CPU)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the sending phase to this file")
	relay := fs.Bool("relay", false, "send through a local STARTTLS relay with serve's wiring (HERALD_RELAY), -conns connections (default 10), "+
		"over -domains recipient domains, then over one domain for comparison")
	domains := fs.Int("domains", 50, "recipient domains (with -relay)")
	rounds := fs.Int("rounds", 1, "with -relay: alternate the runs this many times and compare the best of each")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *relay {
		if *conns <= 0 {
			*conns = 10
		}
		return runBenchSendRelay(*n, *domains, *rounds, *useDKIM, *conns, stdout)
	}
	if *n < 1 {
		return errors.New("bench send: -n must be at least 1")
	}
	if *conns <= 0 {
		*conns = 4 * runtime.GOMAXPROCS(0)
	}
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "herald-bench-send-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	path := *dbPath
	if path == "" {
		path = filepath.Join(dir, "bench.db")
	}

	if *pgURL != "" {
		dsn, drop, err := benchSchema(ctx, *pgURL)
		if err != nil {
			return err
		}
		defer drop()
		path = dsn
	}

	sink, sinkAddr, err := startSendBenchSink()
	if err != nil {
		return err
	}
	defer killSendBenchSink(sink)

	s, err := models.Open(ctx, path)
	if err != nil {
		return err
	}
	defer s.Close()
	if _, err := s.Migrate(ctx); err != nil {
		return err
	}
	t0 := time.Now()
	cid, secret, err := sendBenchSetup(ctx, s, *n, *useDKIM, *conns, []string{"example.com", "example.net", "example.org", "mail.example", "post.example"})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "setup: %d subscribers in %v\n", *n, time.Since(t0).Round(time.Millisecond))
	// The setup's writes sit in the WAL and its garbage on the heap: move
	// the one into the database file (RESTART: the WAL file is kept and
	// rewritten from its start, as on a server that has been running) and
	// collect the other now, or the send would be billed for setup work.
	settle := "PRAGMA wal_checkpoint(RESTART)"
	if s.Dialect() == models.Postgres {
		// PostgreSQL's counterpart: fresh statistics for the planner and
		// the setup's pages written out.
		settle = "ANALYZE; CHECKPOINT"
	}
	if err := s.DB().WithContext(ctx).Exec(settle).Error; err != nil {
		return err
	}
	// The machine's speed drifts (shared hosts): the signing-only rate is
	// taken before the send and after it, and the send compared with
	// their mean.
	signBefore := sendBenchSignRate(2 * time.Second)
	runtime.GC()

	e, stop := sendBenchEngine(s, secret, sinkAddr)
	cancel := func() { stop() }

	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			cancel()
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			cancel()
			return err
		}
		defer pprof.StopCPUProfile()
	}
	cpu0, start := sendBenchCPU(), time.Now()
	if err := e.StartCampaign(ctx, cid); err != nil {
		cancel()
		return err
	}
	p, elapsed, cpu, err := sendBenchWait(ctx, s, cid, *n, cpu0, start, true)
	if err != nil {
		cancel()
		return err
	}
	if err := stop(); err != nil {
		return err
	}
	sinkCPU, sinkMsgs, err := stopSendBenchSink(sink)
	if err != nil {
		return err
	}
	if p.Sent != int64(*n) || sinkMsgs != int64(*n) {
		return fmt.Errorf("bench send: %d sent, sink received %d, want %d", p.Sent, sinkMsgs, *n)
	}
	rate := float64(*n) / elapsed.Seconds()
	perMsg := float64(cpu.Microseconds()) / 1000 / float64(*n)
	signAfter := sendBenchSignRate(2 * time.Second)
	signRate := (signBefore + signAfter) / 2
	fmt.Fprintf(stdout, "sent:            %d messages (%s, dkim=%v, %d connections) in %v\n", *n, s.Dialect(), *useDKIM, *conns, elapsed.Round(time.Millisecond))
	fmt.Fprintf(stdout, "throughput:      %.0f msg/s\n", rate)
	fmt.Fprintf(stdout, "herald cpu:      %.3f ms/message (%.2f cores busy)\n", perMsg, cpu.Seconds()/elapsed.Seconds())
	fmt.Fprintf(stdout, "sink cpu:        %.3f ms/message (child process, not counted above)\n", float64(sinkCPU.Microseconds())/1000/float64(*n))
	fmt.Fprintf(stdout, "peak rss:        %.1f MB\n", sendBenchPeakRSS())
	fmt.Fprintf(stdout, "rsa-2048 signs:  %.0f/s on %d cores (signing only; %.0f before the send, %.0f after)\n",
		signRate, runtime.GOMAXPROCS(0), signBefore, signAfter)
	if *useDKIM {
		fmt.Fprintf(stdout, "vs signing only: %.0f%%\n", 100*rate/signRate)
	}
	return nil
}

// sendBenchWait waits until the campaign is finished (or, unless
// finish, until n outcomes are written: an automation's step campaign
// never finishes) and returns its progress, the time from start to the
// last outcome written and the CPU used meanwhile (from cpu0); a CPU
// profile running stops with the clock.
func sendBenchWait(ctx context.Context, s *models.Store, cid int64, n int, cpu0 time.Duration, start time.Time, finish bool) (*models.CampaignProgress, time.Duration, time.Duration, error) {
	// The clock stops when the last outcome is in the database (first
	// message to last, state written); the engine notices that the
	// campaign is done on its next once-a-second check, which is not
	// sending time.
	var (
		p            *models.CampaignProgress
		elapsed, cpu time.Duration
		err          error
	)
	for wait := 50 * time.Millisecond; ; {
		// Each look is a query in this process, counted in Herald's CPU:
		// every 50 ms until the last twentieth, then every 5 ms so that
		// the clock stops within 5 ms of the last outcome.
		time.Sleep(wait)
		if p, err = s.CampaignProgress(ctx, cid); err != nil {
			return nil, 0, 0, err
		}
		if done := p.Sent + p.Bounced + p.Failed + p.Suppressed; done >= int64(n)*19/20 {
			wait = 5 * time.Millisecond
		}
		if elapsed == 0 && p.Sent+p.Bounced+p.Failed+p.Suppressed >= int64(n) {
			elapsed, cpu = time.Since(start), sendBenchCPU()-cpu0
			pprof.StopCPUProfile()
		}
		if p.Status == models.CampaignFinished || !finish && elapsed > 0 {
			break
		}
		if time.Since(start) > time.Hour {
			return nil, 0, 0, errors.New("bench send: not finished after an hour")
		}
	}
	return p, elapsed, cpu, nil
}

// sendBenchSetup seeds subscribers, the template, the sending domain and
// the campaign, and lifts the default domain rule's limits (the sink is
// one local destination).
func sendBenchSetup(ctx context.Context, s *models.Store, n int, useDKIM bool, conns int, domains []string) (int64, string, error) {
	l := &models.List{Name: "Bench", Optin: models.OptinSingle, Visibility: models.ListPrivate}
	if err := s.CreateList(ctx, l); err != nil {
		return 0, "", err
	}
	now := time.Now().UTC()
	for i := 0; i < n; i += 1000 {
		var sb strings.Builder
		args := make([]any, 0, 5000)
		sb.WriteString("INSERT INTO subscribers (email, name, attributes, status, created_at, updated_at) VALUES ")
		for k := i; k < min(n, i+1000); k++ {
			if k > i {
				sb.WriteByte(',')
			}
			sb.WriteString("(?, ?, ?, 'active', ?, ?)")
			args = append(args, fmt.Sprintf("reader%d@%s", k, domains[k%len(domains)]), fmt.Sprintf("Reader %d", k),
				fmt.Sprintf(`{"city":"City %d","plan":"%s","points":%d}`, k%97, []string{"free", "pro", "team"}[k%3], k%1000), now, now)
		}
		if err := s.DB().WithContext(ctx).Exec(sb.String(), args...).Error; err != nil {
			return 0, "", err
		}
	}
	if err := s.DB().WithContext(ctx).Exec(`INSERT INTO subscriptions (subscriber_id, list_id, status, created_at, updated_at)
		SELECT id, ?, 'confirmed', ?, ? FROM subscribers`, l.ID, now, now).Error; err != nil {
		return 0, "", err
	}
	if err := sendBenchOpen(ctx, s, conns); err != nil {
		return 0, "", err
	}
	secret := "bench-secret"
	var sdID *int64
	if useDKIM {
		sd, err := s.CreateSendingDomain(ctx, "bench.test", secret, models.SendingDomainOptions{})
		if err != nil {
			return 0, "", err
		}
		sdID = &sd.ID
	}
	tpl := &models.Template{Kind: models.TemplateCampaign, Name: "Bench newsletter", Subject: "{{.Subscriber.Name}}, your {{.Subscriber.Attributes.plan}} digest", HTML: sendBenchHTML}
	if err := s.CreateTemplate(ctx, tpl); err != nil {
		return 0, "", err
	}
	c := &models.Campaign{Name: "Bench", TemplateID: &tpl.ID, FromName: "Bench News", FromEmail: "news@bench.test",
		SendingDomainID: sdID, TrackOpens: true, TrackClicks: true}
	if err := s.CreateCampaign(ctx, c, []int64{l.ID}); err != nil {
		return 0, "", err
	}
	return c.ID, secret, nil
}

// sendBenchOpen lifts the default domain rule's limits (the sink is one
// local destination), leaving conns connections, and fills in the
// organisation a campaign's footer needs.
func sendBenchOpen(ctx context.Context, s *models.Store, conns int) error {
	rules, err := s.DomainRules(ctx)
	if err != nil {
		return err
	}
	for _, r := range rules {
		if r.IsDefault {
			r.PerSecond, r.PerMinute, r.PerHour, r.MaxConnections, r.MaxPerConnection = 0, 0, 0, conns, 0
			if err := s.UpdateDomainRule(ctx, &r); err != nil {
				return err
			}
		}
	}
	for _, k := range []string{models.SettingOrgName, models.SettingPostalAddress} {
		if err := s.SetSetting(ctx, k, map[string]string{models.SettingOrgName: "Bench Ltd",
			models.SettingPostalAddress: "1 Bench Street, Lyon"}[k]); err != nil {
			return err
		}
	}
	return nil
}

// sendBenchEngine starts the engine serve runs, with the send benchmark's
// options, delivering to the sink at sinkAddr; stop cancels it and
// returns what Run returned.
func sendBenchEngine(s *models.Store, secret, sinkAddr string) (e *mailer.Engine, stop func() error) {
	// Herald logs its per-attempt line as in production, into a JSON
	// handler, but discards the bytes.
	logger := slog.New(slog.NewJSONHandler(io.Discard, nil))
	e = mailer.New(mailer.Options{
		NodeID: "bench", Logger: logger, Secrets: []string{secret}, RootURL: "https://news.bench.test",
		Transport:   mailer.NewDirect(mailer.DirectOptions{MXOverride: sinkAddr, HELO: "out.bench.test"}),
		MaxInFlight: 4000, DestinationQueue: 2000, PollInterval: 50 * time.Millisecond,
	}, s)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	// On a server the engine is running when a campaign starts: its own
	// start (settings, rules, expired leases) is not sending time.
	time.Sleep(200 * time.Millisecond)
	return e, func() error { cancel(); return <-done }
}

// sendBenchHTML is a realistic newsletter: about 5 KB, personalised, with
// five tracked links.
var sendBenchHTML = `<!doctype html>
<html><head><meta charset="utf-8"><title>Digest</title>
<style>body{font-family:Helvetica,Arial,sans-serif;color:#222;background:#f4f4f4}.card{background:#fff;padding:24px;margin:16px auto;max-width:600px}h1{font-size:22px}a.btn{display:inline-block;padding:10px 18px;background:#1a73e8;color:#fff;text-decoration:none;border-radius:4px}</style>
</head><body>
<div class="card">
<h1>Hello {{.Subscriber.Name}},</h1>
<p>Here is what happened this week in {{.Subscriber.Attributes.city}}. As a {{.Subscriber.Attributes.plan}} member you have {{.Subscriber.Attributes.points}} points to spend before the end of the month.</p>
<p><a class="btn" href="https://shop.example.com/rewards?src=digest">Spend your points</a></p>
` + strings.Repeat(`<h2>Story of the week</h2>
<p>Lorem ipsum dolor sit amet, consectetur adipiscing elit. Integer vitae nisl id lacus faucibus tincidunt. Curabitur posuere, neque vitae tempor dictum, justo lorem facilisis nibh, at gravida risus nulla sed velit. Morbi non purus at lorem varius tempor.</p>
`, 4) + `<ul>
<li><a href="https://blog.example.com/2026/spring-collection">The spring collection is here</a></li>
<li><a href="https://blog.example.com/2026/behind-the-scenes">Behind the scenes at the workshop</a></li>
<li><a href="https://events.example.com/lyon?utm_source=newsletter">Meet us in Lyon</a></li>
</ul>
<p><a href="https://help.example.com/">Questions? Our help centre is open every day.</a></p>
<p style="font-size:12px;color:#777">{{.Org.Name}} · {{.Org.PostalAddress}}<br>
<a href="{{.UnsubscribeURL}}">Unsubscribe</a> · <a href="{{.PreferencesURL}}">Manage preferences</a></p>
</div></body></html>
`

// startSendBenchSink runs this binary again as the sink (see sinkCommand,
// or relaySinkCommand with its arguments) and returns its address.
func startSendBenchSink(args ...string) (*exec.Cmd, string, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, "", err
	}
	if len(args) == 0 {
		args = []string{sinkCommand}
	}
	cmd := exec.Command(exe, args...)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, "", err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, "", err
	}
	if err := cmd.Start(); err != nil {
		return nil, "", err
	}
	sendBenchSinkIO[cmd] = sinkIO{in: in, out: bufio.NewReader(out)}
	line, err := sendBenchSinkIO[cmd].out.ReadString('\n')
	if err != nil {
		cmd.Process.Kill()
		return nil, "", fmt.Errorf("bench send: sink did not start: %w", err)
	}
	return cmd, strings.TrimSpace(line), nil
}

type sinkIO struct {
	in  io.WriteCloser
	out *bufio.Reader
}

var sendBenchSinkIO = map[*exec.Cmd]sinkIO{}

// killSendBenchSink kills the sink unless stopSendBenchSink has ended
// it: deferred, it cleans up after a benchmark that failed midway.
func killSendBenchSink(cmd *exec.Cmd) {
	if cmd.ProcessState == nil {
		cmd.Process.Kill()
		cmd.Wait()
	}
}

// stopSendBenchSink closes the sink's stdin, reads how many messages it
// received (and the other figures it prints on that line, into more) and
// returns its CPU time (from the child's rusage).
func stopSendBenchSink(cmd *exec.Cmd, more ...*int64) (time.Duration, int64, error) {
	io := sendBenchSinkIO[cmd]
	io.in.Close()
	var count int64
	line, _ := io.out.ReadString('\n')
	fields := strings.Fields(line)
	for i, p := range append([]*int64{&count}, more...) {
		if i < len(fields) {
			fmt.Sscanf(fields[i], "%d", p)
		}
	}
	if err := cmd.Wait(); err != nil {
		return 0, 0, fmt.Errorf("bench send: sink: %w", err)
	}
	ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		return 0, count, nil
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), count, nil
}

// sendBenchCPU is this process's user+system CPU time so far.
func sendBenchCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// sendBenchPeakRSS is this process's peak resident set in MB.
func sendBenchPeakRSS() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Maxrss) / 1024 // Linux reports KiB
}

// sendBenchSignRate measures RSA-2048 PKCS#1 v1.5 SHA-256 signatures per
// second with one goroutine per CPU.
func sendBenchSignRate(d time.Duration) float64 {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return 0
	}
	sum := sha256.Sum256([]byte("herald"))
	var (
		count atomic.Int64
		wg    sync.WaitGroup
	)
	stop := time.Now().Add(d)
	start := time.Now()
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(stop) {
				if _, err := rsa.SignPKCS1v15(nil, key, crypto.SHA256, sum[:]); err == nil {
					count.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	return float64(count.Load()) / time.Since(start).Seconds()
}
