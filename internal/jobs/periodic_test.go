package jobs

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/herald-mail/herald/internal/testdb"
	"github.com/herald-mail/herald/models"
)

// lockedBuffer is a log destination two goroutines may write.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Two nodes sharing the database run the default jobs for a moment: the
// retention run happens once, by one node, is audited once, and the jobs
// table names the node that ran it.
func TestSchedulerRunsEachJobOnOneNode(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx, stop := context.WithCancel(context.Background())
		defer stop()
		s.SetRetention(ctx, models.RetentionPolicy{OutboxDays: 1})
		s.SaveOutbox(ctx, &models.OutboxMessage{MailFrom: "a@b", RcptTo: "c@d", Raw: "x"})
		s.DB().Exec("UPDATE outbox SET created_at = ?", time.Now().UTC().AddDate(0, 0, -2))
		logs := []*lockedBuffer{{}, {}}
		var wg sync.WaitGroup
		for i, node := range []string{"node-a", "node-b"} {
			log := slog.New(slog.NewTextHandler(logs[i], nil))
			sc := &Scheduler{Store: s, Log: log, Owner: node, Jobs: Default(s, log), Look: 20 * time.Millisecond}
			wg.Add(1)
			go func() { defer wg.Done(); sc.Run(ctx) }()
		}
		audits := func() []models.AuditEntry {
			rows, _, err := s.AuditPage(context.Background(), models.AuditQuery{ActionPrefix: RetentionAction})
			if err != nil {
				t.Fatal(err)
			}
			return rows
		}
		deadline := time.Now().Add(20 * time.Second)
		for len(audits()) == 0 && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		time.Sleep(300 * time.Millisecond) // fifteen more looks by each node
		stop()
		wg.Wait()
		ran := 0
		for _, l := range logs {
			if strings.Contains(l.String(), "retention enforced") {
				ran++
				if !strings.Contains(l.String(), "outbox=1") {
					t.Errorf("job log = %q, want outbox=1", l.String())
				}
			}
		}
		if ran != 1 {
			t.Errorf("%d nodes ran the retention job, want 1:\n%s\n%s", ran, logs[0], logs[1])
		}
		a := audits()
		if len(a) != 1 || a[0].Actor != "retention job" || !strings.Contains(a[0].Summary, "1 captured messages deleted") {
			t.Fatalf("job audit = %+v", a)
		}
		jobs, err := s.Jobs(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if want := len(Default(s, slog.New(slog.DiscardHandler))); len(jobs) != want {
			t.Fatalf("jobs = %+v, want the %d default jobs", jobs, want)
		}
		for _, j := range jobs {
			if j.Name == "abtests.decide" || j.Name == ProtectionAction || j.Name == ProtectSourcesAction || j.Name == AutomationsAction { // due every few seconds
				if j.Owner != "node-a" && j.Owner != "node-b" {
					t.Errorf("job %+v: want a node as owner", j)
				}
				continue
			}
			if (j.Owner != "node-a" && j.Owner != "node-b") || j.FinishedAt == nil || j.NextRunAt.Before(time.Now().Add(50*time.Minute)) {
				t.Errorf("job %+v: want a node as owner, a finished run and the next one at least 50 minutes away", j)
			}
		}
	})
}
