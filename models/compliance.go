package models

import (
	"context"
	"fmt"
	"strings"
	"time"

	"gorm.io/gorm"
)

// SettingComplianceMarketers says whether marketers may read the compliance
// centre: "read", or anything else (the default) for no access. Only admins
// ever change anything there.
const SettingComplianceMarketers = "compliance_marketers"

// ComplianceMarketersRead is the value of SettingComplianceMarketers that
// lets marketers read the compliance centre.
const ComplianceMarketersRead = "read"

// ConsentQuery selects ledger rows. Zero fields do not filter.
type ConsentQuery struct {
	SubscriberID int64
	ListID       int64
	Email        string // the address as recorded, any case
	Source       string
	LawfulBasis  string
	Action       string
	From         time.Time // rows written at or after From
	To           time.Time // rows written before To
	Before       int64     // cursor of ConsentPage: only ids below this
	Limit        int       // page size of ConsentPage, default 50
}

// ConsentEntry is a ledger row with the name of its list.
type ConsentEntry struct {
	Consent
	ListName string
}

// where is q's filter as SQL on consents c.
func (q ConsentQuery) where() (string, []any) {
	conds := []string{"1 = 1"}
	var args []any
	add := func(cond string, arg any) { conds = append(conds, cond); args = append(args, arg) }
	if q.SubscriberID != 0 {
		add("c.subscriber_id = ?", q.SubscriberID)
	}
	if q.ListID != 0 {
		add("c.list_id = ?", q.ListID)
	}
	if e := strings.ToLower(strings.TrimSpace(q.Email)); e != "" {
		add("lower(c.email) = ?", e)
	}
	if q.Source != "" {
		add("c.source = ?", q.Source)
	}
	if q.LawfulBasis != "" {
		add("c.lawful_basis = ?", q.LawfulBasis)
	}
	if q.Action != "" {
		add("c.action = ?", q.Action)
	}
	if !q.From.IsZero() {
		add("c.created_at >= ?", dbTime(q.From))
	}
	if !q.To.IsZero() {
		add("c.created_at < ?", dbTime(q.To))
	}
	return strings.Join(conds, " AND "), args
}

const consentEntryColumns = "c.*, COALESCE(l.name, '') AS list_name"

// ConsentPage returns one page of the ledger rows q selects, newest first,
// and the cursor of the next page (0 on the last one).
func (s *Store) ConsentPage(ctx context.Context, q ConsentQuery) ([]ConsentEntry, int64, error) {
	if q.Limit <= 0 || q.Limit > 500 {
		q.Limit = 50
	}
	where, args := q.where()
	if q.Before > 0 {
		where += " AND c.id < ?"
		args = append(args, q.Before)
	}
	var rows []ConsentEntry
	err := s.conn(ctx).Raw("SELECT "+consentEntryColumns+" FROM consents c LEFT JOIN lists l ON l.id = c.list_id WHERE "+
		where+" ORDER BY c.id DESC LIMIT ?", append(args, q.Limit+1)...).Scan(&rows).Error
	if err != nil {
		return nil, 0, fmt.Errorf("models: consent page: %w", err)
	}
	var next int64
	if len(rows) > q.Limit {
		rows = rows[:q.Limit]
		next = rows[q.Limit-1].ID
	}
	return rows, next, nil
}

// streamPage is how many rows the streaming readers fetch per query.
const streamPage = 1000

// EachConsent calls fn for every ledger row q selects (its Before and Limit
// are ignored), oldest first, reading one page at a time so an export of the
// whole ledger does not sit in memory.
func (s *Store) EachConsent(ctx context.Context, q ConsentQuery, fn func(*ConsentEntry) error) error {
	where, args := q.where()
	var after int64
	for {
		var rows []ConsentEntry
		err := s.conn(ctx).Raw("SELECT "+consentEntryColumns+" FROM consents c LEFT JOIN lists l ON l.id = c.list_id WHERE "+
			where+" AND c.id > ? ORDER BY c.id LIMIT ?", append(append([]any{}, args...), after, streamPage)...).Scan(&rows).Error
		if err != nil {
			return fmt.Errorf("models: consents: %w", err)
		}
		for i := range rows {
			if err := fn(&rows[i]); err != nil {
				return err
			}
		}
		if len(rows) < streamPage {
			return nil
		}
		after = rows[len(rows)-1].ID
	}
}

// basisCond is true for a live membership m (subscriptions m) that rests on
// a valid lawful basis, recorded in the ledger after the last withdrawal
// from that list: a double opt-in the subscriber confirmed themselves; a
// consent with evidence (a consent text hash, a page, an IP not an admin's,
// or a described source such as an import's); or a declared legitimate
// interest, contract or legal obligation with the note that justifies it.
const basisCond = `EXISTS (SELECT 1 FROM consents c
	WHERE c.subscriber_id = m.subscriber_id AND c.list_id = m.list_id
	AND ((c.action = 'confirmed' AND c.source <> 'admin')
		OR (c.action IN ('granted', 'imported') AND (
			(c.lawful_basis = 'consent' AND (c.text_hash <> '' OR c.page <> '' OR c.note <> '' OR (c.ip <> '' AND c.source <> 'admin')))
			OR (c.lawful_basis IN ('legitimate_interest', 'contract', 'legal_obligation') AND c.note <> ''))))
	AND NOT EXISTS (SELECT 1 FROM consents w WHERE w.subscriber_id = c.subscriber_id AND w.list_id = c.list_id
		AND w.action = 'withdrawn' AND w.id > c.id))`

// ListCoverage counts one list's live members (unconfirmed or confirmed) by
// whether a valid lawful basis is on record for them.
type ListCoverage struct {
	ListID  int64
	Name    string
	Optin   string
	Live    int64
	Covered int64
}

// Lacking is the number of live members with no valid basis on record.
func (c ListCoverage) Lacking() int64 { return c.Live - c.Covered }

// ConsentCoverage returns the coverage of every list, by name.
func (s *Store) ConsentCoverage(ctx context.Context) ([]ListCoverage, error) {
	var out []ListCoverage
	err := s.conn(ctx).Raw(`SELECT l.id AS list_id, l.name, l.optin, count(m.subscriber_id) AS live,
		COALESCE(sum(CASE WHEN ` + basisCond + ` THEN 1 ELSE 0 END), 0) AS covered
		FROM lists l LEFT JOIN subscriptions m ON m.list_id = l.id AND m.status <> 'unsubscribed'
		WHERE l.kind = 'list'
		GROUP BY l.id, l.name, l.optin ORDER BY lower(l.name), l.id`).Scan(&out).Error
	if err != nil {
		return nil, fmt.Errorf("models: consent coverage: %w", err)
	}
	return out, nil
}

// LackingMember is a live member of a list with no valid basis on record.
type LackingMember struct {
	SubscriberID int64
	Email        string
	Name         string
	Status       string // the subscription's status
	CreatedAt    time.Time
}

// LackingBasis returns up to limit live members of list without a valid
// basis, by subscriber id from after (exclusive), and the cursor of the next
// page (0 on the last one).
func (s *Store) LackingBasis(ctx context.Context, listID, after int64, limit int) ([]LackingMember, int64, error) {
	if limit <= 0 || limit > 1000 {
		limit = 50
	}
	rows, err := s.lackingBasis(s.conn(ctx), listID, after, limit+1)
	if err != nil {
		return nil, 0, fmt.Errorf("models: lacking basis on list %d: %w", listID, err)
	}
	var next int64
	if len(rows) > limit {
		rows = rows[:limit]
		next = rows[limit-1].SubscriberID
	}
	return rows, next, nil
}

func (s *Store) lackingBasis(db *gorm.DB, listID, after int64, limit int) ([]LackingMember, error) {
	var rows []LackingMember
	err := db.Raw(`SELECT m.subscriber_id, b.email, b.name, m.status, m.created_at
		FROM subscriptions m JOIN subscribers b ON b.id = m.subscriber_id
		WHERE m.list_id = ? AND m.status <> 'unsubscribed' AND m.subscriber_id > ? AND NOT `+basisCond+`
		ORDER BY m.subscriber_id LIMIT ?`, listID, after, limit).Scan(&rows).Error
	return rows, err
}

// EachLackingBasis calls fn for every live member of list without a valid
// basis, a page at a time.
func (s *Store) EachLackingBasis(ctx context.Context, listID int64, fn func(*LackingMember) error) error {
	var after int64
	for {
		rows, err := s.lackingBasis(s.conn(ctx), listID, after, streamPage)
		if err != nil {
			return fmt.Errorf("models: lacking basis on list %d: %w", listID, err)
		}
		for i := range rows {
			if err := fn(&rows[i]); err != nil {
				return err
			}
		}
		if len(rows) < streamPage {
			return nil
		}
		after = rows[len(rows)-1].SubscriberID
	}
}

// UnsubscribeLacking unsubscribes every live member of list that has no
// valid basis on record, writing a withdrawal to the ledger for each, in
// transactions of a thousand. It returns how many were unsubscribed.
func (s *Store) UnsubscribeLacking(ctx context.Context, listID int64, ev Evidence) (int64, error) {
	if _, err := s.List(ctx, listID); err != nil {
		return 0, err
	}
	var done, after int64
	for {
		var n int
		err := s.tx(ctx, func(tx *gorm.DB) error {
			rows, err := s.lackingBasis(tx, listID, after, streamPage)
			if err != nil {
				return err
			}
			n = len(rows)
			if n == 0 {
				return nil
			}
			ids := make([]int64, n)
			ledger := make([]Consent, n)
			for i, r := range rows {
				ids[i] = r.SubscriberID
				ledger[i] = ev.row(ConsentWithdrawn, r.SubscriberID, listID, r.Email)
			}
			if err := tx.Exec("UPDATE subscriptions SET status = ?, updated_at = ? WHERE list_id = ? AND subscriber_id IN ?",
				SubUnsubscribed, dbNow(), listID, ids).Error; err != nil {
				return err
			}
			after = ids[n-1]
			return s.appendConsents(tx, ledger)
		})
		if err != nil {
			return done, fmt.Errorf("models: unsubscribe lacking basis on list %d: %w", listID, err)
		}
		done += int64(n)
		if n < streamPage {
			return done, nil
		}
	}
}

// PersonMatch is one answer to a search for a person: a subscriber, or an
// address known only from the ledger or from deliveries (a subscriber that
// was deleted, a transactional recipient).
type PersonMatch struct {
	SubscriberID int64 // 0 when no subscriber has the address
	Email        string
	Name         string
	Status       string
	Consents     int64 // ledger rows under the address or subscriber
	Deliveries   int64
	// LedgerSubscriberID is the subscriber id the ledger rows were written
	// under, for addresses whose subscriber is gone; 0 when unknown.
	LedgerSubscriberID int64
}

// FindPeople looks a person up by address or name across subscribers (by
// prefix, up to limit), and by exact address across the consent ledger and
// deliveries, so someone deleted earlier is still found.
func (s *Store) FindPeople(ctx context.Context, term string, limit int) ([]PersonMatch, error) {
	term = strings.TrimSpace(term)
	if term == "" {
		return nil, nil
	}
	page, err := s.SearchSubscribers(ctx, SubscriberQuery{Search: term, Limit: limit})
	if err != nil {
		return nil, err
	}
	db := s.conn(ctx)
	var out []PersonMatch
	seen := map[string]bool{}
	for _, r := range page.Rows {
		m := PersonMatch{SubscriberID: r.ID, Email: r.Email, Name: r.Name, Status: r.Status}
		if m.Consents, m.Deliveries, err = s.SubscriberFootprint(ctx, r.ID); err != nil {
			return nil, err
		}
		seen[strings.ToLower(r.Email)] = true
		out = append(out, m)
	}
	email := strings.ToLower(term)
	if !strings.Contains(email, "@") || seen[email] {
		return out, nil
	}
	var ledger struct {
		N   int64
		Sub *int64
	}
	if err := db.Raw("SELECT count(*) AS n, max(subscriber_id) AS sub FROM consents WHERE lower(email) = ?", email).Scan(&ledger).Error; err != nil {
		return nil, fmt.Errorf("models: find people: %w", err)
	}
	var deliveries int64
	if err := db.Raw("SELECT count(*) FROM deliveries WHERE lower(email) = ?", email).Scan(&deliveries).Error; err != nil {
		return nil, fmt.Errorf("models: find people: %w", err)
	}
	if ledger.N > 0 || deliveries > 0 {
		m := PersonMatch{Email: email, Status: "not a subscriber", Consents: ledger.N, Deliveries: deliveries}
		if ledger.Sub != nil {
			m.LedgerSubscriberID = *ledger.Sub
		}
		out = append(out, m)
	}
	return out, nil
}

// AuditQuery selects audit entries. Zero fields do not filter.
type AuditQuery struct {
	Actor        string // exact, any case
	ActionPrefix string // e.g. "subscriber." or "subscriber.erase"
	ObjectType   string
	From, To     time.Time
	Before       int64 // cursor of AuditPage
	Limit        int   // page size of AuditPage, default 50
}

func (q AuditQuery) where() (string, []any) {
	conds := []string{"1 = 1"}
	var args []any
	add := func(cond string, arg any) { conds = append(conds, cond); args = append(args, arg) }
	if a := strings.TrimSpace(q.Actor); a != "" {
		add("lower(actor) = ?", strings.ToLower(a))
	}
	if p := strings.TrimSpace(q.ActionPrefix); p != "" {
		add(`action LIKE ? ESCAPE '\'`, likePrefix(p))
	}
	if q.ObjectType != "" {
		add("object_type = ?", q.ObjectType)
	}
	if !q.From.IsZero() {
		add("created_at >= ?", dbTime(q.From))
	}
	if !q.To.IsZero() {
		add("created_at < ?", dbTime(q.To))
	}
	return strings.Join(conds, " AND "), args
}

// AuditPage returns one page of the entries q selects, newest first, and the
// cursor of the next page (0 on the last one).
func (s *Store) AuditPage(ctx context.Context, q AuditQuery) ([]AuditEntry, int64, error) {
	if q.Limit <= 0 || q.Limit > 500 {
		q.Limit = 50
	}
	where, args := q.where()
	if q.Before > 0 {
		where += " AND id < ?"
		args = append(args, q.Before)
	}
	var rows []AuditEntry
	if err := s.conn(ctx).Where(where, args...).Order("id DESC").Limit(q.Limit + 1).Find(&rows).Error; err != nil {
		return nil, 0, fmt.Errorf("models: audit page: %w", err)
	}
	var next int64
	if len(rows) > q.Limit {
		rows = rows[:q.Limit]
		next = rows[q.Limit-1].ID
	}
	return rows, next, nil
}

// EachAudit calls fn for every entry q selects, newest first, a page at a
// time.
func (s *Store) EachAudit(ctx context.Context, q AuditQuery, fn func(*AuditEntry) error) error {
	q.Limit, q.Before = streamPage, 0
	for {
		rows, next, err := s.AuditPage(ctx, q)
		if err != nil {
			return err
		}
		for i := range rows {
			if err := fn(&rows[i]); err != nil {
				return err
			}
		}
		if next == 0 {
			return nil
		}
		q.Before = next
	}
}

// AuditObjectTypes returns the object types that occur in the audit log,
// for the filter's choices.
func (s *Store) AuditObjectTypes(ctx context.Context) ([]string, error) {
	var out []string
	if err := s.conn(ctx).Raw("SELECT DISTINCT object_type FROM audit_log ORDER BY object_type").Scan(&out).Error; err != nil {
		return nil, fmt.Errorf("models: audit object types: %w", err)
	}
	return out, nil
}

// CSVSafe guards a cell of a CSV export against formula injection (a leading
// =, +, -, @, tab or CR gets a quote); imports undo it.
func CSVSafe(v string) string { return csvSafe(v) }

// SubscriberFootprint counts a subscriber's consent events and deliveries,
// for the erasure confirmation.
func (s *Store) SubscriberFootprint(ctx context.Context, id int64) (consents, deliveries int64, err error) {
	db := s.conn(ctx)
	if err = db.Raw("SELECT count(*) FROM consents WHERE subscriber_id = ?", id).Scan(&consents).Error; err == nil {
		err = db.Raw("SELECT count(*) FROM deliveries WHERE subscriber_id = ?", id).Scan(&deliveries).Error
	}
	if err != nil {
		return 0, 0, fmt.Errorf("models: footprint of subscriber %d: %w", id, err)
	}
	return consents, deliveries, nil
}
