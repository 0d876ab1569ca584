package models

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"gorm.io/gorm"
)

// erasedDomain replaces the recipient domain of an erased person's
// deliveries: a personal domain can identify someone as well as the address.
const erasedDomain = "erased.invalid"

// erasedMarker stands in for the address where it appeared inside free text
// (audit summaries, SMTP diagnostics).
const erasedMarker = "[erased]"

// EraseSubscriber removes a person's personal data from every table, in one
// transaction: the subscriber row and memberships go; deliveries, events and
// bounces stay for the campaign numbers but lose every personal field;
// captured messages and import errors naming them are deleted; the consent
// ledger's rows keep their hash (the chain still verifies) but their
// personal columns are blanked, and an "erased" row per list records that it
// happened; the address stays suppressed only as a hash, so a later import
// cannot bring it back by mistake. ev says who did it; its IP and user agent
// are not stored, because the subject may be the one erasing.
//
// The preference centre and the compliance centre both call this: one
// implementation of erasure.
func (s *Store) EraseSubscriber(ctx context.Context, id int64, ev Evidence) error {
	err := s.tx(ctx, func(tx *gorm.DB) error { return s.eraseTx(tx, id, ev) })
	if err != nil {
		return fmt.Errorf("models: erase subscriber %d: %w", id, err)
	}
	return nil
}

// eraseTx is EraseSubscriber inside tx, for workflows that erase as one
// step of their transaction (EraseForRequest).
func (s *Store) eraseTx(tx *gorm.DB, id int64, ev Evidence) error {
	var sub Subscriber
	if err := tx.First(&sub, id).Error; err != nil {
		return notFound(err)
	}
	email := strings.ToLower(sub.Email)
	// Every address the person had: rectified ones live on in the
	// ledger, data-request log and audit summaries.
	var former []string
	if err := tx.Raw(`SELECT DISTINCT email FROM consents WHERE subscriber_id = ? AND email <> ''
		UNION SELECT DISTINCT subject_email FROM dsr_requests WHERE subscriber_id = ? AND subject_email <> ''`,
		id, id).Scan(&former).Error; err != nil {
		return err
	}
	addresses := []string{email}
	for _, a := range former {
		addresses = uniq(append(addresses, strings.ToLower(a))...)
	}
	hashes := make([]string, len(addresses))
	for i, a := range addresses {
		hashes[i] = SuppressionHash(a)
	}

	var lists []int64
	if err := tx.Raw("SELECT list_id FROM subscriptions WHERE subscriber_id = ?", id).Scan(&lists).Error; err != nil {
		return err
	}
	var deliveries []int64
	if err := tx.Raw("SELECT id FROM deliveries WHERE subscriber_id = ? OR lower(email) IN ?", id, addresses).
		Scan(&deliveries).Error; err != nil {
		return err
	}

	type step struct {
		sql  string
		args []any
	}
	steps := []step{
		// The ledger: tombstones. pii_digest already holds the hash of
		// the personal columns, so the chain verifies without them.
		{`UPDATE consents SET email = '', ip = '', user_agent = '', page = ''
			WHERE subscriber_id = ? OR lower(email) IN ?`, []any{id, addresses}},
		{`DELETE FROM subscriptions WHERE subscriber_id = ?`, []any{id}},
		{`UPDATE events SET ip = '', user_agent = '', subscriber_id = NULL WHERE subscriber_id = ?`, []any{id}},
		{`UPDATE bounces SET diagnostic = '', remote_mta = '', subscriber_id = NULL WHERE subscriber_id = ?`, []any{id}},
		{`DELETE FROM outbox WHERE lower(rcpt_to) IN ?`, []any{addresses}},
		// Outgoing webhook events about them, sent or not.
		{`DELETE FROM webhook_attempts WHERE delivery_id IN (SELECT id FROM webhook_deliveries WHERE subscriber_id = ?)`, []any{id}},
		{`DELETE FROM webhook_deliveries WHERE subscriber_id = ?`, []any{id}},
		{`DELETE FROM import_errors WHERE lower(email) IN ?`, []any{addresses}},
		// Suppressions under the plain address become hash-only.
		{`UPDATE suppressions SET value = '', note = '' WHERE value_hash IN ?`, []any{hashes}},
		// Data-subject requests stay, findable by the address's hash.
		{`UPDATE dsr_requests SET subject_email = '' WHERE subscriber_id = ? OR subject_hash IN ?`, []any{id, hashes}},
		{`INSERT INTO suppressions (kind, value, value_hash, reason, note, created_at)
			VALUES ('address', '', ?, ?, '', ?) ON CONFLICT (value_hash) DO NOTHING`,
			[]any{SuppressionHash(email), SuppressErased, dbNow()}},
	}
	// Audit summaries may quote the address as it was typed, and the
	// name (when it is long enough not to match ordinary words).
	forms := uniq(append([]string{sub.Email}, append(former, addresses...)...)...)
	if name := strings.TrimSpace(sub.Name); len(name) >= 4 {
		forms = append(forms, name)
	}
	for _, form := range forms {
		steps = append(steps, step{`UPDATE audit_log SET summary = replace(summary, ?, ?) WHERE summary LIKE ? ESCAPE '\'`,
			[]any{form, erasedMarker, "%" + likeEscaper.Replace(form) + "%"}})
	}
	for _, st := range steps {
		if err := tx.Exec(st.sql, st.args...).Error; err != nil {
			return err
		}
	}
	for ids := range slices.Chunk(deliveries, 500) {
		if err := s.deliveries().erase(tx, ids, erasedDomain); err != nil {
			return err
		}
		if err := tx.Exec(`UPDATE bounces SET diagnostic = '', remote_mta = '' WHERE delivery_id IN ?`, ids).Error; err != nil {
			return err
		}
		if err := tx.Exec(`UPDATE events SET ip = '', user_agent = '', subscriber_id = NULL WHERE delivery_id IN ?`, ids).Error; err != nil {
			return err
		}
		if err := tx.Exec(`DELETE FROM outbox WHERE delivery_id IN ?`, ids).Error; err != nil {
			return err
		}
	}
	if err := tx.Exec("DELETE FROM subscribers WHERE id = ?", id).Error; err != nil {
		return err
	}

	// The record that erasure happened, per list, and once for the
	// person when they were on none: no personal columns.
	clean := Evidence{Source: ev.Source, Actor: ev.Actor, Note: ev.Note}
	if len(lists) == 0 {
		lists = []int64{0}
	}
	rows := make([]Consent, 0, len(lists))
	for _, l := range lists {
		rows = append(rows, clean.row(ConsentErased, id, l, ""))
	}
	return s.appendConsents(tx, rows)
}

// uniq returns its arguments without repeats.
func uniq(ss ...string) []string {
	var out []string
	for _, s := range ss {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// SubjectData is everything Herald holds on one person: the answer to an
// access or portability request, and the preference centre's download.
type SubjectData struct {
	ExportedAt  time.Time          `json:"exported_at"`
	Profile     SubjectProfile     `json:"profile"`
	Memberships []SubjectMember    `json:"memberships"`
	Consents    []SubjectConsent   `json:"consents"`
	Deliveries  []SubjectDelivery  `json:"deliveries"`
	Events      []SubjectEvent     `json:"events"`
	Bounces     []SubjectBounce    `json:"bounces"`
	Suppression *SubjectSuppressed `json:"suppression,omitempty"`
}

// SubjectProfile is the subscriber row.
type SubjectProfile struct {
	ID         int64      `json:"id"`
	Email      string     `json:"email"`
	Name       string     `json:"name"`
	Attributes Attributes `json:"attributes"`
	Status     string     `json:"status"`
	CreatedAt  time.Time  `json:"created_at"`
	UpdatedAt  time.Time  `json:"updated_at"`
}

// SubjectMember is one list membership.
type SubjectMember struct {
	ListID    int64     `json:"list_id"`
	List      string    `json:"list"`
	Status    string    `json:"status"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// SubjectConsent is one ledger row about the person.
type SubjectConsent struct {
	ID          int64     `json:"id"`
	ListID      *int64    `json:"list_id"`
	List        string    `json:"list,omitempty"`
	Action      string    `json:"action"`
	LawfulBasis string    `json:"lawful_basis"`
	Source      string    `json:"source"`
	IP          string    `json:"ip,omitempty"`
	UserAgent   string    `json:"user_agent,omitempty"`
	Page        string    `json:"page,omitempty"`
	TextHash    string    `json:"consent_text_sha256,omitempty"`
	Actor       string    `json:"actor,omitempty"`
	Note        string    `json:"note,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
}

// SubjectDelivery is one message sent, or meant to be sent, to the person.
type SubjectDelivery struct {
	ID         int64      `json:"id"`
	CampaignID *int64     `json:"campaign_id,omitempty"`
	Campaign   string     `json:"campaign,omitempty"`
	Status     string     `json:"status"`
	MessageID  string     `json:"message_id,omitempty"`
	SentAt     *time.Time `json:"sent_at,omitempty"`
	CreatedAt  time.Time  `json:"created_at"`
}

// SubjectEvent is one open, click or unsubscribe.
type SubjectEvent struct {
	Kind       string    `json:"kind"`
	DeliveryID int64     `json:"delivery_id"`
	URL        string    `json:"url,omitempty"`
	IP         string    `json:"ip,omitempty"`
	UserAgent  string    `json:"user_agent,omitempty"`
	Machine    bool      `json:"machine"`
	CreatedAt  time.Time `json:"created_at"`
}

// SubjectBounce is one bounce or complaint about the person's mail.
type SubjectBounce struct {
	Kind       string    `json:"kind"`
	Category   string    `json:"category"`
	Status     string    `json:"status"`
	Diagnostic string    `json:"diagnostic"`
	CreatedAt  time.Time `json:"created_at"`
}

// SubjectSuppressed says the address is on the suppression list and why.
type SubjectSuppressed struct {
	Reason    string    `json:"reason"`
	CreatedAt time.Time `json:"created_at"`
}

// SubjectExport gathers everything Herald holds on subscriber id.
func (s *Store) SubjectExport(ctx context.Context, id int64) (*SubjectData, error) {
	db := s.conn(ctx)
	var sub Subscriber
	if err := db.First(&sub, id).Error; err != nil {
		return nil, notFound(err)
	}
	out := &SubjectData{
		ExportedAt: now().UTC(),
		Profile: SubjectProfile{ID: sub.ID, Email: sub.Email, Name: sub.Name, Attributes: sub.Attributes,
			Status: sub.Status, CreatedAt: sub.CreatedAt, UpdatedAt: sub.UpdatedAt},
		Memberships: []SubjectMember{}, Consents: []SubjectConsent{}, Deliveries: []SubjectDelivery{},
		Events: []SubjectEvent{}, Bounces: []SubjectBounce{},
	}
	email := strings.ToLower(sub.Email)
	queries := []struct {
		dest any
		sql  string
		args []any
	}{
		{&out.Memberships, `SELECT s.list_id, l.name AS list, s.status, s.created_at, s.updated_at
			FROM subscriptions s JOIN lists l ON l.id = s.list_id WHERE s.subscriber_id = ? ORDER BY s.list_id`, []any{id}},
		{&out.Consents, `SELECT c.id, c.list_id, COALESCE(l.name, '') AS list, c.action, c.lawful_basis, c.source,
			c.ip, c.user_agent, c.page, c.text_hash, c.actor, c.note, c.created_at
			FROM consents c LEFT JOIN lists l ON l.id = c.list_id
			WHERE c.subscriber_id = ? OR lower(c.email) = ? ORDER BY c.id`, []any{id, email}},
		{&out.Deliveries, `SELECT d.id, d.campaign_id, COALESCE(c.name, '') AS campaign, d.status, d.message_id, d.sent_at, d.created_at
			FROM deliveries d LEFT JOIN campaigns c ON c.id = d.campaign_id
			WHERE d.subscriber_id = ? OR lower(d.email) = ? ORDER BY d.id`, []any{id, email}},
		{&out.Events, `SELECT e.kind, e.delivery_id, COALESCE(k.url, '') AS url, e.ip, e.user_agent, e.machine, e.created_at
			FROM events e LEFT JOIN links k ON k.id = e.link_id WHERE e.subscriber_id = ? ORDER BY e.id`, []any{id}},
		{&out.Bounces, `SELECT kind, category, status, diagnostic, created_at FROM bounces
			WHERE subscriber_id = ? ORDER BY id`, []any{id}},
	}
	for _, q := range queries {
		if err := db.Raw(q.sql, q.args...).Scan(q.dest).Error; err != nil {
			return nil, fmt.Errorf("models: subject export %d: %w", id, err)
		}
	}
	var sup []SubjectSuppressed
	if err := db.Raw("SELECT reason, created_at FROM suppressions WHERE value_hash = ?", SuppressionHash(email)).
		Scan(&sup).Error; err != nil {
		return nil, fmt.Errorf("models: subject export %d: %w", id, err)
	}
	if len(sup) > 0 {
		out.Suppression = &sup[0]
	}
	return out, nil
}
