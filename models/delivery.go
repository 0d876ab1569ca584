package models

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"gorm.io/gorm"
)

// Delivery statuses.
const (
	DeliveryQueued     = "queued"
	DeliverySending    = "sending"
	DeliverySent       = "sent"
	DeliveryDeferred   = "deferred"
	DeliveryBounced    = "bounced"
	DeliveryFailed     = "failed"
	DeliverySuppressed = "suppressed"
)

// PriorityTransactional is the priority of transactional deliveries; campaign
// deliveries have priority 0.
const PriorityTransactional = 10

// Delivery is one message to one recipient: for a campaign, the idempotency
// key that keeps a subscriber from receiving it twice.
type Delivery struct {
	ID            int64
	CampaignID    *int64
	SubscriberID  *int64
	ListID        *int64
	TemplateID    *int64
	Email         string // transactional deliveries only
	Name          string
	Data          string // transactional template data, JSON
	Domain        string
	Priority      int
	Status        string
	Attempts      int
	NextAttemptAt time.Time
	LeaseNode     string
	LeaseUntil    *time.Time
	LastCode      int
	LastEnhanced  string
	LastText      string
	MessageID     string
	SourceIP      string `gorm:"column:source_ip"`
	MXHost        string `gorm:"column:mx_host"`
	// TLS is how the last attempt crossed the network (TLSCode).
	TLS           int16 `gorm:"column:tls"`
	LastAttemptAt *time.Time
	SentAt        *time.Time
	CreatedAt     time.Time
	// OverrideSuppression: a transactional message sent to the address even
	// when it is suppressed, because its sender said so.
	OverrideSuppression bool
}

// Delivery returns one delivery.
func (s *Store) Delivery(ctx context.Context, id int64) (*Delivery, error) {
	var d Delivery
	if err := s.conn(ctx).First(&d, id).Error; err != nil {
		return nil, fmt.Errorf("models: delivery %d: %w", id, notFound(err))
	}
	return &d, nil
}

// DeliveriesOfCampaign returns a page of a campaign's deliveries in one
// status ("" for all), by id, after the cursor id.
func (s *Store) DeliveriesOfCampaign(ctx context.Context, campaignID int64, status string, after int64, limit int) ([]Delivery, error) {
	q := s.conn(ctx).Where("campaign_id = ? AND id > ?", campaignID, after).Order("id").Limit(limit)
	if status != "" {
		q = q.Where("status = ?", status)
	}
	var out []Delivery
	if err := q.Find(&out).Error; err != nil {
		return nil, fmt.Errorf("models: deliveries of campaign %d: %w", campaignID, err)
	}
	return out, nil
}

// rebind turns ? placeholders into $n for PostgreSQL, for the hot paths that
// use database/sql directly.
func (s *Store) rebind(q string) string {
	if s.dialect != Postgres {
		return q
	}
	var b strings.Builder
	n := 0
	for i := 0; i < len(q); i++ {
		if q[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(q[i])
	}
	return b.String()
}

func placeholders(n int) string {
	if n == 0 {
		return "NULL"
	}
	return strings.TrimSuffix(strings.Repeat("?,", n), ",")
}

// MaterializeCampaign writes the next batch of a running campaign's
// deliveries straight from the database: one row per eligible subscriber
// (confirmed, or unconfirmed on a single opt-in list; active; once even when
// on several of the lists) whose id falls in the next span of width
// batch. Suppressed addresses and domains get a row in status suppressed. It
// reports done once the whole subscriber id range has been covered; call it
// again until then. Memory is bounded by the batch, never the list.
func (s *Store) MaterializeCampaign(ctx context.Context, id int64, batch int) (done bool, err error) {
	s = s.hot()
	if batch <= 0 {
		batch = 5000
	}
	domainExpr := "lower(substr(s.email, instr(s.email, '@') + 1))"
	if s.dialect == Postgres {
		domainExpr = "lower(split_part(s.email, '@', 2))"
	}
	err = s.tx(ctx, func(tx *gorm.DB) error {
		var c []struct {
			Status            string
			MaterializeCursor int64
			MaterializedAt    *time.Time
		}
		if err := tx.Raw("SELECT status, materialize_cursor, materialized_at FROM campaigns WHERE id = ?", id).Scan(&c).Error; err != nil {
			return err
		}
		if len(c) == 0 {
			return ErrNotFound
		}
		if c[0].MaterializedAt != nil || c[0].Status == CampaignCancelled {
			done = true
			return nil
		}
		var maxID []*int64
		if err := tx.Raw("SELECT MAX(id) FROM subscribers").Scan(&maxID).Error; err != nil {
			return err
		}
		lo := c[0].MaterializeCursor
		if len(maxID) == 0 || maxID[0] == nil || lo >= *maxID[0] {
			done = true
			return tx.Exec("UPDATE campaigns SET materialized_at = ?, updated_at = ? WHERE id = ?", dbNow(), dbNow(), id).Error
		}
		hi := lo + int64(batch)
		t := dbNow()
		var lists []struct {
			ListID int64
			Optin  string
		}
		if err := tx.Raw(`SELECT cl.list_id, l.optin FROM campaign_lists cl JOIN lists l ON l.id = cl.list_id
			WHERE cl.campaign_id = ?`, id).Scan(&lists).Error; err != nil {
			return err
		}
		var res *gorm.DB
		if len(lists) == 1 {
			// One list, the usual case: each subscriber is on it once, so
			// no grouping (SQLite sorted every batch into a temporary
			// index for it) and no join to the list for its opt-in.
			statuses := []string{SubConfirmed}
			if lists[0].Optin == OptinSingle {
				statuses = append(statuses, SubUnconfirmed)
			}
			res = tx.Exec(`INSERT INTO deliveries (campaign_id, subscriber_id, list_id, domain, status, priority, attempts, next_attempt_at,
					created_at, subscriber_updated_at)
				SELECT ?, s.id, sp.list_id, `+domainExpr+`, 'queued', 0, 0, ?, ?, s.updated_at
				FROM subscriptions sp JOIN subscribers s ON s.id = sp.subscriber_id
				WHERE sp.list_id = ? AND sp.status IN ? AND sp.subscriber_id > ? AND sp.subscriber_id <= ? AND s.status = 'active'
				ON CONFLICT (campaign_id, subscriber_id) DO NOTHING`, id, t, t, lists[0].ListID, statuses, lo, hi)
		} else {
			// Someone on several of the lists gets one delivery, attributed
			// to the first list.
			res = tx.Exec(`INSERT INTO deliveries (campaign_id, subscriber_id, list_id, domain, status, priority, attempts, next_attempt_at,
					created_at, subscriber_updated_at)
				SELECT ?, s.id, MIN(sp.list_id), `+domainExpr+`, 'queued', 0, 0, ?, ?, s.updated_at
				FROM subscriptions sp
				JOIN campaign_lists cl ON cl.list_id = sp.list_id AND cl.campaign_id = ?
				JOIN lists l ON l.id = sp.list_id
				JOIN subscribers s ON s.id = sp.subscriber_id
				WHERE sp.subscriber_id > ? AND sp.subscriber_id <= ? AND s.status = 'active'
				  AND (sp.status = 'confirmed' OR (sp.status = 'unconfirmed' AND l.optin = 'single'))
				GROUP BY s.id, s.email
				ON CONFLICT (campaign_id, subscriber_id) DO NOTHING`, id, t, t, id, lo, hi)
		}
		if res.Error != nil {
			return res.Error
		}
		inserted := res.RowsAffected
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

// ClaimRequest says which due deliveries a node wants to lease.
type ClaimRequest struct {
	// Node is the claiming node's id, written to lease_node.
	Node string
	// Lease is how long the claim holds before others may reclaim the rows.
	Lease time.Duration
	// Limit caps the rows claimed.
	Limit int
	// Transactional draws due transactional deliveries first.
	Transactional bool
	// CampaignIDs are the running campaigns to draw from, sharing Limit.
	CampaignIDs []int64
	// Reclaim also takes rows whose lease expired (their node died).
	// Scanning for them costs a pass over the rows in flight, so claimers
	// ask for it now and then rather than on every claim.
	Reclaim bool
	// ExcludeDomains are recipient domains whose campaign deliveries are
	// not to be claimed now (their destination is suspended or its queue is
	// full). Transactional deliveries are claimed regardless.
	ExcludeDomains []string
}

// Claimed is a leased delivery with what rendering it needs.
type Claimed struct {
	ID           int64
	CampaignID   int64 // 0 for transactional
	SubscriberID int64
	ListID       int64
	TemplateID   int64
	Email        string
	Name         string
	Attributes   Attributes
	Data         string // transactional data, JSON
	Domain       string
	Priority     int
	Attempts     int
	CreatedAt    time.Time
	// Ineligible says why the recipient may no longer be mailed (suppressed,
	// unsubscribed, blocklisted, deleted); "" when they may.
	Ineligible string
	// OverrideSuppression: a transactional message whose sender chose to
	// reach the address even if it is suppressed.
	OverrideSuppression bool

	// fullCheck: look this row's address up against every suppression, not
	// only those added since materialisation (the subscriber was edited
	// since, or too many were added to read them all).
	fullCheck bool
}

type claimRow struct {
	id, campaign int64
	status       string
}

// ClaimDeliveries leases due deliveries to req.Node: queued and deferred
// rows whose time has come, and rows whose lease expired (their node
// crashed). It moves them to sending and returns them with the recipient's
// current data; on PostgreSQL concurrent claimers skip each other's rows.
func (s *Store) ClaimDeliveries(ctx context.Context, req ClaimRequest) ([]Claimed, error) {
	s = s.hot()
	if req.Limit <= 0 {
		return nil, nil
	}
	t := dbNow()
	// OR FAIL spares SQLite the statement journal: an error rolls the
	// whole transaction back anyway.
	update, lock := "UPDATE OR FAIL", ""
	if s.dialect == Postgres {
		update, lock = "UPDATE", " FOR UPDATE SKIP LOCKED"
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
	// Each branch leases its rows in one statement whose text never
	// changes; the old status is the branch's, so the counters need no
	// second look at the rows.
	pick := func(campaignCond string, campaignArgs []any, limit int, exclude bool) error {
		queries := []struct {
			status, cond, order string
		}{
			{DeliverySending, "status = 'sending' AND lease_until < ?", ""},
			{DeliveryDeferred, "status = 'deferred' AND next_attempt_at <= ?", " ORDER BY next_attempt_at"},
			{DeliveryQueued, "status = 'queued' AND next_attempt_at <= ?", " ORDER BY next_attempt_at"},
		}
		for _, q := range queries {
			if limit <= 0 {
				return nil
			}
			if q.status == DeliverySending && !req.Reclaim {
				continue
			}
			args := append([]any{req.Node, until}, campaignArgs...)
			args = append(args, t)
			cond := campaignCond + " AND " + q.cond
			if exclude {
				args = append(args, exclArgs...)
				cond += excl
			}
			args = append(args, limit)
			rows, err := tx.QueryContext(ctx, s.rebind(update+` deliveries SET status = 'sending', lease_node = ?, lease_until = ?
				WHERE id IN (SELECT id FROM deliveries WHERE `+cond+q.order+" LIMIT ?"+lock+`)
				RETURNING id, COALESCE(campaign_id, 0)`), args...)
			if err != nil {
				return err
			}
			for rows.Next() {
				r := claimRow{status: q.status}
				if err := rows.Scan(&r.id, &r.campaign); err != nil {
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
	delta := map[int64]*Counters{}
	for _, p := range picked {
		ids = append(ids, p.id)
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
	return out, nil
}

// idSet passes a list of ids as one parameter (a JSON array for SQLite's
// json_each, an array literal for PostgreSQL), so the statement text is the
// same whatever the list's length.
func (s *Store) idSet(ids []int64) (string, any) {
	if s.dialect == Postgres {
		return "(SELECT unnest(CAST(? AS bigint[])))", s.idArray(ids)
	}
	return "(SELECT value FROM json_each(?))", s.idArray(ids)
}

// idRows is idSet as a FROM item, rows j with a column value, to join
// against: "id IN (list)" makes SQLite sort the list into a temporary
// index first. (CROSS JOIN keeps the list the outer loop on SQLite.)
func (s *Store) idRows(ids []int64) (string, any) {
	if s.dialect == Postgres {
		return "unnest(CAST(? AS bigint[])) AS j(value)", s.idArray(ids)
	}
	return "json_each(?) AS j", s.idArray(ids)
}

// timeText selects a time column for aggTime: on SQLite as its text, which
// the driver would otherwise try to read as t.String()'s format first and
// fail at, for every row.
func (s *Store) timeText(col string) string {
	if s.dialect == Postgres {
		return col
	}
	return "CAST(" + col + " AS TEXT)"
}

// idArray writes ids as the array idSet and idRows pass.
func (s *Store) idArray(ids []int64) string {
	var b strings.Builder
	open, close := "[", "]"
	if s.dialect == Postgres {
		open, close = "{", "}"
	}
	b.WriteString(open)
	for i, id := range ids {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatInt(id, 10))
	}
	b.WriteString(close)
	return b.String()
}

func (c *Counters) add(status string, n int64) {
	switch status {
	case DeliveryQueued:
		c.Queued += n
	case DeliverySending:
		c.Sending += n
	case DeliverySent:
		c.Sent += n
	case DeliveryDeferred:
		c.Deferred += n
	case DeliveryBounced:
		c.Bounced += n
	case DeliveryFailed:
		c.Failed += n
	case DeliverySuppressed:
		c.Suppressed += n
	}
}

func (s *Store) applyCounters(ctx context.Context, tx *sql.Tx, delta map[int64]*Counters) error {
	for id, c := range delta {
		if *c == (Counters{}) {
			continue
		}
		_, err := tx.ExecContext(ctx, s.rebind(`UPDATE campaigns SET queued = queued + ?, sending = sending + ?, sent = sent + ?,
			deferred = deferred + ?, bounced = bounced + ?, failed = failed + ?, suppressed = suppressed + ? WHERE id = ?`),
			c.Queued, c.Sending, c.Sent, c.Deferred, c.Bounced, c.Failed, c.Suppressed, id)
		if err != nil {
			return err
		}
	}
	return nil
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
			     WHEN NOT EXISTS (SELECT 1 FROM subscriptions sp JOIN campaign_lists cl ON cl.list_id = sp.list_id AND cl.campaign_id = d.campaign_id
			                  WHERE sp.subscriber_id = d.subscriber_id AND sp.status <> 'unsubscribed') THEN 'unsubscribed'
			     ELSE '' END,
			CASE WHEN d.override_suppression AND d.campaign_id IS NULL THEN 2 ELSE 0 END +
			CASE WHEN d.subscriber_updated_at IS NULL OR s.updated_at <> d.subscriber_updated_at THEN 1 ELSE 0 END
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
				&c.Domain, &c.Priority, &c.Attempts, &created, &attrs, &c.Ineligible, &flags); err != nil {
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

// Outcome is the result of handling one claimed delivery.
type Outcome struct {
	ID         int64
	CampaignID int64 // 0 for transactional
	// Status is the new status. queued or deferred with Attempted false
	// releases the row unattempted (paused campaign, suspended destination).
	Status    string
	Attempted bool // an SMTP transaction (or its dial) was tried
	Code      int
	Enhanced  string
	Text      string
	MessageID string
	SourceIP  string
	MXHost    string
	// TLS is how the message crossed the network (TLSCode); 0 when that
	// is not known (no server answered, or the message was captured).
	TLS int16
	At  time.Time
	// NextAttempt is when a deferred or released row becomes due again.
	NextAttempt time.Time
	// BounceKind (hard or soft) and BounceCategory classify a bounced
	// outcome (a refusal during delivery) the way a DSN would be: the
	// bounce is applied with the outcome, by the rules of applyBounces.
	// "" records no bounce.
	BounceKind, BounceCategory string
	// BounceReason is the classifier's rule and reason for it, kept with
	// the bounce row.
	BounceReason string
}

// bounceNotice is the bounce a bounced outcome carries, if any.
func (o *Outcome) bounceNotice() (BounceNotice, bool) {
	if o.Status != DeliveryBounced || o.BounceKind == "" {
		return BounceNotice{}, false
	}
	return BounceNotice{DeliveryID: o.ID, Kind: o.BounceKind, Category: o.BounceCategory, Status: o.Enhanced,
		Diagnostic: strings.TrimSpace(strconv.Itoa(o.Code) + " " + o.Text), RemoteMTA: o.MXHost, DuringDelivery: true,
		Reason: o.BounceReason}, true
}

// RecordOutcomes writes outcomes and adjusts the campaign counters in one
// transaction. A row whose lease node is no longer node (it expired and
// another node took it) is left alone. The bounces that bounced outcomes
// carry (BounceKind) are applied in the same transaction, by applyBounces
// as for a DSN, for the rows that changed. It returns how many rows it
// updated.
func (s *Store) RecordOutcomes(ctx context.Context, node string, outs []Outcome) (int, error) {
	s = s.hot()
	if len(outs) == 0 {
		return 0, nil
	}
	tx, err := s.sql.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("models: record outcomes: %w", err)
	}
	defer tx.Rollback()
	delta := map[int64]*Counters{}
	n := 0
	// count books k rows of a campaign moved from sending to status.
	count := func(campaignID int64, status string, k int) {
		n += k
		if campaignID == 0 || k == 0 {
			return
		}
		c := delta[campaignID]
		if c == nil {
			c = &Counters{}
			delta[campaignID] = c
		}
		c.Sending -= int64(k)
		c.add(status, int64(k))
	}
	var bounces []BounceNotice
	rest := outs
	if s.dialect == SQLite {
		// The SQLite driver parses a statement again on every execution,
		// prepared or not: attempts go in multi-row UPDATEs instead, the
		// same condition for each row.
		if rest, err = s.recordAttempts(ctx, tx, node, outs, count); err != nil {
			return 0, fmt.Errorf("models: record outcomes: %w", err)
		}
	}
	if len(rest) > 0 {
		if bounces, err = s.recordOneByOne(ctx, tx, node, rest, count); err != nil {
			return 0, err
		}
	}
	if err := s.applyCounters(ctx, tx, delta); err != nil {
		return 0, fmt.Errorf("models: record outcomes: %w", err)
	}
	if len(bounces) > 0 {
		// gorm over the same transaction, as Transaction does it.
		g := s.conn(ctx).Session(&gorm.Session{NewDB: true})
		g.Statement.ConnPool = tx
		if _, err := s.applyBounces(ctx, g, bounces); err != nil {
			return 0, fmt.Errorf("models: record outcomes: apply bounces: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("models: record outcomes: %w", err)
	}
	return n, nil
}

// recordOneByOne writes outcomes one UPDATE each: releases, every outcome
// on PostgreSQL, and on SQLite bounces that carry a bounce to apply and a
// batch naming one delivery twice. It returns the bounces of the rows it
// changed.
func (s *Store) recordOneByOne(ctx context.Context, tx *sql.Tx, node string, outs []Outcome, count func(int64, string, int)) ([]BounceNotice, error) {
	attempt, err := tx.PrepareContext(ctx, s.rebind(`UPDATE deliveries SET status = ?, attempts = attempts + 1, next_attempt_at = ?,
		lease_node = '', lease_until = NULL, last_code = ?, last_enhanced = ?, last_text = ?, message_id = ?, source_ip = ?,
		mx_host = ?, tls = ?, last_attempt_at = ?, sent_at = ? WHERE id = ? AND status = 'sending' AND lease_node = ?`))
	if err != nil {
		return nil, fmt.Errorf("models: record outcomes: %w", err)
	}
	defer attempt.Close()
	release, err := tx.PrepareContext(ctx, s.rebind(`UPDATE deliveries SET status = ?, next_attempt_at = ?, lease_node = '', lease_until = NULL,
		last_text = CASE WHEN ? = '' THEN last_text ELSE ? END WHERE id = ? AND status = 'sending' AND lease_node = ?`))
	if err != nil {
		return nil, fmt.Errorf("models: record outcomes: %w", err)
	}
	defer release.Close()
	var bounces []BounceNotice
	for _, o := range outs {
		next := o.NextAttempt
		if next.IsZero() {
			next = o.At
		}
		var res sql.Result
		if o.Attempted {
			var sentAt any
			if o.Status == DeliverySent {
				sentAt = dbTime(o.At)
			}
			res, err = attempt.ExecContext(ctx, o.Status, dbTime(next), o.Code, o.Enhanced, truncate(o.Text, 500), o.MessageID,
				o.SourceIP, o.MXHost, o.TLS, dbTime(o.At), sentAt, o.ID, node)
		} else {
			res, err = release.ExecContext(ctx, o.Status, dbTime(next), o.Text, truncate(o.Text, 500), o.ID, node)
		}
		if err != nil {
			return nil, fmt.Errorf("models: record outcome of delivery %d: %w", o.ID, err)
		}
		if k, _ := res.RowsAffected(); k > 0 {
			count(o.CampaignID, o.Status, 1)
			if n, ok := o.bounceNotice(); ok {
				bounces = append(bounces, n)
			}
		}
	}
	return bounces, nil
}

// attemptChunk is how many outcomes one UPDATE carries.
const attemptChunk = 512

// sqliteTimeLayout is how the SQLite driver writes a time.Time parameter;
// times passed inside JSON must read back the same.
const sqliteTimeLayout = "2006-01-02 15:04:05.999999999-07:00"

// recordAttemptsSQL applies a JSON array of attempts of one new status
// (the first two parameters), one array per row: [id, next_attempt_at,
// code×100 + tls, enhanced, text, message_id, source_ip, mx_host,
// last_attempt_at]. The TLS state (< 100, see TLSCode) rides in the reply
// code's field: integer arithmetic is nearly free where one more ->> is
// not.
// Its text never changes, so one parse serves a whole chunk (the SQLite
// driver parses a statement on every execution, prepared or not). An
// UPDATE with FROM keeps a statement journal even under OR FAIL; the
// queue connection keeps it in memory (see Open). jsonb_each hands each row's array over as
// JSONB, which ->> reads in place; json_each would print it as text for
// ->> to parse again, a third of the statement's cost. Each ->> costs
// about a third of a microsecond: what a chunk shares is a parameter.
const recordAttemptsSQL = `UPDATE OR FAIL deliveries SET status = ?, tls = v.code % 100, attempts = attempts + 1, next_attempt_at = v.next,
	lease_node = '', lease_until = NULL, last_code = v.code / 100, last_enhanced = v.enhanced, last_text = v.text,
	message_id = v.message_id, source_ip = v.source_ip, mx_host = v.mx_host, last_attempt_at = v.at,
	sent_at = CASE WHEN ? = 'sent' THEN v.at END
	FROM (SELECT value->>0 AS id, value->>1 AS next, value->>2 AS code, value->>3 AS enhanced, value->>4 AS text,
		value->>5 AS message_id, value->>6 AS source_ip, value->>7 AS mx_host, value->>8 AS at FROM jsonb_each(?)) AS v
	WHERE deliveries.id = v.id AND deliveries.status = 'sending' AND deliveries.lease_node = ?`

// attemptsBuf holds recordAttempts' JSON between calls: a chunk's is
// about 150 KB.
var attemptsBuf = sync.Pool{New: func() any { return new([]byte) }}

// recordAttempts writes the attempted outcomes among outs (SQLite) and
// counts the rows it changed. Attempts go in groups of one campaign and
// one new status, so each UPDATE's count of changed rows is all the
// counters need (RETURNING a row at a time cost more than the UPDATE). It
// returns the outcomes left for the row-by-row path: releases, bounces
// that carry a bounce to apply (which must know whether their row
// changed), and every outcome when one delivery appears twice in outs (one
// UPDATE would apply only one of them).
func (s *Store) recordAttempts(ctx context.Context, tx *sql.Tx, node string, outs []Outcome, count func(int64, string, int)) ([]Outcome, error) {
	type group struct {
		campaign int64
		status   string
	}
	seen := make(map[int64]bool, len(outs))
	groups := map[group][]int{}
	var order []group
	var rest []Outcome
	for i := range outs {
		if seen[outs[i].ID] {
			return outs, nil
		}
		seen[outs[i].ID] = true
		if _, ok := outs[i].bounceNotice(); !outs[i].Attempted || ok {
			// A bounce to apply needs to know its row changed: rare
			// enough to take the row-by-row path.
			rest = append(rest, outs[i])
			continue
		}
		g := group{outs[i].CampaignID, outs[i].Status}
		if groups[g] == nil {
			order = append(order, g)
		}
		groups[g] = append(groups[g], i)
	}
	pb := attemptsBuf.Get().(*[]byte)
	b := *pb
	defer func() { *pb = b[:0]; attemptsBuf.Put(pb) }()
	str := func(v string) {
		b = appendJSONString(b, strings.ToValidUTF8(v, "\uFFFD"))
		b = append(b, ',')
	}
	at := func(t time.Time) {
		b = append(b, '"')
		b = dbTime(t).AppendFormat(b, sqliteTimeLayout)
		b = append(b, '"', ',')
	}
	for _, g := range order {
		attempts := groups[g]
		for len(attempts) > 0 {
			k := min(len(attempts), attemptChunk)
			b = append(b[:0], '[')
			for j, i := range attempts[:k] {
				if j > 0 {
					b = append(b, ',')
				}
				o := &outs[i]
				next := o.NextAttempt
				if next.IsZero() {
					next = o.At
				}
				b = append(b, '[')
				b = strconv.AppendInt(b, o.ID, 10)
				b = append(b, ',')
				at(next)
				b = strconv.AppendInt(b, int64(o.Code)*100+int64(o.TLS), 10)
				b = append(b, ',')
				str(o.Enhanced)
				str(truncate(o.Text, 500))
				str(o.MessageID)
				str(o.SourceIP)
				str(o.MXHost)
				at(o.At)
				b[len(b)-1] = ']'
			}
			b = append(b, ']')
			res, err := tx.ExecContext(ctx, recordAttemptsSQL, g.status, g.status, string(b), node)
			if err != nil {
				return nil, err
			}
			changed, err := res.RowsAffected()
			if err != nil {
				return nil, err
			}
			count(g.campaign, g.status, int(changed))
			attempts = attempts[k:]
		}
	}
	return rest, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// RenewLeases extends the leases node holds on the given deliveries.
func (s *Store) RenewLeases(ctx context.Context, node string, ids []int64, lease time.Duration) error {
	s = s.hot()
	until := dbTime(now().Add(lease))
	for len(ids) > 0 {
		n := min(len(ids), 500)
		err := s.conn(ctx).Exec("UPDATE deliveries SET lease_until = ? WHERE id IN ? AND status = 'sending' AND lease_node = ?",
			until, ids[:n], node).Error
		if err != nil {
			return fmt.Errorf("models: renew leases: %w", err)
		}
		ids = ids[n:]
	}
	return nil
}

// ExpireNodeLeases makes every lease node still holds reclaimable at once; a
// node calls it when it starts, since whatever it held before belonged to a
// previous life of the process.
func (s *Store) ExpireNodeLeases(ctx context.Context, node string) (int64, error) {
	s = s.hot()
	past := dbTime(now().Add(-time.Second))
	res := s.conn(ctx).Exec(`UPDATE deliveries SET lease_until = ? WHERE status = 'sending' AND lease_node = ? AND
		(campaign_id IS NULL OR campaign_id IN (SELECT id FROM campaigns WHERE status IN ('running', 'paused')))`, past, node)
	if res.Error != nil {
		return 0, fmt.Errorf("models: expire leases of %s: %w", node, res.Error)
	}
	return res.RowsAffected, nil
}

// TransactionalMessage is a transactional send waiting in the deliveries
// table.
type TransactionalMessage struct {
	TemplateID int64
	Email      string // normalised address
	Name       string
	Data       string // JSON object handed to the template as .Data
	// OverrideSuppression sends even to a suppressed address (password
	// resets, receipts): the caller's explicit choice, kept on the row.
	OverrideSuppression bool
}

// EnqueueTransactional stores a transactional delivery, due now, ahead of
// campaign traffic, and returns its id.
func (s *Store) EnqueueTransactional(ctx context.Context, m TransactionalMessage) (int64, error) {
	s = s.hot() // a writer of deliveries, like the mailer (see Store.queue)
	t := dbNow()
	d := &Delivery{TemplateID: &m.TemplateID, Email: m.Email, Name: m.Name, Data: m.Data, Domain: strings.ToLower(EmailDomain(m.Email)),
		Priority: PriorityTransactional, Status: DeliveryQueued, NextAttemptAt: t, CreatedAt: t, OverrideSuppression: m.OverrideSuppression}
	if d.Data == "" {
		d.Data = "{}"
	}
	if err := s.conn(ctx).Create(d).Error; err != nil {
		return 0, fmt.Errorf("models: enqueue transactional: %w", err)
	}
	return d.ID, nil
}

// SentFromIPSince counts the deliveries sent from a source address since t
// (the warm-up cap counts today's sends).
func (s *Store) SentFromIPSince(ctx context.Context, ip string, t time.Time) (int64, error) {
	var n int64
	err := s.conn(ctx).Raw("SELECT COUNT(*) FROM deliveries WHERE source_ip = ? AND sent_at >= ?", ip, dbTime(t)).Scan(&n).Error
	if err != nil {
		return 0, fmt.Errorf("models: sent from %s: %w", ip, err)
	}
	return n, nil
}
