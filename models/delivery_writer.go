package models

import (
	"context"
	"time"

	"gorm.io/gorm"
)

// deliveryWriter is the one writer of the deliveries table: it
// materialises campaigns' rows, claims, renews and records them, and makes
// the changes bounces and erasure bring. A delivery's lease rules (a row
// changes only at its claim's generation) live with it, and its SQL is
// the dialect's (dialectSQL).
type deliveryWriter struct {
	s   *Store // the store the mailer's hot path runs on (Store.hot)
	sql dialectSQL
}

func (s *Store) deliveries() deliveryWriter {
	s = s.hot()
	return deliveryWriter{s: s, sql: s.sqlDialect()}
}

// MaterializeCampaign writes the next batch of a running campaign's
// deliveries straight from the database: one row per eligible subscriber
// (confirmed, or unconfirmed on a single opt-in list; active; once even when
// on several of the lists) whose id falls in the next span of width
// batch. Suppressed addresses and domains get a row in status suppressed. It
// reports done once the whole subscriber id range has been covered; call it
// again until then. Memory is bounded by the batch, never the list.
func (s *Store) MaterializeCampaign(ctx context.Context, id int64, batch int) (done bool, err error) {
	return s.deliveries().materialize(ctx, id, batch, now())
}

// MaterializeCampaignAt is MaterializeCampaign with the clock passed in:
// the rows are due at at, or at the local hour their time zone reaches
// next after at (SendTime).
func (s *Store) MaterializeCampaignAt(ctx context.Context, id int64, batch int, at time.Time) (done bool, err error) {
	return s.deliveries().materialize(ctx, id, batch, at)
}

// ClaimDeliveries leases due deliveries to req.Node: queued and deferred
// rows whose time has come, and the expired leases req.Reclaim names. It
// moves them to sending, adds one to each row's lease generation and
// returns them, generation included, with the recipient's current data;
// on PostgreSQL concurrent claimers skip each other's rows.
func (s *Store) ClaimDeliveries(ctx context.Context, req ClaimRequest) ([]Claimed, error) {
	return s.deliveries().claim(ctx, req)
}

// RenewLeases extends the given leases to lease from now, those whose
// generation is still the row's (nobody claimed it since) and that have
// less than half of lease left: a lease is written every half lease, not
// at every heartbeat (a heartbeat under half the lease leaves it one
// missed renewal before it runs out). On PostgreSQL a row another
// transaction holds at that moment is skipped (see renewLeases); the next
// heartbeat renews it.
func (s *Store) RenewLeases(ctx context.Context, leases []Lease, lease time.Duration) error {
	return s.deliveries().renew(ctx, leases, lease)
}

// ExpireNodeLeases gives up every lease node still holds, for any node to
// reclaim at once (ReclaimDisowned), its own next claims included; a node
// calls it when it starts, since whatever it held before belonged to a
// previous life of the process, whose outcomes died with it.
func (s *Store) ExpireNodeLeases(ctx context.Context, node string) (int64, error) {
	return s.deliveries().expireNode(ctx, node)
}

// RecordOutcomes writes outcomes and adjusts the campaign counters in one
// transaction. A row claimed again since the outcome's claim (its lease
// generation moved on: another node took it over) is left alone; one whose
// lease merely expired is still recorded. The bounces that bounced outcomes
// carry (BounceKind) are applied in the same transaction, by applyBounces
// as for a DSN, for the rows that changed. It returns how many rows it
// updated.
func (s *Store) RecordOutcomes(ctx context.Context, outs []Outcome) (int, error) {
	return s.deliveries().record(ctx, outs)
}

// EnqueueTransactional stores a transactional delivery, due now, ahead of
// campaign traffic, and returns its id.
//
// It commits on the main pool, not the queue's: the caller was told the
// message is accepted, so the row must survive a crash or power loss like
// any other acknowledged action (see Store.queue).
func (s *Store) EnqueueTransactional(ctx context.Context, m TransactionalMessage) (int64, error) {
	return deliveryWriter{s: s, sql: s.sqlDialect()}.enqueueTransactional(ctx, m)
}

// markBounced turns a delivery from status from into bounced, with the
// bounce's status and diagnostic, and reports whether it changed.
func (deliveryWriter) markBounced(tx *gorm.DB, id int64, from string, n BounceNotice) (bool, error) {
	up := tx.Exec("UPDATE deliveries SET status = ?, last_enhanced = ?, last_text = ? WHERE id = ? AND status = ?",
		DeliveryBounced, truncate(n.Status, 32), truncate(n.Diagnostic, 500), id, from)
	return up.RowsAffected > 0, up.Error
}

// erase blanks the personal columns of the given deliveries (an erased
// subscriber's), keeping the rows for the campaigns' figures.
func (deliveryWriter) erase(tx *gorm.DB, ids []int64, domain string) error {
	return tx.Exec(`UPDATE deliveries SET email = '', name = '', data = '', last_text = '', mx_host = '',
		domain = ?, subscriber_id = NULL WHERE id IN ?`, domain, ids).Error
}
