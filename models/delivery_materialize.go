package models

import (
	"context"
	"fmt"
	"strings"
	"time"

	"gorm.io/gorm"
)

// materialize is MaterializeCampaign.
// Its rows are due at, or at their local hour (releaseByZone).
func (w deliveryWriter) materialize(ctx context.Context, id int64, batch int, at time.Time) (done bool, err error) {
	s := w.s
	if batch <= 0 {
		batch = 5000
	}
	domainExpr := w.sql.emailDomain("s.email")
	// The audience and its rule are read before the transaction: they
	// compile against the lists, segments and domain rules, and against
	// the cursor as it is now. A running campaign's audience no longer
	// changes (SetCampaignAudience); should another node move the cursor
	// meanwhile, the transaction sees it and writes nothing.
	aud, err := s.CampaignAudience(ctx, id)
	if err != nil {
		return false, fmt.Errorf("models: materialize campaign %d: %w", id, err)
	}
	var cur []struct{ MaterializeCursor, MaterializeSpan int64 }
	if err := s.conn(ctx).Raw("SELECT materialize_cursor, materialize_span FROM campaigns WHERE id = ?", id).Scan(&cur).Error; err != nil {
		return false, fmt.Errorf("models: materialize campaign %d: %w", id, err)
	}
	if len(cur) == 0 {
		return false, fmt.Errorf("models: materialize campaign %d: %w", id, ErrNotFound)
	}
	lo, span := cur[0].MaterializeCursor, max(cur[0].MaterializeSpan, int64(batch))
	r, err := s.audienceRule(ctx, aud, now(), lo, lo+span, true)
	if err != nil {
		return false, fmt.Errorf("models: materialize campaign %d: %w", id, err)
	}
	err = s.tx(ctx, func(tx *gorm.DB) error {
		var c []struct {
			Status            string
			MaterializeCursor int64
			MaterializeSpan   int64
			MaterializedAt    *time.Time
		}
		// Two nodes' batches of one campaign take turns, each from the
		// cursor the other left. (An advisory lock rather than the
		// campaign's row: recording outcomes updates the row's counters
		// all along, and would wait for every batch.)
		if q := w.sql.serialize(); q != "" {
			if err := tx.Exec(q, materializeLockKey|id).Error; err != nil {
				return err
			}
		}
		if err := tx.Raw("SELECT status, materialize_cursor, materialize_span, materialized_at FROM campaigns WHERE id = ?", id).Scan(&c).Error; err != nil {
			return err
		}
		if len(c) == 0 {
			return ErrNotFound
		}
		if c[0].MaterializedAt != nil || c[0].Status == CampaignCancelled {
			done = true
			return nil
		}
		if c[0].MaterializeCursor != lo || max(c[0].MaterializeSpan, int64(batch)) != span {
			return nil // moved by another node: compile again
		}
		var maxID []*int64
		if err := tx.Raw("SELECT MAX(id) FROM subscribers").Scan(&maxID).Error; err != nil {
			return err
		}
		if len(maxID) == 0 || maxID[0] == nil || lo >= *maxID[0] {
			done = true
			if err := s.startABTest(tx, id, dbTime(at)); err != nil {
				return err
			}
			return tx.Exec("UPDATE campaigns SET materialized_at = ?, updated_at = ? WHERE id = ?", dbNow(), dbNow(), id).Error
		}
		hi := lo + span
		t := dbTime(at)
		// due: when the new rows may be claimed. An A/B test holds them
		// (startABTest releases its share, the winner the rest), and the
		// send time's release step leaves held rows alone.
		due, err := abDue(tx, id, t)
		if err != nil {
			return err
		}
		head := []any{id}
		head = append(append(head, r.attrArgs...), due, t)
		insert := `INSERT INTO deliveries (campaign_id, subscriber_id, list_id, domain, status, priority, attempts, next_attempt_at,
				created_at, subscriber_updated_at)
			SELECT ?, s.id, ` + r.attr + `, ` + domainExpr + `, 'queued', 0, 0, ?, ?, s.updated_at `
		var res *gorm.DB
		switch {
		case r.driver != 0:
			// A list, or segments that all require one: the list's
			// members in the batch's range of ids, through its index,
			// each beside their subscription to it (so no grouping:
			// SQLite sorted every batch into a temporary index for one),
			// and the rule over them. A segment's people therefore cost
			// what a list's do, plus their own conditions.
			res = tx.Exec(insert+`FROM subscriptions sp JOIN subscribers s ON s.id = sp.subscriber_id
				WHERE sp.list_id = ? AND sp.status IN ? AND sp.subscriber_id > ? AND sp.subscriber_id <= ? AND `+r.where+`
				ON CONFLICT (campaign_id, subscriber_id) DO NOTHING`,
				append(append(head, r.driver, r.driverStatuses, lo, hi), r.args...)...)
		default:
			// Lists, several, and segments with no list in common: every
			// eligible subscription in the batch's range of ids, in the
			// order of their primary key. Someone on more than one list
			// gets one delivery, attributed as the rule says: their first
			// passing row is inserted and the conflict drops the others
			// (in that order SQLite reads the key, with no sort), unless
			// the rule groups their rows (an aggregate per person cost
			// SQLite two fifths of a microsecond per person).
			group := "ORDER BY sp.subscriber_id, sp.list_id"
			if r.grouped {
				group = "GROUP BY " + w.sql.bySubscriber()
			}
			res = tx.Exec(insert+`FROM subscriptions sp JOIN subscribers s ON s.id = sp.subscriber_id
				WHERE sp.subscriber_id > ? AND sp.subscriber_id <= ? AND `+r.eligible+` AND `+r.where+`
				`+group+`
				ON CONFLICT (campaign_id, subscriber_id) DO NOTHING`, append(append(append(head, lo, hi), r.eligibleArgs...), r.args...)...)
		}
		if res.Error != nil {
			return res.Error
		}
		inserted := res.RowsAffected
		if inserted > 0 && due.Equal(t) {
			if err := w.releaseBatch(tx, id, lo, hi, t); err != nil {
				return err
			}
		}
		// The rows just written are checked against the suppression list.
		// A young list has few suppressions or none: then reading them all
		// is cheaper than looking every address up, and with none there is
		// nothing to read back.
		var (
			few    map[string]bool
			ids    []int64
			emails []string
		)
		if inserted > 0 {
			var err error
			if few, err = s.suppressionsUpTo(tx, batch/8); err != nil {
				return err
			}
		}
		if inserted > 0 && (few == nil || len(few) > 0) {
			rows, err := tx.Raw(`SELECT d.id, s.email FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id
				WHERE d.campaign_id = ? AND d.subscriber_id > ? AND d.subscriber_id <= ? AND d.status = 'queued'`, id, lo, hi).Rows()
			if err != nil {
				return err
			}
			defer rows.Close()
			for rows.Next() {
				var (
					id    int64
					email string
				)
				if err := rows.Scan(&id, &email); err != nil {
					return err
				}
				ids, emails = append(ids, id), append(emails, email)
			}
			if err := rows.Err(); err != nil {
				return err
			}
			rows.Close()
		}
		supp, err := s.suppressedSet(tx, emails, few)
		if err != nil {
			return err
		}
		var suppressed []int64
		for i, e := range emails {
			if supp[strings.ToLower(e)] {
				suppressed = append(suppressed, ids[i])
			}
		}
		nsupp := int64(len(suppressed))
		for len(suppressed) > 0 {
			n := min(len(suppressed), 500)
			if err := tx.Exec("UPDATE deliveries SET status = 'suppressed', last_text = 'suppressed' WHERE id IN ?", suppressed[:n]).Error; err != nil {
				return err
			}
			suppressed = suppressed[n:]
		}
		return tx.Exec(`UPDATE campaigns SET materialize_cursor = ?, materialize_span = ?, queued = queued + ?, suppressed = suppressed + ?, updated_at = ? WHERE id = ?`,
			hi, nextSpan(span, inserted, batch), inserted-nsupp, nsupp, dbNow(), id).Error
	})
	if err != nil {
		return false, fmt.Errorf("models: materialize campaign %d: %w", id, err)
	}
	return done, nil
}

// materializeLockKey, with a campaign's id in its low 48 bits, is the
// key of the lock two nodes' batches of the campaign take turns on.
const materializeLockKey = int64(0x4D41) << 48 // "MA"

// maxSpan bounds the range of ids a batch reads, in batches: a batch
// writes at most this many times the batch size when the audience's share
// of the ids jumps from sparse to whole (SQLite holds its write lock for
// the batch: about a fifth of a second at 5,000 × 8 rows).
const maxSpan = 8

// nextSpan is the width of the batch after one of span ids that wrote n
// rows: span scaled to write batch rows, growing at most fourfold a batch
// and within [batch, maxSpan × batch].
func nextSpan(span, n int64, batch int) int64 {
	b := int64(batch)
	next := span * 4
	if n > 0 {
		next = min(next, span*b/n)
	}
	return min(max(next, b), maxSpan*b)
}

// suppressionsUpTo returns the hash of every suppression when there are
// at most n, and nil when there are more.
func (s *Store) suppressionsUpTo(tx *gorm.DB, n int) (map[string]bool, error) {
	rows, err := tx.Raw("SELECT value_hash FROM suppressions LIMIT ?", n+1).Rows()
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	all := map[string]bool{}
	for rows.Next() {
		var h string
		if err := rows.Scan(&h); err != nil {
			return nil, err
		}
		if all[h] = true; len(all) > n {
			return nil, nil
		}
	}
	return all, rows.Err()
}

// suppressedSet returns the lower-cased addresses among emails that are
// suppressed by address or by domain. all, when not nil, holds every
// suppression (from suppressionsUpTo), which spares the lookups.
func (s *Store) suppressedSet(tx *gorm.DB, emails []string, all map[string]bool) (map[string]bool, error) {
	out := map[string]bool{}
	if len(emails) == 0 || (all != nil && len(all) == 0) {
		return out, nil
	}
	byHash := make(map[string][]string, len(emails)+8)
	domains := map[string]string{} // domain → its hash: a batch has few domains
	for _, e := range emails {
		le := strings.ToLower(e)
		h := SuppressionHash(le)
		byHash[h] = append(byHash[h], le)
		dom := EmailDomain(le)
		d, ok := domains[dom]
		if !ok {
			d = SuppressionHash("@" + dom)
			domains[dom] = d
		}
		byHash[d] = append(byHash[d], le)
	}
	if all != nil {
		for h, es := range byHash {
			if all[h] {
				for _, e := range es {
					out[e] = true
				}
			}
		}
		return out, nil
	}
	hashes := make([]string, 0, len(byHash))
	for h := range byHash {
		hashes = append(hashes, h)
	}
	// One JSON argument rather than a parameter per hash: the SQLite
	// driver's binding cost grows with the square of the parameters. Each
	// hash probes the index, as in the import's lookup. Rows rather than
	// Scan: Scan has GORM print the statement, argument included, for its
	// error messages.
	rows, err := tx.Raw("SELECT s.value_hash FROM "+s.jsonTextRows()+" CROSS JOIN suppressions s WHERE s.value_hash = j.value",
		jsonArray(hashes)).Rows()
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var h string
		if err := rows.Scan(&h); err != nil {
			return nil, err
		}
		for _, e := range byHash[h] {
			out[e] = true
		}
	}
	return out, rows.Err()
}
