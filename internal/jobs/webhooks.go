package jobs

import (
	"context"
	"time"

	"github.com/herald-mail/herald/internal/outhook"
)

// WebhooksJob is the name of the outgoing webhooks job.
const WebhooksJob = "webhooks.dispatch"

// Webhooks is the outgoing webhooks job, due every period: one node at a
// time feeds new events to the outbox and posts the due deliveries (each
// also leased to the node posting it, should a run outlive the job's
// lease).
func Webhooks(d *outhook.Dispatcher, every time.Duration) Job {
	return Job{Name: WebhooksJob, Every: every, Lease: 5 * time.Minute, Run: func(ctx context.Context, _ time.Time) error {
		return d.Run(ctx)
	}}
}
