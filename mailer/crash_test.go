package mailer_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/herald-mail/herald/mailer"
	"github.com/herald-mail/herald/models"
)

const crashEnv = "HERALD_CRASH_SENDER_DB"

// TestCrashSender is the sending process of TestCrashRecovery: it runs only
// when re-executed with crashEnv set, and sends until it is killed.
func TestCrashSender(t *testing.T) {
	path := os.Getenv(crashEnv)
	if path == "" {
		t.Skip("sender process of TestCrashRecovery")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	s, err := models.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	e := mailer.New(mailer.Options{
		NodeID: "crash-node", Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})), Secrets: []string{"crash-secret"},
		Transport: mailer.NewDirect(mailer.DirectOptions{MXOverride: os.Getenv("HERALD_MX_OVERRIDE")}),
	}, s)
	if err := e.Run(ctx); err != nil {
		t.Fatal(err)
	}
}

// Kill the sending process mid-campaign, start it again, let it finish:
// everybody gets the campaign, and only messages in flight at the kill may
// arrive twice.
func TestCrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("long test")
	}
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "crash.db")
	s, err := models.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if _, err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	const n = 3000
	domains := []string{"a.test", "b.test", "c.test"}
	list := seed(t, s, n, domains)
	rules, err := s.DomainRules(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rules {
		if r.IsDefault {
			r.PerSecond, r.PerMinute, r.PerHour, r.MaxConnections = 150, 0, 0, 4
			if err := s.UpdateDomainRule(ctx, &r); err != nil {
				t.Fatal(err)
			}
		}
	}
	cid := campaign(t, s, list, "news@sender.test", nil, nil)
	if err := s.StartCampaign(ctx, cid); err != nil {
		t.Fatal(err)
	}
	sink := startMX(t, "127.0.0.1:0", false, nil)

	spawn := func() *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashSender$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashEnv+"="+path, "HERALD_MX_OVERRIDE="+sink.Addr)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}

	cmd := spawn()
	waitFor(t, 60*time.Second, "a third of the campaign to arrive", func() bool { return sink.count() >= n/3 })
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	atKill := sink.count()
	// The in-flight window: rows leased but not recorded when the process
	// died. Only these may have reached the server without their 250
	// being on disk.
	var inflight []struct {
		ID    int64
		Email string
	}
	err = s.DB().Raw(`SELECT d.id, s.email FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id
		WHERE d.campaign_id = ? AND d.status = 'sending'`, cid).Scan(&inflight).Error
	if err != nil {
		t.Fatal(err)
	}
	wasInflight := map[string]bool{}
	for _, r := range inflight {
		wasInflight[r.Email] = true
	}
	byAddr := map[string]int{}
	for _, m := range sink.messages() {
		byAddr[m.To]++
	}
	unrecorded := 0
	for _, r := range inflight {
		if byAddr[r.Email] > 0 {
			unrecorded++
		}
	}
	t.Logf("killed after %d messages; %d deliveries leased at the kill, %d of them already received (sent, 250 not yet recorded)",
		atKill, len(inflight), unrecorded)

	restart := time.Now()
	cmd = spawn()
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	}()
	waitFor(t, 90*time.Second, "the campaign to finish after the restart", func() bool {
		return progress(t, s, cid).Status == models.CampaignFinished
	})

	t.Logf("finished %v after the restart", time.Since(restart).Round(time.Millisecond))
	counts := map[string]int{}
	for _, m := range sink.messages() {
		counts[m.To]++
	}
	dups := 0
	for i := 0; i < n; i++ {
		addr := fmt.Sprintf("user%d@%s", i, domains[i%len(domains)])
		switch c := counts[addr]; {
		case c == 0:
			t.Errorf("%s never received the campaign", addr)
		case c > 1:
			dups += c - 1
			if !wasInflight[addr] {
				t.Errorf("%s received %d copies but was not in flight at the kill", addr, c)
			}
		}
	}
	t.Logf("after restart: %d messages in all, %d duplicates (bound: %d received-but-unrecorded at the kill)", len(sink.messages()), dups, unrecorded)
	if dups > unrecorded {
		t.Errorf("duplicates = %d, want <= %d (messages in flight at the kill)", dups, unrecorded)
	}
	if p := progress(t, s, cid); p.Sent != n {
		t.Errorf("counters = %+v, want %d sent", p.Counters, n)
	}
}
