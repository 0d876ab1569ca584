package mailer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/herald-mail/herald/models"
)

// PlacementWait is how long a placement test looks for its copies before
// the ones not found count as missing.
const PlacementWait = 10 * time.Minute

// ErrNoSeeds is returned when a placement test has no seed mailbox to go to.
var ErrNoSeeds = errors.New("mailer: no seed mailboxes")

// ErrNoTemplate is returned when the campaign of a placement test has no
// template, so there is no message to send to the seeds.
var ErrNoTemplate = errors.New("mailer: the campaign has no template")

// PlacementStore is what placement tests and gates read and write;
// *models.Store implements it.
type PlacementStore interface {
	SeedMailboxes(ctx context.Context, secrets []string) ([]models.SeedMailbox, error)
	StartPlacementTest(ctx context.Context, campaignID int64, seeds []models.SeedMailbox, deadline time.Time, gate bool) (*models.PlacementTest, error)
	ArmedPlacementGate(ctx context.Context, campaignID int64) (*models.PlacementGate, error)
	GateTesting(ctx context.Context, campaignID, testID int64) error
}

var _ PlacementStore = (*models.Store)(nil)

// SendPlacement creates a placement test of cp and sends cp's message as
// a test send to every seed, each copy carrying the test's token, in the
// change on ctx: all or none. The returned test's Results hold one entry
// per seed. Without seeds it returns ErrNoSeeds, without a template
// ErrNoTemplate, and a message that cannot be sent an ErrInvalidRequest.
func (e *Engine) SendPlacement(ctx context.Context, cp *models.Campaign, gate bool) (*models.PlacementTest, error) {
	ps, ok := e.store.(PlacementStore)
	if !ok {
		return nil, fmt.Errorf("mailer: placement test: the store keeps no seed mailboxes")
	}
	// Only the seeds' addresses are needed to send: their IMAP URLs
	// (sealed with the secrets) are the placement job's.
	seeds, err := ps.SeedMailboxes(ctx, nil)
	if err != nil && !errors.Is(err, models.ErrSettingSealed) {
		return nil, err
	}
	if len(seeds) == 0 {
		return nil, ErrNoSeeds
	}
	if cp.TemplateID == nil {
		return nil, ErrNoTemplate
	}
	t, err := ps.StartPlacementTest(ctx, cp.ID, seeds, time.Now().Add(PlacementWait), gate)
	if err != nil {
		return nil, err
	}
	for _, sd := range seeds {
		if _, err := e.SendTransactional(ctx, TransactionalRequest{TemplateID: *cp.TemplateID, To: sd.Address,
			Subject: cp.Subject, From: cp.FromEmail, FromName: cp.FromName, ReplyTo: cp.ReplyTo, Data: map[string]any{"test": true},
			Test: true, TestOf: cp.ID, Placement: t.Token, OverrideSuppression: true}); err != nil {
			return nil, err
		}
		t.Results = append(t.Results, models.PlacementResult{SeedID: sd.ID, Address: sd.Address, Provider: sd.Provider, Placement: models.PlacementPending})
	}
	return t, nil
}

// StartOrGate starts cp in the change on ctx, whoever starts it: Send
// now, the API, or the engine when a scheduled campaign's time comes.
// With an armed placement gate the campaign is held paused at once and a
// placement test goes to the seeds; the placement job resumes it when
// enough copies reach the inbox, or keeps it paused with the reason. It
// returns that test, nil without a gate.
func (e *Engine) StartOrGate(ctx context.Context, cp *models.Campaign) (*models.PlacementTest, error) {
	if err := e.StartCampaign(ctx, cp.ID); err != nil {
		return nil, err
	}
	ps, ok := e.store.(PlacementStore)
	if !ok {
		return nil, nil // a store without gates (the engine's own tests)
	}
	g, err := ps.ArmedPlacementGate(ctx, cp.ID)
	if err != nil || g == nil {
		return nil, err
	}
	if err := e.Pause(ctx, cp.ID); err != nil {
		return nil, err
	}
	t, err := e.SendPlacement(ctx, cp, true)
	if err != nil {
		return nil, err
	}
	return t, ps.GateTesting(ctx, cp.ID, t.ID)
}

// changeStore is a store whose calls can be grouped into one change with
// an audit entry; *models.Store implements it.
type changeStore interface {
	Begin(ctx context.Context) (*models.Tx, error)
	PauseCampaignFor(ctx context.Context, id int64, reason string) error
}

var _ changeStore = (*models.Store)(nil)

// startScheduled starts the scheduled campaign id whose time has come,
// through its placement gate if it has one (StartOrGate), in one change
// with its audit entry. When the gate cannot send its test (no seeds,
// no template, a message refused) the campaign is held paused with the
// reason instead: a gate the user armed is never skipped.
func (e *Engine) startScheduled(ctx context.Context, id int64) error {
	cs, ok := e.store.(changeStore)
	if !ok {
		if err := e.store.StartCampaign(ctx, id); err != nil {
			return err
		}
		e.log.Info("scheduled campaign started", "campaign", id)
		return nil
	}
	cp, err := e.store.Campaign(ctx, id)
	if err != nil {
		return err
	}
	chg, err := cs.Begin(ctx)
	if err != nil {
		return err
	}
	defer chg.End()
	t, err := e.StartOrGate(chg.Ctx(), cp)
	var reason string
	switch {
	case errors.Is(err, ErrNoSeeds):
		reason = "Paused by the placement gate: there are no seed mailboxes to test with. Add seeds, or remove the gate on Deliverability → Placement, then resume."
	case errors.Is(err, ErrNoTemplate), errors.Is(err, ErrInvalidRequest):
		reason = "Paused by the placement gate: the campaign's message cannot be sent to the seeds (" + err.Error() + "). Fix the campaign, then resume."
	case err != nil:
		return err
	}
	if reason != "" {
		chg.End() // nothing of the failed start stays
		if chg, err = cs.Begin(ctx); err != nil {
			return err
		}
		defer chg.End()
		if err := cs.PauseCampaignFor(chg.Ctx(), id, reason); err != nil {
			return err
		}
		e.log.Warn("scheduled campaign paused: its placement gate cannot test", "campaign", id, "reason", reason)
		models.AfterCommit(chg.Ctx(), func() { e.setStatus(id, models.CampaignPaused) })
		return chg.Commit(models.AuditEntry{Actor: "placement gate", Action: "campaign.gate.blocked", ObjectType: "campaign",
			ObjectID: fmt.Sprint(id), Summary: reason})
	}
	summary := "scheduled start"
	if t != nil {
		summary = fmt.Sprintf("scheduled start held by the placement gate: test %d to %d seeds", t.ID, len(t.Results))
	}
	if err := chg.Commit(models.AuditEntry{Actor: "scheduler", Action: "campaign.start", ObjectType: "campaign",
		ObjectID: fmt.Sprint(id), Summary: summary}); err != nil {
		return err
	}
	if t != nil {
		e.log.Info("scheduled campaign started, held paused by its placement gate", "campaign", id, "test", t.ID, "seeds", len(t.Results))
	} else {
		e.log.Info("scheduled campaign started", "campaign", id)
	}
	return nil
}
