package web

import (
	"context"
	"log/slog"
	"time"

	"github.com/herald-mail/herald/models"
)

// retentionAction is the audit action of every retention run.
const retentionAction = "retention.enforce"

// retentionLease is how long a node holds the retention run before
// another may take it up (a run takes seconds).
const retentionLease = 15 * time.Minute

// RunRetention enforces the retention policy once every interval until ctx
// ends, logging and auditing what each run removed. Start it beside the
// server on every node: go web.RunRetention(ctx, store, log, 24*time.Hour).
// The jobs table hands each period's run to one node, under a lease of a
// few minutes; only a run that succeeded moves the job to the next period,
// so a failed run, or one whose node died, is taken up again by whichever
// node looks next (every few minutes). A node restarting within the
// period does not run it again.
func RunRetention(ctx context.Context, store *models.Store, log *slog.Logger, every time.Duration) {
	if every <= 0 {
		every = 24 * time.Hour
	}
	look := min(every, 5*time.Minute)
	t := time.NewTicker(look)
	defer t.Stop()
	for {
		now := time.Now()
		mine, err := store.TakeJob(ctx, retentionAction, now, retentionLease)
		if err != nil && ctx.Err() == nil {
			log.Error("retention job", "err", err)
		}
		if mine {
			if _, err := enforceRetention(ctx, store, log, now, "retention job", nil, ""); err != nil {
				if ctx.Err() == nil {
					log.Error("retention failed; another attempt once the lease is over", "err", err, "lease", retentionLease)
				}
			} else if err := store.JobDone(ctx, retentionAction, now.Add(every)); err != nil && ctx.Err() == nil {
				log.Error("retention job", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// enforceRetention is one retention run, by the daily job or by an admin:
// it removes what is too old at now, logs the counts and writes them to the
// audit log.
func enforceRetention(ctx context.Context, store *models.Store, log *slog.Logger, now time.Time, actor string, userID *int64, ip string) (models.RetentionReport, error) {
	rep, err := store.EnforceRetention(ctx, now)
	if err != nil {
		return rep, err
	}
	log.Info("retention enforced", "by", actor, "unconfirmed", rep.UnconfirmedRemoved, "subscribers", rep.SubscribersRemoved,
		"events", rep.EventsAnonymised, "bounces", rep.BouncesCleared, "outbox", rep.OutboxDeleted)
	e := models.AuditEntry{UserID: userID, Actor: actor, Action: retentionAction, ObjectType: "retention", Summary: rep.String(), IP: ip}
	if err := store.Audit(ctx, e); err != nil {
		log.Error("audit failed", "err", err, "action", retentionAction)
	}
	return rep, nil
}
