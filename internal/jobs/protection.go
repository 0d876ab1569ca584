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
		if c.Sent+c.Bounced+c.Deferred+c.Failed < p.MinSent {
			continue // no rate of it has the sample yet: spare the scan
		}
		sigs, err := store.ProtectionSignals(ctx, c.ID, now.Add(-time.Duration(p.DeferralWindowMinutes)*time.Minute))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if trip := p.Judge(sigs); trip != nil {
			if err := pauseFor(ctx, store, log, c.ID, trip); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// pauseFor pauses a campaign for trip, with its audit entry; a campaign
// no longer running is left alone.
func pauseFor(ctx context.Context, store *models.Store, log *slog.Logger, id int64, trip *models.Trip) error {
	reason := trip.Reason()
	actx := models.WithAudit(ctx, models.AuditEntry{Actor: ProtectionActor, Action: ProtectionAction, ObjectType: "campaign",
		ObjectID: strconv.FormatInt(id, 10), Summary: reason}, nil)
	err := store.PauseCampaignFor(actx, id, reason)
	var se *models.CampaignStateError
	if errors.As(err, &se) {
		return nil // paused, cancelled or finished meanwhile
	}
	if err != nil {
		return err
	}
	log.Warn("campaign paused by automatic protection", "campaign", id, "rule", trip.Rule, "scope", trip.Scope,
		"count", trip.Count, "of", trip.Of, "pct", trip.Pct, "limit", trip.Limit)
	return nil
}

// ProtectSourcesAction is the jobs-table name of the sending IPs' check.
const ProtectSourcesAction = "protection.sources"

// ProtectSourcesEvery is how often the sending IPs are judged: their
// window is a day, over every campaign, so a minute's lag costs little
// and the scan runs less often than the campaigns'.
const ProtectSourcesEvery = time.Minute

// ProtectSources is the senders' check: a sending IP or From domain whose
// complaint or hard-bounce rate over the last day (models.SourceWindow),
// or deferral rate over the window, crosses a threshold pauses every
// running campaign that sent from it in that day.
func ProtectSources(ctx context.Context, store *models.Store, log *slog.Logger, now time.Time) error {
	p, err := store.Protection(ctx)
	if err != nil || !p.Enabled {
		return err
	}
	since := now.Add(-models.SourceWindow)
	sigs, err := store.SourceSignals(ctx, since, now.Add(-time.Duration(p.DeferralWindowMinutes)*time.Minute))
	if err != nil {
		return err
	}
	var errs []error
	for _, sg := range sigs {
		trip := p.Judge([]models.Signal{sg})
		if trip == nil {
			continue
		}
		ids, err := store.RunningCampaignsFromSource(ctx, sg.Scope, since)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, id := range ids {
			if err := pauseFor(ctx, store, log, id, trip); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}
