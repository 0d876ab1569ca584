package jobs

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/herald-mail/herald/mailer"
	"github.com/herald-mail/herald/models"
)

// PlacementJob is the name of the placement tests' polling job.
const PlacementJob = "placement.poll"

// PlacementPoller looks for the copies of running placement tests in the
// seed mailboxes and ends each test when every copy is found or its
// deadline passed.
type PlacementPoller struct {
	Store *models.Store
	// Secrets open the seeds' sealed IMAP URLs (the newest first).
	Secrets []string
	Log     *slog.Logger
}

// Placement is the placement tests' job, due every period (seconds: a
// copy's time to arrive is measured to within one period).
func Placement(p *PlacementPoller, every time.Duration) Job {
	return Job{Name: PlacementJob, Every: every, Lease: 2 * time.Minute, Run: func(ctx context.Context, now time.Time) error {
		return p.Run(ctx, now)
	}}
}

// Run polls once: every copy not found yet of every running test.
func (p *PlacementPoller) Run(ctx context.Context, now time.Time) error {
	tests, err := p.Store.RunningPlacementTests(ctx)
	if err != nil || len(tests) == 0 {
		return err
	}
	seeds, err := p.Store.SeedMailboxes(ctx, p.Secrets)
	if err != nil && !errors.Is(err, models.ErrSettingSealed) {
		return err
	}
	byID := map[int64]models.SeedMailbox{}
	for _, s := range seeds {
		byID[s.ID] = s
	}
	for _, t := range tests {
		left := 0
		for _, r := range t.Results {
			if r.Placement != models.PlacementPending && r.Placement != models.PlacementError {
				continue
			}
			seed, ok := byID[r.SeedID]
			if !ok || seed.IMAPURL == "" {
				r.Placement, r.Detail = models.PlacementError, "The seed mailbox was deleted, or its password does not open with this server secret."
				if err := p.Store.RecordPlacement(ctx, r); err != nil {
					return err
				}
				continue
			}
			f, err := mailer.FindPlacement(ctx, mailer.PlacementLookup{URL: seed.IMAPURL, Token: t.Token, Timeout: 30 * time.Second})
			switch {
			case err != nil:
				p.Log.Warn("placement: seed mailbox not readable", "test", t.ID, "seed", seed.Address, "err", err)
				r.Placement, r.Detail = models.PlacementError, err.Error()
				left++
			case !f.Found:
				left++
				continue
			default:
				ms := max(0, f.Arrived.Sub(t.CreatedAt).Milliseconds())
				r.Placement, r.Folder, r.ArrivalMS, r.Detail = f.Placement, f.Folder, &ms, ""
				r.SPF, r.DKIM, r.DMARC, r.AuthResults = f.SPF, f.DKIM, f.DMARC, f.AuthResults
				p.Log.Info("placement: copy found", "test", t.ID, "seed", seed.Address, "placement", f.Placement, "folder", f.Folder)
			}
			if err := p.Store.RecordPlacement(ctx, r); err != nil {
				return err
			}
		}
		if left == 0 || !now.Before(t.Deadline) {
			if err := p.Store.FinishPlacementTest(ctx, t.ID); err != nil {
				return err
			}
			p.Log.Info("placement test finished", "test", t.ID, "campaign", t.CampaignID)
			if !t.Gate {
				continue
			}
			done, err := p.Store.PlacementTest(ctx, t.ID)
			if err != nil {
				return err
			}
			g, err := p.Store.SettlePlacementGate(ctx, done)
			if err != nil {
				return err
			}
			if g != nil {
				p.Log.Info("placement gate decided", "campaign", g.CampaignID, "state", g.State, "inbox_percent", done.InboxPercent(), "min_inbox", g.MinInbox)
			}
		}
	}
	return nil
}
