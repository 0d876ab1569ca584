package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/herald-mail/herald/internal/config"
	"github.com/herald-mail/herald/mailer"
	"github.com/herald-mail/herald/models"
)

// runBenchSendRelay sends the bench campaign through a local submission
// relay (a child process: go-smtp, STARTTLS with a certificate from a
// throwaway CA that this process trusts through SSL_CERT_FILE, AUTH PLAIN)
// with the engine `herald serve` builds (mailer.FromConfig, HERALD_RELAY
// with ?connections=conns): over the given number of recipient domains,
// then over one, and prints both rates and their ratio. With a pool shared
// by every domain, many domains should go as fast as one. With rounds > 1
// the runs alternate that many times and the best of each is compared.
func runBenchSendRelay(n, domains, rounds int, useDKIM bool, conns int, stdout io.Writer) error {
	if domains < 1 {
		return fmt.Errorf("bench send: -domains must be at least 1")
	}
	dir, err := os.MkdirTemp("", "herald-bench-relay-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	caFile, certFile, keyFile, err := relaySinkCA(dir)
	if err != nil {
		return err
	}
	// As an operator would give a private CA to `herald serve`: before
	// anything in this process reads the system roots.
	os.Setenv("SSL_CERT_FILE", caFile)
	runs := []int{domains}
	if domains != 1 {
		runs = append(runs, 1)
	}
	// On a shared machine other load comes and goes: the runs alternate
	// (in turn first and second, so a drift favours neither), and each
	// count of domains keeps its best round.
	best := make([]float64, len(runs))
	for round := range max(rounds, 1) {
		for k := range runs {
			i := k
			if round%2 == 1 {
				i = len(runs) - 1 - k
			}
			d := runs[i]
			db := filepath.Join(dir, fmt.Sprintf("bench-%d-%d.db", d, round))
			rate, err := sendBenchRelayRun(n, d, useDKIM, conns, certFile, keyFile, db, stdout)
			if err != nil {
				return err
			}
			best[i] = max(best[i], rate)
		}
	}
	if len(best) == 2 {
		fmt.Fprintf(stdout, "relay, %d domains vs one: %.0f vs %.0f msg/s (best of %d) = %.0f%%\n", domains, best[0], best[1], max(rounds, 1), 100*best[0]/best[1])
	}
	return nil
}

// sendBenchRelayRun is one run of the relay benchmark on a new database,
// with a relay of its own; it returns messages per second.
func sendBenchRelayRun(n, domains int, useDKIM bool, conns int, certFile, keyFile, dbPath string, stdout io.Writer) (float64, error) {
	ctx := context.Background()
	sink, addr, err := startSendBenchSink(relaySinkCommand, certFile, keyFile)
	if err != nil {
		return 0, err
	}
	defer killSendBenchSink(sink)
	s, err := models.Open(ctx, dbPath)
	if err != nil {
		return 0, err
	}
	defer s.Close()
	if _, err := s.Migrate(ctx); err != nil {
		return 0, err
	}
	names := make([]string, domains)
	for i := range names {
		names[i] = fmt.Sprintf("d%02d.bench.example", i)
	}
	cid, secret, err := sendBenchSetup(ctx, s, n, useDKIM, conns, names)
	if err != nil {
		return 0, err
	}
	if err := s.DB().WithContext(ctx).Exec("PRAGMA wal_checkpoint(RESTART)").Error; err != nil {
		return 0, err
	}
	runtime.GC()

	cfg := &config.Config{Transport: "relay", NodeID: "bench", Secret: secret, RootURL: "https://news.bench.test",
		Relay: fmt.Sprintf("smtp://%s:%s@%s?connections=%d", relaySinkUser, relaySinkPass, addr, conns)}
	e, err := mailer.FromConfig(cfg, s, slog.New(slog.NewJSONHandler(io.Discard, nil)))
	if err != nil {
		return 0, err
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- e.Run(runCtx) }()
	time.Sleep(200 * time.Millisecond)
	cpu0, start := sendBenchCPU(), time.Now()
	if err := e.StartCampaign(ctx, cid); err != nil {
		return 0, err
	}
	p, elapsed, cpu, err := sendBenchWait(ctx, s, cid, n, cpu0, start, true)
	if err != nil {
		return 0, err
	}
	cancel()
	if err := <-done; err != nil {
		return 0, err
	}
	var seenDomains, relayConns int64
	sinkCPU, msgs, err := stopSendBenchSink(sink, &seenDomains, &relayConns)
	if err != nil {
		return 0, err
	}
	if p.Sent != int64(n) || msgs != int64(n) {
		return 0, fmt.Errorf("bench send: %d sent, relay received %d, want %d", p.Sent, msgs, n)
	}
	rate := float64(n) / elapsed.Seconds()
	fmt.Fprintf(stdout, "relay:           %d messages to %d domain(s) (dkim=%v, connections=%d) in %v\n", n, seenDomains, useDKIM, conns, elapsed.Round(time.Millisecond))
	fmt.Fprintf(stdout, "throughput:      %.0f msg/s\n", rate)
	fmt.Fprintf(stdout, "herald cpu:      %.3f ms/message (%.2f cores busy)\n", float64(cpu.Microseconds())/1000/float64(n), cpu.Seconds()/elapsed.Seconds())
	fmt.Fprintf(stdout, "relay cpu:       %.3f ms/message (child process, not counted above)\n", float64(sinkCPU.Microseconds())/1000/float64(n))
	fmt.Fprintf(stdout, "relay conns:     %d opened in all\n", relayConns)
	return rate, nil
}
