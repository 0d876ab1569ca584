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
	var cursor []int64
	if err := s.conn(ctx).Raw("SELECT materialize_cursor FROM campaigns WHERE id = ?", id).Scan(&cursor).Error; err != nil {
		return false, fmt.Errorf("models: materialize campaign %d: %w", id, err)
	}
	if len(cursor) == 0 {
		return false, fmt.Errorf("models: materialize campaign %d: %w", id, ErrNotFound)
	}
	lo := cursor[0]
	// A driven audience is read in ranges of batch ids, as a list is;
	// any other, batch people at a time (the LIMIT below).
	r, err := s.audienceRule(ctx, aud, now(), lo, lo+int64(batch), true)
	if err != nil {
		return false, fmt.Errorf("models: materialize campaign %d: %w", id, err)
	}
	err = s.tx(ctx, func(tx *gorm.DB) error {
		var c []struct {
			Status            string
			MaterializeCursor int64
			MaterializedAt    *time.Time
		}
		// Locked: two nodes' batches of one campaign take turns, each
		// from the cursor the other left.
		if err := tx.Raw("SELECT status, materialize_cursor, materialized_at FROM campaigns WHERE id = ?"+w.sql.rowLock(), id).Scan(&c).Error; err != nil {
			return err
		}
		if len(c) == 0 {
			return ErrNotFound
		}
		if c[0].MaterializedAt != nil || c[0].Status == CampaignCancelled {
			done = true
			return nil
		}
		if c[0].MaterializeCursor != lo {
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
		hi := lo + int64(batch)
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
		case aud.listsOnly():
			// Several lists: someone on more than one gets one delivery,
			// attributed to the first list.
			res = tx.Exec(`INSERT INTO deliveries (campaign_id, subscriber_id, list_id, domain, status, priority, attempts, next_attempt_at,
					created_at, subscriber_updated_at)
				SELECT ?, s.id, MIN(sp.list_id), `+domainExpr+`, 'queued', 0, 0, ?, ?, s.updated_at
				FROM subscriptions sp
				JOIN campaign_lists cl ON cl.list_id = sp.list_id AND cl.campaign_id = ?
				JOIN lists l ON l.id = sp.list_id
				JOIN subscribers s ON s.id = sp.subscriber_id
				WHERE sp.subscriber_id > ? AND sp.subscriber_id <= ? AND s.status = 'active'
				  AND `+eligibleSub+`
				GROUP BY s.id, s.email
				ON CONFLICT (campaign_id, subscriber_id) DO NOTHING`, id, due, t, id, lo, hi)
		default:
			// Segments with no list in common, or lists with exclusions:
			// the next batch people after the cursor whom the rule
			// selects, in id order, so that the scan stops at the batch's
			// last person (a sparse segment is not read in ranges that
			// hold nobody).
			res = tx.Exec(insert+`FROM subscribers s WHERE s.id > ? AND `+r.where+` ORDER BY s.id LIMIT ?
				ON CONFLICT (campaign_id, subscriber_id) DO NOTHING`, append(append(append(head, lo), r.args...), batch)...)
			if res.Error != nil {
				return res.Error
			}
			// The cursor moves to the last person written, or to the end
			// when the batch was not full. (Rows above the cursor are
			// never there before: they are written with it, in one
			// transaction, so every selected person was inserted.)
			if res.RowsAffected < int64(batch) {
				hi = *maxID[0]
			} else if err := tx.Raw("SELECT MAX(subscriber_id) FROM deliveries WHERE campaign_id = ? AND subscriber_id > ?", id, lo).Scan(&hi).Error; err != nil {
				return err
			}
		}
		var inserted int64
		if res != nil {
			if res.Error != nil {
				return res.Error
			}
			inserted = res.RowsAffected
		}
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
		return tx.Exec(`UPDATE campaigns SET materialize_cursor = ?, queued = queued + ?, suppressed = suppressed + ?, updated_at = ? WHERE id = ?`,
			hi, inserted-nsupp, nsupp, dbNow(), id).Error
	})
	if err != nil {
		return false, fmt.Errorf("models: materialize campaign %d: %w", id, err)
	}
	return done, nil
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
