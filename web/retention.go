package web

import (
	"context"
	"log/slog"
	"time"

	"github.com/herald-mail/herald/internal/jobs"
	"github.com/herald-mail/herald/models"
)

// retentionAction is the audit action of every retention run, an admin's
// or the daily job's.
const retentionAction = jobs.RetentionAction

// enforceRetention is an admin's retention run (the daily one is
// jobs.Retention): it removes what is too old at now, logs the counts and
// writes them to the audit log.
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
