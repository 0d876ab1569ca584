package models

import (
	"bytes"
	"context"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"gorm.io/gorm"
)

// Subscriber statuses and subscription statuses.
const (
	SubscriberActive      = "active"
	SubscriberBlocklisted = "blocklisted"
	SubscriberErased      = "erased"

	SubUnconfirmed  = "unconfirmed"
	SubConfirmed    = "confirmed"
	SubUnsubscribed = "unsubscribed"
)

// Attributes are a subscriber's free-form JSON fields.
type Attributes map[string]any

// Value stores attributes as JSON text.
func (a Attributes) Value() (driver.Value, error) {
	if a == nil {
		return "{}", nil
	}
	b, err := json.Marshal(a)
	return string(b), err
}

// Scan reads attributes from JSON text.
func (a *Attributes) Scan(v any) error {
	var b []byte
	switch t := v.(type) {
	case string:
		b = []byte(t)
	case []byte:
		b = t
	case nil:
		*a = Attributes{}
		return nil
	default:
		return fmt.Errorf("models: attributes from %T", v)
	}
	if m, ok := scanFlatObject(b); ok {
		*a = m
		return nil
	}
	m := Attributes{}
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	*a = m
	return nil
}

// scanFlatObject reads the common shape of attributes, an object of
// strings, numbers, booleans and nulls with no escapes, as json.Unmarshal
// would, without its reflection: every claimed delivery's subscriber is
// read this way. It reports false for anything else (nesting, escapes,
// invalid UTF-8, a malformed or out-of-range number), which is left to
// json.Unmarshal. TestScanFlatObjectMatchesJSON holds the two together.
func scanFlatObject(b []byte) (Attributes, bool) {
	i := 0
	ws := func() {
		for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
			i++
		}
	}
	str := func() (string, bool) {
		if i >= len(b) || b[i] != '"' {
			return "", false
		}
		start := i + 1
		for j := start; j < len(b); j++ {
			switch c := b[j]; {
			case c == '"':
				s := string(b[start:j])
				if !utf8.ValidString(s) {
					return "", false
				}
				i = j + 1
				return s, true
			case c == '\\' || c < 0x20:
				return "", false
			}
		}
		return "", false
	}
	m := Attributes{}
	ws()
	if i >= len(b) || b[i] != '{' {
		return nil, false
	}
	i++
	ws()
	if i < len(b) && b[i] == '}' {
		i++
		ws()
		return m, i == len(b)
	}
	for {
		ws()
		k, ok := str()
		if !ok {
			return nil, false
		}
		ws()
		if i >= len(b) || b[i] != ':' {
			return nil, false
		}
		i++
		ws()
		if i >= len(b) {
			return nil, false
		}
		switch c := b[i]; {
		case c == '"':
			v, ok := str()
			if !ok {
				return nil, false
			}
			m[k] = v
		case c == 't' || c == 'f' || c == 'n':
			switch {
			case bytes.HasPrefix(b[i:], []byte("true")):
				m[k], i = true, i+4
			case bytes.HasPrefix(b[i:], []byte("false")):
				m[k], i = false, i+5
			case bytes.HasPrefix(b[i:], []byte("null")):
				m[k], i = nil, i+4
			default:
				return nil, false
			}
		case c == '-' || c >= '0' && c <= '9':
			j := jsonNumberEnd(b, i)
			if j < 0 {
				return nil, false
			}
			f, err := strconv.ParseFloat(string(b[i:j]), 64)
			if err != nil {
				return nil, false
			}
			m[k], i = f, j
		default:
			return nil, false
		}
		ws()
		if i >= len(b) {
			return nil, false
		}
		if b[i] == '}' {
			i++
			ws()
			return m, i == len(b)
		}
		if b[i] != ',' {
			return nil, false
		}
		i++
	}
}

// jsonNumberEnd returns the end of the JSON number at b[i:] (RFC 8259:
// -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?), or -1.
func jsonNumberEnd(b []byte, i int) int {
	digits := func() int {
		n := 0
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
			n++
		}
		return n
	}
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case digits() == 0:
		return -1
	}
	if i < len(b) && b[i] == '.' {
		i++
		if digits() == 0 {
			return -1
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if digits() == 0 {
			return -1
		}
	}
	return i
}

// ParseAttributes reads a JSON object typed by a person; the error says what
// is wrong with it.
func ParseAttributes(s string) (Attributes, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Attributes{}, nil
	}
	var a Attributes
	if err := json.Unmarshal([]byte(s), &a); err != nil {
		return nil, fmt.Errorf("attributes must be a JSON object such as {\"city\": \"Lyon\"}: %v", err)
	}
	if a == nil {
		a = Attributes{}
	}
	return a, nil
}

// Subscriber is one person who can receive mail.
type Subscriber struct {
	ID         int64
	Email      string
	Name       string
	Attributes Attributes `gorm:"type:text"`
	Status     string
	CreatedAt  time.Time
	UpdatedAt  time.Time
}

// Subscription is a subscriber's membership of one list.
type Subscription struct {
	SubscriberID int64
	ListID       int64
	Status       string
	CreatedAt    time.Time
	UpdatedAt    time.Time
	ListName     string `gorm:"->;-:migration"`
	ListOptin    string `gorm:"->;-:migration"`
	ListKind     string `gorm:"->;-:migration"`
}

// Subscriber returns one subscriber.
func (s *Store) Subscriber(ctx context.Context, id int64) (*Subscriber, error) {
	var sub Subscriber
	if err := s.conn(ctx).First(&sub, id).Error; err != nil {
		return nil, fmt.Errorf("models: subscriber %d: %w", id, notFound(err))
	}
	return &sub, nil
}

// SubscriberByEmail finds a subscriber by address, ignoring case.
func (s *Store) SubscriberByEmail(ctx context.Context, email string) (*Subscriber, error) {
	var sub Subscriber
	if err := s.conn(ctx).Where("lower(email) = lower(?)", email).First(&sub).Error; err != nil {
		return nil, fmt.Errorf("models: subscriber %q: %w", email, notFound(err))
	}
	return &sub, nil
}

// SubscriptionsOf returns a subscriber's list memberships with list names.
func (s *Store) SubscriptionsOf(ctx context.Context, subscriberID int64) ([]Subscription, error) {
	var out []Subscription
	err := s.conn(ctx).Table("subscriptions").
		Select("subscriptions.*, lists.name AS list_name, lists.optin AS list_optin, lists.kind AS list_kind").
		Joins("JOIN lists ON lists.id = subscriptions.list_id").
		Where("subscriptions.subscriber_id = ?", subscriberID).Order("lower(lists.name)").Scan(&out).Error
	if err != nil {
		return nil, fmt.Errorf("models: subscriptions of %d: %w", subscriberID, err)
	}
	return out, nil
}

// CreateSubscriber stores a new subscriber with its list memberships
// (list id → subscription status) and writes their consent rows. The address
// must already be normalised. It returns ErrConflict when the address exists.
func (s *Store) CreateSubscriber(ctx context.Context, sub *Subscriber, lists map[int64]string, ev Evidence) error {
	if err := invalid(sub.Validate()); err != nil {
		return fmt.Errorf("models: create subscriber: %w", err)
	}
	if err := validLawfulBasis(ev); err != nil {
		return fmt.Errorf("models: create subscriber: %w", err)
	}
	err := s.tx(ctx, func(tx *gorm.DB) error {
		var n int64
		if err := tx.Model(&Subscriber{}).Where("lower(email) = lower(?)", sub.Email).Count(&n).Error; err != nil {
			return err
		}
		if n > 0 {
			return ErrConflict
		}
		if err := s.checkSuppressed(tx, sub.Email); err != nil {
			return err
		}
		sub.CreatedAt, sub.UpdatedAt = dbNow(), dbNow()
		if sub.Status == "" {
			sub.Status = SubscriberActive
		}
		if sub.Attributes == nil {
			sub.Attributes = Attributes{}
		}
		if err := tx.Create(sub).Error; err != nil {
			return err
		}
		return s.setSubscriptions(tx, sub, lists, ev)
	})
	if err != nil {
		return fmt.Errorf("models: create subscriber: %w", err)
	}
	return nil
}

// UpdateSubscriber saves a subscriber's address, name and attributes.
func (s *Store) UpdateSubscriber(ctx context.Context, sub *Subscriber) error {
	if err := invalid(sub.Validate()); err != nil {
		return fmt.Errorf("models: update subscriber %d: %w", sub.ID, err)
	}
	err := s.tx(ctx, func(tx *gorm.DB) error {
		var n int64
		if err := tx.Model(&Subscriber{}).Where("lower(email) = lower(?) AND id <> ?", sub.Email, sub.ID).Count(&n).Error; err != nil {
			return err
		}
		if n > 0 {
			return ErrConflict
		}
		res := tx.Model(&Subscriber{}).Where("id = ?", sub.ID).Updates(map[string]any{
			"email": sub.Email, "name": sub.Name, "attributes": sub.Attributes, "updated_at": dbNow(),
		})
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return ErrNotFound
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("models: update subscriber %d: %w", sub.ID, err)
	}
	return nil
}

// SetSubscriptions changes a subscriber's memberships: list id → new status,
// or "" to remove the membership. Each real change writes a consent row.
func (s *Store) SetSubscriptions(ctx context.Context, subscriberID int64, lists map[int64]string, ev Evidence) error {
	if err := validLawfulBasis(ev); err != nil {
		return fmt.Errorf("models: subscriptions of %d: %w", subscriberID, err)
	}
	err := s.tx(ctx, func(tx *gorm.DB) error {
		var sub Subscriber
		if err := tx.First(&sub, subscriberID).Error; err != nil {
			return notFound(err)
		}
		return s.setSubscriptions(tx, &sub, lists, ev)
	})
	if err != nil {
		return fmt.Errorf("models: set subscriptions of %d: %w", subscriberID, err)
	}
	return nil
}

// ErrBlocklisted is returned when a blocklisted or erased subscriber would be
// subscribed to a list.
var ErrBlocklisted = errors.New("the subscriber is blocklisted; unblock them first")

func (s *Store) setSubscriptions(tx *gorm.DB, sub *Subscriber, lists map[int64]string, ev Evidence) error {
	if len(lists) == 0 {
		return nil
	}
	var current []Subscription
	if err := tx.Where("subscriber_id = ?", sub.ID).Find(&current).Error; err != nil {
		return err
	}
	was := map[int64]string{}
	for _, c := range current {
		was[c.ListID] = c.Status
	}
	var rows []Consent
	t := dbNow()
	for listID, status := range lists {
		old, exists := was[listID]
		if (status == old && exists) || (status == SubUnsubscribed && !exists) {
			// Nothing changes; unsubscribing a non-member must not create
			// a membership the ledger has no row for.
			continue
		}
		if status != "" && status != SubUnsubscribed && sub.Status != SubscriberActive {
			return ErrBlocklisted
		}
		var err error
		switch {
		case status == "":
			if !exists {
				continue
			}
			err = tx.Exec("DELETE FROM subscriptions WHERE subscriber_id = ? AND list_id = ?", sub.ID, listID).Error
		case exists:
			err = tx.Exec("UPDATE subscriptions SET status = ?, updated_at = ? WHERE subscriber_id = ? AND list_id = ?", status, t, sub.ID, listID).Error
		default:
			var n int64
			if err := tx.Model(&List{}).Where("id = ?", listID).Count(&n).Error; err != nil {
				return err
			}
			if n == 0 {
				return fmt.Errorf("list %d: %w", listID, ErrNotFound)
			}
			err = tx.Exec("INSERT INTO subscriptions (subscriber_id, list_id, status, created_at, updated_at) VALUES (?, ?, ?, ?, ?)", sub.ID, listID, status, t, t).Error
		}
		if err != nil {
			return err
		}
		action := ConsentGranted
		switch {
		case status == "" || status == SubUnsubscribed:
			if old == SubUnsubscribed || !exists {
				continue // nothing was withdrawn
			}
			action = ConsentWithdrawn
		case status == SubConfirmed && old == SubUnconfirmed:
			action = ConsentConfirmed
		}
		rows = append(rows, ev.row(action, sub.ID, listID, sub.Email))
	}
	return s.appendConsents(tx, rows)
}

// DeleteSubscriber removes a subscriber and their memberships. Their ledger
// rows stay (with a withdrawal per live membership) as the record of what
// they had agreed to; erasure is a separate, stronger operation.
func (s *Store) DeleteSubscriber(ctx context.Context, id int64, ev Evidence) error {
	err := s.tx(ctx, func(tx *gorm.DB) error {
		var sub Subscriber
		if err := tx.First(&sub, id).Error; err != nil {
			return notFound(err)
		}
		if err := s.withdrawAll(tx, &sub, ev); err != nil {
			return err
		}
		if err := tx.Exec("DELETE FROM subscriptions WHERE subscriber_id = ?", id).Error; err != nil {
			return err
		}
		return tx.Exec("DELETE FROM subscribers WHERE id = ?", id).Error
	})
	if err != nil {
		return fmt.Errorf("models: delete subscriber %d: %w", id, err)
	}
	return nil
}

// withdrawAll unsubscribes sub from every list it is live on.
func (s *Store) withdrawAll(tx *gorm.DB, sub *Subscriber, ev Evidence) error {
	var live []int64
	if err := tx.Raw("SELECT list_id FROM subscriptions WHERE subscriber_id = ? AND status <> ?", sub.ID, SubUnsubscribed).Scan(&live).Error; err != nil {
		return err
	}
	change := map[int64]string{}
	for _, l := range live {
		change[l] = SubUnsubscribed
	}
	return s.setSubscriptions(tx, sub, change, ev)
}

// SetBlocklisted blocks or unblocks a subscriber. Blocking unsubscribes them
// from every list (with ledger rows); unblocking does not resubscribe.
func (s *Store) SetBlocklisted(ctx context.Context, id int64, blocked bool, ev Evidence) error {
	err := s.tx(ctx, func(tx *gorm.DB) error {
		var sub Subscriber
		if err := tx.First(&sub, id).Error; err != nil {
			return notFound(err)
		}
		status := SubscriberActive
		if blocked {
			status = SubscriberBlocklisted
			if err := s.withdrawAll(tx, &sub, ev); err != nil {
				return err
			}
		}
		return tx.Exec("UPDATE subscribers SET status = ?, updated_at = ? WHERE id = ?", status, dbNow(), id).Error
	})
	if err != nil {
		return fmt.Errorf("models: blocklist subscriber %d: %w", id, err)
	}
	return nil
}

// SubscriberQuery selects a page of subscribers. Pages run newest first and
// are addressed by a keyset cursor, never an offset or a total count.
type SubscriberQuery struct {
	// Search is found anywhere in the address or the name, any case; a
	// term shorter than MinContains characters matches their start only.
	Search    string
	AttrKey   string // with AttrValue: attribute AttrKey equals AttrValue
	AttrValue string
	IDs       []int64 // only these subscribers (a selection on the page)
	ListID    int64   // members of this list only
	Status    string  // subscription status on ListID, or subscriber status without it
	Before    int64   // cursor: only ids below this
	Limit     int     // page size, default 50
}

// MinContains is the shortest search term matched anywhere in an address
// or name: the trigram indexes need three characters.
const MinContains = 3

// SubscriberRow is one line of a subscriber search.
type SubscriberRow struct {
	ID         int64
	Email      string
	Name       string
	Status     string
	CreatedAt  time.Time
	ListStatus string // status on SubscriberQuery.ListID; "" without a list
}

// SubscriberPage is one page of results; Next is the cursor of the next
// page, 0 on the last one.
type SubscriberPage struct {
	Rows []SubscriberRow
	Next int64
}

// SearchSubscribers answers the subscribers page and the API search. Every
// shape of query walks an index in id order and stops after one page.
//
// On SQLite a term of MinContains characters or more is answered by the
// FTS5 trigram table, which yields its matches in rowid order: the walk
// stops after a page, however common the term.
//
// Otherwise a search term is first looked for row by row among the newest
// subscribers below the cursor (searchWindow of them): a common term fills
// its page there, and no index could answer it faster. A rarer one is
// answered from the indexes (pg_trgm on PostgreSQL, lower(email) and
// lower(name) for a short prefix): every match, then the page. Either way
// the page is exact: a window that comes up short falls back to the index.
func (s *Store) SearchSubscribers(ctx context.Context, q SubscriberQuery) (*SubscriberPage, error) {
	if q.Limit <= 0 || q.Limit > 500 {
		q.Limit = 50
	}
	var rows []SubscriberRow
	if term := searchTerm(q.Search); term != "" && !s.ftsSearch(term) {
		floor, err := s.windowFloor(ctx, q.Before)
		if err != nil {
			return nil, fmt.Errorf("models: search subscribers: %w", err)
		}
		sqlText, args := s.subscriberSearch(q, q.Limit+1, "", true, floor)
		if err := s.conn(ctx).Raw(sqlText, args...).Scan(&rows).Error; err != nil {
			return nil, fmt.Errorf("models: search subscribers: %w", err)
		}
		if floor == 0 { // the window held everything below the cursor
			return pageOf(rows, q.Limit), nil
		}
	}
	if len(rows) <= q.Limit {
		sqlText, args := s.subscriberSearch(q, q.Limit+1, "", false, 0)
		rows = nil
		if err := s.conn(ctx).Raw(sqlText, args...).Scan(&rows).Error; err != nil {
			return nil, fmt.Errorf("models: search subscribers: %w", err)
		}
	}
	return pageOf(rows, q.Limit), nil
}

// CountCap is where CountSubscribers stops counting: beyond it the page
// says "more than", which needs no walk over every match.
const CountCap = 1000

// CountSubscribers counts the subscribers q matches (ignoring its cursor),
// up to CountCap; more reports that there are more than that.
func (s *Store) CountSubscribers(ctx context.Context, q SubscriberQuery) (n int, more bool, err error) {
	q.Before = 0
	where, args := s.searchConds(q, false, 0)
	if q.ListID != 0 {
		cond := "m.subscriber_id = s.id AND m.list_id = ?"
		margs := []any{q.ListID}
		if q.Status != "" {
			cond += " AND m.status = ?"
			margs = append(margs, q.Status)
		}
		where = append(where, "EXISTS (SELECT 1 FROM subscriptions m WHERE "+cond+")")
		args = append(args, margs...)
	} else if q.Status != "" {
		where, args = append(where, "s.status = ?"), append(args, q.Status)
	}
	var c int64
	err = s.conn(ctx).Raw("SELECT count(*) FROM (SELECT 1 FROM "+s.searchFrom(q)+" WHERE "+strings.Join(where, " AND ")+" LIMIT ?) AS c",
		append(args, CountCap+1)...).Scan(&c).Error
	if err != nil {
		return 0, false, fmt.Errorf("models: count subscribers: %w", err)
	}
	if c > CountCap {
		return CountCap, true, nil
	}
	return int(c), false, nil
}

// pageOf makes a page of up to limit rows from limit+1 fetched.
func pageOf(rows []SubscriberRow, limit int) *SubscriberPage {
	page := &SubscriberPage{Rows: rows}
	if len(rows) > limit {
		page.Rows = rows[:limit]
		page.Next = page.Rows[limit-1].ID
	}
	return page
}

// windowFloor is the lowest id among the searchWindow newest subscribers
// below the cursor, or 0 when there are no more than that.
func (s *Store) windowFloor(ctx context.Context, before int64) (int64, error) {
	if before <= 0 {
		before = 1<<62 - 1
	}
	var ids []int64
	err := s.conn(ctx).Raw("SELECT id FROM subscribers WHERE id < ? ORDER BY id DESC LIMIT 1 OFFSET ?", before, searchWindow-1).Scan(&ids).Error
	if err != nil || len(ids) == 0 {
		return 0, err
	}
	return ids[0], nil
}

// searchWindow is how many of the newest subscribers below the cursor a
// search term is first looked for in. A term on one address in 500 fills a
// page of fifty there.
var searchWindow = 25000

func searchTerm(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

// contains reports whether term is long enough to be matched anywhere.
func contains(term string) bool { return utf8.RuneCountInString(term) >= MinContains }

// searchConds are the conditions on subscribers s for q's term, attribute
// and cursor. With window set the term is matched row by row on the
// subscribers from id floor up; otherwise through the indexes.
func (s *Store) searchConds(q SubscriberQuery, window bool, floor int64) ([]string, []any) {
	before := q.Before
	if before <= 0 {
		before = 1<<62 - 1
	}
	term := searchTerm(q.Search)
	where, args := []string{"s.id < ?"}, []any{before}
	if s.ftsSearch(term) {
		// The cursor and the join go through the FTS table's rowid, so
		// that it is walked in order from the cursor down.
		where = []string{"f.rowid < ?", "s.id = f.rowid"}
	}
	switch {
	case term != "" && window:
		where, args = append(where, "s.id >= ?"), append(args, floor)
		ec, eargs := s.rowCond("lower(s.email)", term)
		nc, nargs := s.rowCond("lower(s.name)", term)
		where = append(where, "("+ec+" OR "+nc+")")
		args = append(append(args, eargs...), nargs...)
	case s.ftsSearch(term):
		// An FTS5 string in double quotes is one phrase; the trigram
		// tokenizer makes it a substring match on either column.
		where, args = append(where, "subscribers_fts MATCH ?"), append(args, `"`+strings.ReplaceAll(term, `"`, `""`)+`"`)
	case term != "" && contains(term):
		cond, cargs := s.containsMatch(term)
		where, args = append(where, cond), append(args, cargs...)
	case term != "":
		cond, cargs := s.prefixMatch(term)
		where, args = append(where, cond), append(args, cargs...)
	}
	if len(q.IDs) > 0 {
		where = append(where, "s.id IN ("+strings.TrimSuffix(strings.Repeat("?,", len(q.IDs)), ",")+")")
		for _, id := range q.IDs {
			args = append(args, id)
		}
	}
	if q.AttrKey != "" {
		// Attributes are JSON text; the value is compared as text, so
		// "42" finds both 42 and "42".
		if s.dialect == Postgres {
			where = append(where, "(s.attributes::jsonb) ->> ? = ?")
		} else {
			where = append(where, "CAST(json_extract(s.attributes, '$.' || json_quote(?)) AS TEXT) = ?")
		}
		args = append(args, q.AttrKey, q.AttrValue)
	}
	return where, args
}

// subscriberSearch builds the query for one page of q: limit rows of id,
// email, name, status, created_at, list_status and any extra columns of
// subscribers s, newest first, below the cursor (see searchConds for
// window and floor).
func (s *Store) subscriberSearch(q SubscriberQuery, limit int, extra string, window bool, floor int64) (string, []any) {
	before := q.Before
	if before <= 0 {
		before = 1<<62 - 1
	}
	where, args := s.searchConds(q, window, floor)
	from, listStatus, order := s.searchFrom(q), "''", "s.id DESC"
	term := searchTerm(q.Search)
	if s.ftsSearch(term) {
		order = "f.rowid DESC"
	}
	if s.dialect == Postgres && contains(term) && !window {
		// Left to itself the planner walks the primary key backwards
		// and tests every row, hoping for an early page: for a rare term
		// (the window answered the common ones) that is the whole table.
		// The matches come from the trigram indexes first, behind an
		// OFFSET 0 fence, and only they are sorted.
		pat := "%" + likeEscaper.Replace(term) + "%"
		from = `(SELECT id FROM subscribers WHERE lower(email) LIKE ? ESCAPE '\' OR lower(name) LIKE ? ESCAPE '\' OFFSET 0) AS cm CROSS JOIN ` + from
		where = append(where, "s.id = cm.id")
		args = append([]any{pat, pat}, args...)
		order = "cm.id DESC"
	}
	if q.ListID != 0 {
		if term != "" || q.AttrKey != "" || len(q.IDs) > 0 {
			// A page may need many more members than it shows: look up
			// each candidate's membership, in id order. CROSS JOIN keeps
			// SQLite from walking the whole list and sorting it instead.
			from, listStatus = from+" CROSS JOIN subscriptions m", "m.status"
			where = append(where, "m.subscriber_id = s.id AND m.list_id = ?")
			args = append(args, q.ListID)
			if q.Status != "" {
				where = append(where, "m.status = ?")
				args = append(args, q.Status)
			}
		} else {
			// One index-ordered walk per subscription status, merged: each
			// stops after a page, so no list is ever sorted whole.
			statuses := []string{SubUnconfirmed, SubConfirmed, SubUnsubscribed}
			if q.Status != "" {
				statuses = []string{q.Status}
			}
			var parts []string
			var jargs []any
			for _, st := range statuses {
				parts = append(parts, `SELECT * FROM (SELECT subscriber_id, status FROM subscriptions
					WHERE list_id = ? AND status = ? AND subscriber_id < ? ORDER BY subscriber_id DESC LIMIT ?) AS p`)
				jargs = append(jargs, q.ListID, st, before, limit)
			}
			from, listStatus = "("+strings.Join(parts, " UNION ALL ")+") AS mm JOIN subscribers s ON s.id = mm.subscriber_id", "mm.status"
			args = append(jargs, args...)
		}
	} else if q.Status != "" {
		where = append(where, "s.status = ?")
		args = append(args, q.Status)
		if q.Status != SubscriberActive {
			// Lets the planner use the partial index of inactive subscribers.
			where = append(where, "s.status <> 'active'")
		}
	}
	cols := "s.id, s.email, s.name, s.status, s.created_at, " + listStatus + " AS list_status"
	if extra != "" {
		cols += ", " + extra
	}
	args = append(args, limit)
	return "SELECT " + cols + " FROM " + from + " WHERE " + strings.Join(where, " AND ") + " ORDER BY " + order + " LIMIT ?", args
}

// ftsSearch reports whether term is answered by SQLite's FTS5 table.
func (s *Store) ftsSearch(term string) bool { return s.dialect == SQLite && contains(term) }

// searchFrom is the FROM of a search for q: subscribers s, behind the FTS5
// table f when that answers the term.
func (s *Store) searchFrom(q SubscriberQuery) string {
	if s.ftsSearch(searchTerm(q.Search)) {
		return "subscribers_fts f CROSS JOIN subscribers s"
	}
	return "subscribers s"
}

// rowCond is "expr matches term" tested on each row: contains for a long
// enough term, starts with for a short one.
func (s *Store) rowCond(expr, term string) (string, []any) {
	if !contains(term) {
		return s.prefixCond(expr, term)
	}
	if s.dialect == Postgres {
		return "strpos(" + expr + ", ?) > 0", []any{term}
	}
	return "instr(" + expr + ", ?) > 0", []any{term}
}

// containsMatch matches subscribers whose address or name contains term,
// through PostgreSQL's trigram indexes (migration 30); for a very common
// term the planner may rather scan, which a LIMIT stops early.
func (s *Store) containsMatch(term string) (string, []any) {
	pat := "%" + likeEscaper.Replace(term) + "%"
	return `(lower(s.email) LIKE ? ESCAPE '\' OR lower(s.name) LIKE ? ESCAPE '\')`, []any{pat, pat}
}

// prefixMatch matches subscribers whose address or name starts with term,
// through the lower(email) and lower(name) indexes.
func (s *Store) prefixMatch(term string) (string, []any) {
	ec, eargs := s.prefixCond("lower(email)", term)
	nc, nargs := s.prefixCond("lower(name)", term)
	return "s.id IN (SELECT id FROM subscribers WHERE " + ec + " UNION SELECT id FROM subscribers WHERE " + nc + ")", append(eargs, nargs...)
}

// prefixCond is "expr starts with term" in the form the dialect's index on
// expr serves: LIKE on PostgreSQL (text_pattern_ops), a range on SQLite
// (whose LIKE is case-insensitive and skips expression indexes).
func (s *Store) prefixCond(expr, term string) (string, []any) {
	if s.dialect == Postgres {
		return expr + ` LIKE ? ESCAPE '\'`, []any{likePrefix(term)}
	}
	return expr + " >= ? AND " + expr + " < ?", []any{term, term + "\U0010FFFF"}
}

// SubscriberIDs are the ids q matches (ignoring its cursor), newest first,
// up to max; more reports that there are more than that.
func (s *Store) SubscriberIDs(ctx context.Context, q SubscriberQuery, max int) (ids []int64, more bool, err error) {
	q.Before, q.Limit = 0, 500
	for {
		page, err := s.SearchSubscribers(ctx, q)
		if err != nil {
			return nil, false, err
		}
		for _, r := range page.Rows {
			if len(ids) == max {
				return ids, true, nil
			}
			ids = append(ids, r.ID)
		}
		if page.Next == 0 {
			return ids, false, nil
		}
		q.Before = page.Next
	}
}

// UnsubscribeEverywhere unsubscribes a subscriber from every list they are
// on, with a ledger row for each; they stay a subscriber.
func (s *Store) UnsubscribeEverywhere(ctx context.Context, id int64, ev Evidence) error {
	err := s.tx(ctx, func(tx *gorm.DB) error {
		var sub Subscriber
		if err := tx.First(&sub, id).Error; err != nil {
			return notFound(err)
		}
		return s.withdrawAll(tx, &sub, ev)
	})
	if err != nil {
		return fmt.Errorf("models: unsubscribe %d everywhere: %w", id, err)
	}
	return nil
}
