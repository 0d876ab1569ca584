package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/herald-mail/herald/models"
)

// ABWinnerAction is the audit action of a winner chosen by the A/B job.
const ABWinnerAction = "campaign.ab_winner"

// ABActor is who the A/B job decides as, in the audit log and the report.
const ABActor = "A/B test job"

// ABTests is the A/B job's run: every running campaign in automatic mode
// whose test wait is over at now gets its winner, the variant with the
// best rate, released to the rest of its audience. The report keeps the
// figures it was chosen on and whether the difference was significant.
func ABTests(ctx context.Context, store *models.Store, log *slog.Logger, now time.Time) error {
	ids, err := store.DueABTests(ctx, now)
	if err != nil {
		return err
	}
	var errs []error
	for _, id := range ids {
		a, err := store.DecideABTest(ctx, id, 0, ABActor, now)
		if errors.Is(err, models.ErrABNotReady) {
			continue // decided meanwhile, by a person or another node
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		log.Info("A/B test winner released", "campaign", id, "winner", a.Best, "p", a.P, "significant", a.Significant)
		e := models.AuditEntry{Actor: ABActor, Action: ABWinnerAction, ObjectType: "campaign", ObjectID: strconv.FormatInt(id, 10),
			Summary: fmt.Sprintf("variant %d sent to the rest. %s", a.Best, a.Verdict)}
		if err := store.Audit(ctx, e); err != nil {
			log.Error("audit failed", "err", err, "action", ABWinnerAction)
		}
	}
	return errors.Join(errs...)
}
