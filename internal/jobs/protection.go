package jobs

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"time"

	"github.com/herald-mail/herald/models"
)

// ProtectionAction is the audit action of a campaign paused by automatic
// protection.
const ProtectionAction = "campaign.auto_pause"

// ProtectionActor is who pauses, in the audit log.
const ProtectionActor = "automatic protection"

// ProtectionEvery is how often running campaigns are judged. The
// complaints of a feedback loop come in over minutes, so a few seconds'
// lag costs little; one node runs each round (the jobs table).
const ProtectionEvery = 5 * time.Second

// Protect is the protection job's run: every running campaign whose
// complaint, hard-bounce or deferral rate crossed a threshold
// (models.Protection) at now is paused with the reason, and the pause is
// written to the audit log in the same transaction.
func Protect(ctx context.Context, store *models.Store, log *slog.Logger, now time.Time) error {
	p, err := store.Protection(ctx)
	if err != nil {
		return err
	}
	if !p.Enabled {
		return nil
	}
	running, err := store.CampaignsByStatus(ctx, models.CampaignRunning)
	if err != nil {
		return err
	}
	var errs []error
	for _, c := range running {
		sigs, err := store.ProtectionSignals(ctx, c.ID, now.Add(-time.Duration(p.DeferralWindowMinutes)*time.Minute))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		trip := p.Judge(sigs)
		if trip == nil {
			continue
		}
		reason := trip.Reason()
		actx := models.WithAudit(ctx, models.AuditEntry{Actor: ProtectionActor, Action: ProtectionAction, ObjectType: "campaign",
			ObjectID: strconv.FormatInt(c.ID, 10), Summary: reason}, nil)
		err = store.PauseCampaignFor(actx, c.ID, reason)
		var se *models.CampaignStateError
		if errors.As(err, &se) {
			continue // paused, cancelled or finished meanwhile
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		log.Warn("campaign paused by automatic protection", "campaign", c.ID, "rule", trip.Rule, "provider", trip.Scope,
			"count", trip.Count, "of", trip.Of, "pct", trip.Pct, "limit", trip.Limit)
	}
	return errors.Join(errs...)
}
