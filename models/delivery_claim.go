package models

import (
	"context"
	"fmt"
	"strings"
	"time"
)

type claimRow struct {
	id, campaign, gen int64
	status            string
}

// claim is ClaimDeliveries.
func (w deliveryWriter) claim(ctx context.Context, req ClaimRequest) ([]Claimed, error) {
	s := w.s
	if req.Limit <= 0 {
		return nil, nil
	}
	d := w.sql
	t := dbNow()
	if !req.Now.IsZero() {
		t = dbTime(req.Now)
	}
	excl, exclArgs := "", []any(nil)
	if len(req.ExcludeDomains) > 0 {
		excl = " AND domain NOT IN (" + placeholders(len(req.ExcludeDomains)) + ")"
		for _, d := range req.ExcludeDomains {
			exclArgs = append(exclArgs, d)
		}
	}
	until := dbTime(t.Add(req.Lease))
	tx, err := s.sql.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("models: claim: %w", err)
	}
	defer tx.Rollback()
	var picked []claimRow
	type branch struct {
		status, cond, order string
		args                []any
	}
	var branches []branch
	switch req.Reclaim {
	case ReclaimDisowned:
		branches = append(branches, branch{DeliverySending, "status = 'sending' AND lease_until < ? AND lease_node = ''", "", []any{t}})
	case ReclaimExpired:
		branches = append(branches, branch{DeliverySending, "status = 'sending' AND lease_until < ?", "", []any{t}})
	}
	branches = append(branches,
		branch{DeliveryDeferred, "status = 'deferred' AND next_attempt_at <= ?", " ORDER BY next_attempt_at", []any{t}},
		branch{DeliveryQueued, "status = 'queued' AND next_attempt_at <= ?", " ORDER BY next_attempt_at", []any{t}})
	// Each branch leases its rows in one statement whose text never
	// changes; the old status is the branch's, so the counters need no
	// second look at the rows.
	pick := func(campaignCond string, campaignArgs []any, limit int, exclude bool) error {
		for _, q := range branches {
			if limit <= 0 {
				return nil
			}
			args := append([]any{req.Node, until}, campaignArgs...)
			args = append(args, q.args...)
			cond := campaignCond + " AND " + q.cond
			// An expired lease is taken whatever its domain: it is mail
			// a dead node owed, and waiting for room at a busy
			// destination would stretch the takeover past the lease.
			if exclude && q.status != DeliverySending {
				args = append(args, exclArgs...)
				cond += excl
			}
			args = append(args, limit)
			rows, err := tx.QueryContext(ctx, d.rebind(d.update()+` deliveries SET status = 'sending', lease_node = ?, lease_until = ?,
				lease_gen = lease_gen + 1
				WHERE id IN (SELECT id FROM deliveries WHERE `+cond+q.order+" LIMIT ?"+d.lockClause()+`)
				RETURNING id, COALESCE(campaign_id, 0), lease_gen`), args...)
			if err != nil {
				return err
			}
			for rows.Next() {
				r := claimRow{status: q.status}
				if err := rows.Scan(&r.id, &r.campaign, &r.gen); err != nil {
					rows.Close()
					return err
				}
				picked = append(picked, r)
				limit--
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return err
			}
		}
		return nil
	}
	if req.Transactional {
		if err := pick("campaign_id IS NULL", nil, req.Limit, false); err != nil {
			return nil, fmt.Errorf("models: claim: %w", err)
		}
	}
	for i, cid := range req.CampaignIDs {
		left := req.Limit - len(picked)
		share := (left + len(req.CampaignIDs) - i - 1) / (len(req.CampaignIDs) - i)
		if err := pick("campaign_id = ?", []any{cid}, share, true); err != nil {
			return nil, fmt.Errorf("models: claim: %w", err)
		}
	}
	if len(picked) == 0 {
		return nil, nil
	}
	ids := make([]int64, 0, len(picked))
	gens := make(map[int64]int64, len(picked))
	reclaimed := map[int64]bool{}
	delta := map[int64]*Counters{}
	for _, p := range picked {
		ids = append(ids, p.id)
		gens[p.id] = p.gen
		if p.status == DeliverySending {
			reclaimed[p.id] = true
		}
		if p.campaign == 0 || p.status == DeliverySending {
			continue
		}
		c := delta[p.campaign]
		if c == nil {
			c = &Counters{}
			delta[p.campaign] = c
		}
		c.Sending++
		c.add(p.status, -1)
	}
	if err := s.applyCounters(ctx, tx, delta); err != nil {
		return nil, fmt.Errorf("models: claim: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("models: claim: %w", err)
	}
	out, err := s.claimedDetails(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("models: claim: %w", err)
	}
	for i := range out {
		out[i].LeaseGen = gens[out[i].ID]
		out[i].Reclaimed = reclaimed[out[i].ID]
	}
	return out, nil
}

func (s *Store) claimedDetails(ctx context.Context, ids []int64) ([]Claimed, error) {
	out := make([]Claimed, 0, len(ids))
	for i := 0; i < len(ids); i += 1000 {
		from, set := s.idRows(ids[i:min(i+1000, len(ids))])
		// Every column read costs the driver a few calls into SQLite, each
		// under the connection's mutex: a campaign row's address and name
		// are its subscriber's, a transactional row's its own, and the two
		// flags share a column.
		rows, err := s.sql.QueryContext(ctx, s.rebind(`SELECT d.id, COALESCE(d.campaign_id, 0), COALESCE(d.subscriber_id, 0),
			COALESCE(d.list_id, 0), COALESCE(d.template_id, 0),
			CASE WHEN d.campaign_id IS NULL THEN d.email ELSE COALESCE(s.email, '') END,
			CASE WHEN d.campaign_id IS NULL THEN d.name ELSE COALESCE(s.name, '') END,
			d.data, d.domain, d.priority, d.attempts, `+s.timeText("d.created_at")+`, COALESCE(s.attributes, '{}'),
			CASE WHEN d.campaign_id IS NULL THEN ''
			     WHEN s.id IS NULL THEN 'subscriber deleted'
			     WHEN s.status <> 'active' THEN 'subscriber ' || s.status
			     WHEN NOT EXISTS (SELECT 1 FROM subscriptions sp WHERE sp.subscriber_id = d.subscriber_id AND sp.list_id = d.list_id
			                  AND sp.status <> 'unsubscribed')
			      AND NOT EXISTS (SELECT 1 FROM subscriptions sp JOIN campaign_lists cl ON cl.list_id = sp.list_id AND cl.campaign_id = d.campaign_id
			                  WHERE sp.subscriber_id = d.subscriber_id AND sp.status <> 'unsubscribed') THEN 'unsubscribed'
			     ELSE '' END,
			CASE WHEN d.override_suppression AND d.campaign_id IS NULL THEN 2 ELSE 0 END +
			CASE WHEN d.subscriber_updated_at IS NULL OR s.updated_at <> d.subscriber_updated_at THEN 1 ELSE 0 END,
			COALESCE(d.variant, 0)
			FROM `+from+` CROSS JOIN deliveries d LEFT JOIN subscribers s ON s.id = d.subscriber_id WHERE d.id = j.value`), set)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var (
				c       Claimed
				attrs   string
				flags   int
				created aggTime
			)
			if err := rows.Scan(&c.ID, &c.CampaignID, &c.SubscriberID, &c.ListID, &c.TemplateID, &c.Email, &c.Name, &c.Data,
				&c.Domain, &c.Priority, &c.Attempts, &created, &attrs, &c.Ineligible, &flags, &c.Variant); err != nil {
				rows.Close()
				return nil, err
			}
			if c.CampaignID != 0 {
				if err := c.Attributes.Scan(attrs); err != nil {
					c.Attributes = Attributes{}
				}
			}
			c.CreatedAt = created.t
			c.OverrideSuppression = flags&2 != 0
			// A subscriber changed since the row was written may have
			// taken an address that was suppressed long ago.
			c.fullCheck = flags&1 != 0
			out = append(out, c)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	if err := s.markSuppressed(ctx, out); err != nil {
		return nil, err
	}
	return out, nil
}

// suppressionMargin is how far before a delivery row was written a
// suppression may have been stamped yet not been seen by the
// materialisation that wrote the row (a transaction in flight).
const suppressionMargin = 10 * time.Minute

// maxRecentSuppressions caps the suppressions added since materialisation
// that a claim reads; past it, the claim looks its own addresses up.
const maxRecentSuppressions = 2000

// markSuppressed marks the claimed deliveries whose address or domain is
// suppressed. Materialisation left out whoever was suppressed when it
// wrote a campaign's rows, so campaign rows are checked only against the
// suppressions added since (usually none, which costs one indexed look and
// no hashing); transactional rows, written without that check, and rows
// whose subscriber was edited since (a new address), against all of them.
func (s *Store) markSuppressed(ctx context.Context, out []Claimed) error {
	db := s.conn(ctx)
	var tx []string
	var since time.Time
	for _, c := range out {
		switch {
		case c.Ineligible != "" || c.Email == "" || c.OverrideSuppression:
		case c.CampaignID == 0 || c.fullCheck:
			tx = append(tx, c.Email)
		case since.IsZero() || c.CreatedAt.Before(since):
			since = c.CreatedAt
		}
	}
	supp, err := s.suppressedSet(db, tx, nil)
	if err != nil {
		return err
	}
	var recent map[string]bool
	if !since.IsZero() {
		var hashes []string
		if err := db.Raw("SELECT value_hash FROM suppressions WHERE created_at >= ? LIMIT ?",
			dbTime(since.Add(-suppressionMargin)), maxRecentSuppressions+1).Scan(&hashes).Error; err != nil {
			return err
		}
		if len(hashes) > maxRecentSuppressions {
			// A big suppression import meanwhile: look the batch's own
			// addresses up instead, as for transactional rows.
			for i := range out {
				if out[i].CampaignID != 0 {
					out[i].fullCheck = true
				}
			}
			return s.markSuppressed(ctx, out)
		}
		recent = make(map[string]bool, len(hashes))
		for _, h := range hashes {
			recent[h] = true
		}
	}
	for i := range out {
		c := &out[i]
		if c.Ineligible != "" || c.Email == "" || c.OverrideSuppression {
			continue
		}
		email := strings.ToLower(c.Email)
		if c.CampaignID == 0 || c.fullCheck {
			if supp[email] {
				c.Ineligible = "suppressed"
			}
			continue
		}
		if len(recent) > 0 && (recent[SuppressionHash(email)] || recent[SuppressionHash("@"+EmailDomain(email))]) {
			c.Ineligible = "suppressed"
		}
	}
	return nil
}

// renew is RenewLeases.
func (w deliveryWriter) renew(ctx context.Context, leases []Lease, lease time.Duration) error {
	s := w.s
	d := w.sql
	t := now()
	until, due := dbTime(t.Add(lease)), dbTime(t.Add(lease/2))
	// Chunks of a few hundred rows hold their locks only briefly.
	for len(leases) > 0 {
		n := min(len(leases), 500)
		from, arg := d.leaseRows(leases[:n])
		args := []any{until, due}
		if a, ok := arg.([]any); ok {
			args = append(args, a...)
		} else {
			args = append(args, arg)
		}
		if _, err := s.sql.ExecContext(ctx, d.renewLeases(from), args...); err != nil {
			return fmt.Errorf("models: renew leases: %w", err)
		}
		leases = leases[n:]
	}
	return nil
}

// expireNode is ExpireNodeLeases.
func (w deliveryWriter) expireNode(ctx context.Context, node string) (int64, error) {
	s := w.s
	past := dbTime(now().Add(-time.Second))
	res := s.conn(ctx).Exec(`UPDATE deliveries SET lease_until = ?, lease_node = '' WHERE status = 'sending' AND lease_node = ? AND
		(campaign_id IS NULL OR campaign_id IN (SELECT id FROM campaigns WHERE status IN ('running', 'paused')))`, past, node)
	if res.Error != nil {
		return 0, fmt.Errorf("models: expire leases of %s: %w", node, res.Error)
	}
	return res.RowsAffected, nil
}
