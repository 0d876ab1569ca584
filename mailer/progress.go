package mailer

import (
	"context"
	"time"

	"github.com/herald-mail/herald/models"
)

// LiveProgress is what the campaign page polls while a campaign sends: its
// status and counters (one primary-key read) and the destinations the
// engine is busy with (memory only).
type LiveProgress struct {
	*models.CampaignProgress
	// Destinations are the busiest destinations at this moment (sending,
	// queued or suspended), at most the limit asked for. Destinations are
	// shared by every campaign sending at the same time.
	Destinations []DestinationStatus
}

// LiveProgress returns a campaign's progress and the engine's busiest
// destinations, at most limit of them. It reads one row and takes the
// engine's locks briefly, so it can be polled every second.
func (e *Engine) LiveProgress(ctx context.Context, id int64, limit int) (*LiveProgress, error) {
	p, err := e.store.CampaignProgress(ctx, id)
	if err != nil {
		return nil, err
	}
	out := &LiveProgress{CampaignProgress: p}
	if p.Status != models.CampaignRunning {
		return out, nil
	}
	now := time.Now()
	for _, d := range e.Destinations() {
		if len(out.Destinations) >= limit {
			break
		}
		if d.Rate > 0 || d.Queued > 0 || d.Connections > 0 || d.SuspendedUntil.After(now) {
			out.Destinations = append(out.Destinations, d)
		}
	}
	return out, nil
}
