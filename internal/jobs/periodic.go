package jobs

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/herald-mail/herald/models"
)

// Job is a periodic job. Every node runs the same list; the jobs table
// hands each period's run to one of them.
type Job struct {
	// Name is the job's row in the jobs table.
	Name string
	// Every is how often the job is due.
	Every time.Duration
	// Lease is how long a run may take before another node may take the
	// job up again (a node that died running it gives it up this way).
	Lease time.Duration
	// Jitter, when set, adds a random wait of up to Jitter to each next
	// due time, so that many installations (or a restarted cluster) do
	// not all ask an outside service at the same moment.
	Jitter time.Duration
	// Run does the work once. An error leaves the job due again once the
	// lease is over.
	Run func(ctx context.Context, now time.Time) error
}

// Scheduler runs periodic jobs on this node, each run taken by one node of
// the cluster.
type Scheduler struct {
	Store *models.Store
	Log   *slog.Logger
	// Owner names this node in the jobs table (models.NewLeaseOwner).
	Owner string
	Jobs  []Job
	// Look is how often the node checks for due jobs. Zero: a minute, or
	// the shortest job's period when that is shorter.
	Look time.Duration
}

// Run checks for due jobs every Look until ctx ends, running each one this
// node takes; only a run that succeeded moves its job to the next period.
func (s *Scheduler) Run(ctx context.Context) {
	look := s.Look
	if look <= 0 {
		look = time.Minute
		for _, j := range s.Jobs {
			if j.Every > 0 && j.Every < look {
				look = j.Every
			}
		}
	}
	t := time.NewTicker(look)
	defer t.Stop()
	for {
		for _, j := range s.Jobs {
			if ctx.Err() != nil {
				return
			}
			s.runOnce(ctx, j)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *Scheduler) runOnce(ctx context.Context, j Job) {
	now := time.Now()
	mine, err := s.Store.TakeJob(ctx, j.Name, s.Owner, now, j.Lease)
	if err != nil {
		if ctx.Err() == nil {
			s.Log.Error("take job", "job", j.Name, "err", err)
		}
		return
	}
	if !mine {
		return
	}
	if err := j.Run(ctx, now); err != nil {
		if ctx.Err() == nil {
			s.Log.Error("job failed; another attempt once its lease is over", "job", j.Name, "err", err, "lease", j.Lease)
		}
		return
	}
	next := now.Add(j.Every)
	if j.Jitter > 0 {
		next = next.Add(rand.N(j.Jitter))
	}
	if err := s.Store.JobDone(ctx, j.Name, s.Owner, next); err != nil && ctx.Err() == nil {
		s.Log.Error("job done", "job", j.Name, "err", err)
	}
}

// RetentionAction is the audit action of every retention run.
const RetentionAction = "retention.enforce"

// Default is Herald's periodic jobs: the daily retention run (compliance
// settings), the hourly removal of expired sessions, the hourly
// removal of import uploads never started within a day, the sunset
// policy's check for a round whose waiting period is over, the daily
// removal of webhook deliveries finished over WebhookLogKept ago, the
// A/B tests' winners, looked for every 10 seconds (a test's wait may be
// short), automatic protection's check of the running campaigns'
// complaint, bounce and deferral rates every ProtectionEvery, the
// sending IPs' every ProtectSourcesEvery, and the automations' steps,
// moved on every AutomationsEvery.
func Default(store *models.Store, log *slog.Logger) []Job {
	return []Job{
		{Name: "abtests.decide", Every: 10 * time.Second, Lease: time.Minute, Run: func(ctx context.Context, now time.Time) error {
			return ABTests(ctx, store, log, now)
		}},
		{Name: ProtectionAction, Every: ProtectionEvery, Lease: time.Minute, Run: func(ctx context.Context, now time.Time) error {
			return Protect(ctx, store, log, now)
		}},
		{Name: ProtectSourcesAction, Every: ProtectSourcesEvery, Lease: 5 * time.Minute, Run: func(ctx context.Context, now time.Time) error {
			return ProtectSources(ctx, store, log, now)
		}},
		{Name: RetentionAction, Every: 24 * time.Hour, Lease: 15 * time.Minute, Run: func(ctx context.Context, now time.Time) error {
			return Retention(ctx, store, log, now)
		}},
		{Name: "sessions.expire", Every: time.Hour, Lease: 5 * time.Minute, Run: func(ctx context.Context, now time.Time) error {
			n, err := store.DeleteExpiredSessions(ctx)
			if err == nil && n > 0 {
				log.Info("expired sessions deleted", "count", n)
			}
			return err
		}},
		{Name: "webhooks.prune", Every: 24 * time.Hour, Lease: 15 * time.Minute, Run: func(ctx context.Context, now time.Time) error {
			n, err := store.PruneWebhookDeliveries(ctx, now.Add(-WebhookLogKept))
			if err == nil && n > 0 {
				log.Info("old webhook deliveries deleted", "count", n)
			}
			return err
		}},
		{Name: "imports.abandoned", Every: time.Hour, Lease: 5 * time.Minute, Run: func(ctx context.Context, now time.Time) error {
			n, err := store.DeleteAbandonedImports(ctx, now.Add(-24*time.Hour))
			if err == nil && n > 0 {
				log.Info("import uploads never started deleted", "count", n)
			}
			return err
		}},
		{Name: AutomationsAction, Every: AutomationsEvery, Lease: time.Minute, Run: func(ctx context.Context, now time.Time) error {
			return Automations(ctx, store, log, now)
		}},
		{Name: SunsetAction, Every: time.Hour, Lease: 30 * time.Minute, Run: func(ctx context.Context, now time.Time) error {
			return Sunset(ctx, store, log, now)
		}},
	}
}

// WebhookLogKept is how long finished webhook deliveries stay in the
// delivery log.
const WebhookLogKept = 30 * 24 * time.Hour

// Retention is the retention job's run: it removes what is too old at
// now, logs the counts and writes them to the audit log.
func Retention(ctx context.Context, store *models.Store, log *slog.Logger, now time.Time) error {
	rep, err := store.EnforceRetention(ctx, now)
	if err != nil {
		return err
	}
	log.Info("retention enforced", "by", "retention job", "unconfirmed", rep.UnconfirmedRemoved, "subscribers", rep.SubscribersRemoved,
		"events", rep.EventsAnonymised, "bounces", rep.BouncesCleared, "outbox", rep.OutboxDeleted)
	e := models.AuditEntry{Actor: "retention job", Action: RetentionAction, ObjectType: "retention", Summary: rep.String()}
	if err := store.Audit(ctx, e); err != nil {
		log.Error("audit failed", "err", err, "action", RetentionAction)
	}
	return nil
}

// SunsetAction is the job name of the sunset policy's runs.
const SunsetAction = "sunset.run"

// Sunset is the sunset job's run: once the round's re-engagement campaign
// was sent the rule's waiting period ago, the people still inactive at
// now are unsubscribed or suppressed (models.RunSunsetIfDue), with their
// ledger rows and audit entries.
func Sunset(ctx context.Context, store *models.Store, log *slog.Logger, now time.Time) error {
	n, ran, err := store.RunSunsetIfDue(ctx, now, "sunset job")
	if ran {
		log.Info("sunset policy applied", "by", "sunset job", "people", n)
	}
	return err
}

// AutomationsAction is the job name of the automations' runs.
const AutomationsAction = "automations.advance"

// AutomationsEvery is how often the automations' triggers are read and
// their due steps moved on: a step is at most this late.
const AutomationsEvery = 5 * time.Second

// Automations is the automations job's run: the triggers of the active
// automations take in the people who qualified, and every due run moves
// on at now (models.AdvanceAutomations), set-based. A send step's mail is
// queued as deliveries of its campaign, which the mailer then sends.
func Automations(ctx context.Context, store *models.Store, log *slog.Logger, now time.Time) error {
	rep, err := store.AdvanceAutomations(ctx, now)
	if rep != (models.AdvanceReport{}) {
		log.Info("automations advanced", "entered", rep.Entered, "exited", rep.Exited, "queued", rep.Queued, "moved", rep.Moved)
	}
	return err
}
