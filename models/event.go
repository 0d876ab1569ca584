package models

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// Event kinds.
const (
	EventOpen        = "open"
	EventClick       = "click"
	EventUnsubscribe = "unsubscribe"
)

// Event is one open, click or one-click unsubscribe of a delivery. Zero ids
// are stored as NULL.
type Event struct {
	DeliveryID   int64
	CampaignID   int64
	SubscriberID int64
	LinkID       int64 // clicks only
	Kind         string
	Machine      bool // caused by a proxy or scanner, not a person
	IP           string
	UserAgent    string
	CreatedAt    time.Time
}

// eventChunk is how many rows one INSERT carries. It stays small on
// purpose: the SQLite driver matches each bound parameter to its argument
// with a linear search, so a statement's binding cost grows with the
// square of its parameters, and parsing is paid once per transaction by
// preparing the statement.
const eventChunk = 32

const insertEventsSQL = " INTO events (delivery_id, campaign_id, subscriber_id, link_id, kind, machine, ip, user_agent, created_at) VALUES "

// insertEventsQuery is a rows-row INSERT. On SQLite it is INSERT OR FAIL:
// a failing row fails the whole transaction anyway, and without the
// default ABORT SQLite keeps no statement journal, which would otherwise
// copy every page the statement touches to a temporary file first.
func (s *Store) insertEventsQuery(rows int) string {
	var b strings.Builder
	b.Grow(len(insertEventsSQL) + 20 + rows*20)
	b.WriteString("INSERT")
	if s.dialect == SQLite {
		b.WriteString(" OR FAIL")
	}
	b.WriteString(insertEventsSQL)
	for i := range rows {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("(?,?,?,?,?,?,?,?,?)")
	}
	return b.String()
}

// MachineMark asks for the clicks of one delivery of a campaign made at or
// after Since to be flagged as machine traffic (see MarkMachineClicks).
type MachineMark struct {
	CampaignID, DeliveryID int64
	Since                  time.Time
}

// InsertEvents appends events in one transaction, eventChunk rows to a
// prepared multi-row INSERT.
func (s *Store) InsertEvents(ctx context.Context, evs []Event) error {
	return s.InsertEventsMarking(ctx, evs, nil)
}

// InsertEventsMarking is InsertEvents that also applies marks, in the same
// transaction (one commit for the tracker's whole batch).
func (s *Store) InsertEventsMarking(ctx context.Context, evs []Event, marks []MachineMark) error {
	if len(evs) == 0 && len(marks) == 0 {
		return nil
	}
	wrap := func(err error) error { return fmt.Errorf("models: insert %d events: %w", len(evs), err) }
	tx, err := s.sql.BeginTx(ctx, nil)
	if err != nil {
		return wrap(err)
	}
	defer tx.Rollback()
	var full *sql.Stmt
	if len(evs) >= eventChunk {
		if full, err = tx.PrepareContext(ctx, s.rebind(s.insertEventsQuery(eventChunk))); err != nil {
			return wrap(err)
		}
		defer full.Close()
	}
	args := make([]any, 0, 9*eventChunk)
	for rest := evs; len(rest) > 0; {
		n := min(len(rest), eventChunk)
		args = args[:0]
		for _, e := range rest[:n] {
			at := e.CreatedAt
			if at.IsZero() {
				at = now()
			}
			args = append(args, e.DeliveryID, nullID(e.CampaignID), nullID(e.SubscriberID), nullID(e.LinkID), e.Kind,
				e.Machine, clip(e.IP, 64), clip(e.UserAgent, 512), dbTime(at))
		}
		if n == eventChunk {
			_, err = full.ExecContext(ctx, args...)
		} else {
			_, err = tx.ExecContext(ctx, s.rebind(s.insertEventsQuery(n)), args...)
		}
		if err != nil {
			return wrap(err)
		}
		rest = rest[n:]
	}
	for _, m := range marks {
		if _, err := tx.ExecContext(ctx, s.rebind(markMachineSQL), true, m.CampaignID, EventClick, m.DeliveryID, dbTime(m.Since)); err != nil {
			return wrap(err)
		}
	}
	if err := tx.Commit(); err != nil {
		return wrap(err)
	}
	return nil
}

// clip makes header text safe to store: valid UTF-8 without NUL (which
// PostgreSQL rejects, failing the whole batch), at most n bytes, cut on a
// rune boundary.
func clip(s string, n int) string {
	if s == "" {
		return s
	}
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	s = strings.ReplaceAll(s, "\x00", "")
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

func nullID(id int64) any {
	if id == 0 {
		return nil
	}
	return id
}

const markMachineSQL = `UPDATE events SET machine = ? WHERE campaign_id = ? AND kind = ?
	AND delivery_id = ? AND created_at >= ? AND NOT machine`

// EventCounts counts the events of one kind.
type EventCounts struct {
	Total       int64 // every event, machine traffic included
	Human       int64 // events not flagged as machine traffic
	Unique      int64 // deliveries with at least one event
	UniqueHuman int64 // deliveries with at least one human event
}

// CampaignEvents are a campaign's engagement figures.
type CampaignEvents struct {
	Opens        EventCounts
	Clicks       EventCounts
	Unsubscribes EventCounts
}

// Events recorded in aggregate tracking mode carry delivery 0: they count
// in the totals but not as unique readers.
const countCols = `COUNT(*), COALESCE(SUM(CASE WHEN machine THEN 0 ELSE 1 END), 0), ` + uniqueCols

// uniqueCols counts unique readers, all and human.
const uniqueCols = `COUNT(DISTINCT NULLIF(delivery_id, 0)), COUNT(DISTINCT CASE WHEN machine THEN NULL ELSE NULLIF(delivery_id, 0) END)`

// CampaignEventStats returns a campaign's opens, clicks and unsubscribes,
// human and total, unique and total.
func (s *Store) CampaignEventStats(ctx context.Context, campaignID int64) (*CampaignEvents, error) {
	rows, err := s.sql.QueryContext(ctx, s.rebind(`SELECT kind, `+countCols+` FROM events WHERE campaign_id = ? GROUP BY kind`), campaignID)
	if err != nil {
		return nil, fmt.Errorf("models: event stats of campaign %d: %w", campaignID, err)
	}
	defer rows.Close()
	out := &CampaignEvents{}
	for rows.Next() {
		var kind string
		var c EventCounts
		if err := rows.Scan(&kind, &c.Total, &c.Human, &c.Unique, &c.UniqueHuman); err != nil {
			return nil, fmt.Errorf("models: event stats of campaign %d: %w", campaignID, err)
		}
		switch kind {
		case EventOpen:
			out.Opens = c
		case EventClick:
			out.Clicks = c
		case EventUnsubscribe:
			out.Unsubscribes = c
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("models: event stats of campaign %d: %w", campaignID, err)
	}
	return out, nil
}

// LinkEvents are the clicks on one tracked link.
type LinkEvents struct {
	LinkID int64
	URL    string
	EventCounts
}

// CampaignLinkStats returns the clicks on each of a campaign's links, links
// nobody clicked included, in the order the links were stored.
func (s *Store) CampaignLinkStats(ctx context.Context, campaignID int64) ([]LinkEvents, error) {
	wrap := func(err error) error { return fmt.Errorf("models: link stats of campaign %d: %w", campaignID, err) }
	rows, err := s.sql.QueryContext(ctx, s.rebind(`SELECT link_id, `+countCols+` FROM events
		WHERE campaign_id = ? AND kind = ? GROUP BY link_id`), campaignID, EventClick)
	if err != nil {
		return nil, wrap(err)
	}
	counts := map[int64]EventCounts{}
	for rows.Next() {
		var id sql.NullInt64
		var c EventCounts
		if err := rows.Scan(&id, &c.Total, &c.Human, &c.Unique, &c.UniqueHuman); err != nil {
			rows.Close()
			return nil, wrap(err)
		}
		counts[id.Int64] = c
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, wrap(err)
	}
	rows, err = s.sql.QueryContext(ctx, s.rebind("SELECT id, url FROM links WHERE campaign_id = ? ORDER BY id"), campaignID)
	if err != nil {
		return nil, wrap(err)
	}
	defer rows.Close()
	var out []LinkEvents
	for rows.Next() {
		var l LinkEvents
		if err := rows.Scan(&l.LinkID, &l.URL); err != nil {
			return nil, wrap(err)
		}
		l.EventCounts = counts[l.LinkID]
		out = append(out, l)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap(err)
	}
	return out, nil
}

// DeliveryRef is what the tracker needs to know of a delivery: whose it is
// and when it went out. Zero ids stand for NULL.
type DeliveryRef struct {
	ID           int64
	CampaignID   int64
	SubscriberID int64
	ListID       int64
	SentAt       time.Time // zero while not sent
}

// DeliveryRef returns the ids and send time of a delivery; it is one
// primary-key read on the tracker's hot path.
func (s *Store) DeliveryRef(ctx context.Context, id int64) (*DeliveryRef, error) {
	var campaign, subscriber, list sql.NullInt64
	var sent sql.NullTime
	err := s.sql.QueryRowContext(ctx, s.rebind("SELECT campaign_id, subscriber_id, list_id, sent_at FROM deliveries WHERE id = ?"), id).
		Scan(&campaign, &subscriber, &list, &sent)
	if errors.Is(err, sql.ErrNoRows) {
		err = ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("models: delivery %d: %w", id, err)
	}
	return &DeliveryRef{ID: id, CampaignID: campaign.Int64, SubscriberID: subscriber.Int64, ListID: list.Int64, SentAt: sent.Time}, nil
}

// TrackedLink is a campaign link with what its click redirect needs.
type TrackedLink struct {
	ID           int64
	CampaignID   int64
	URL          string
	UTM          bool   // the campaign asks for UTM parameters
	CampaignName string // utm_campaign
}

// CampaignTrackedLinks returns every link of a campaign with what its
// click redirect needs, in one query: the tracker loads a campaign's links
// on its first click and redirects the rest from memory.
func (s *Store) CampaignTrackedLinks(ctx context.Context, campaignID int64) ([]TrackedLink, error) {
	rows, err := s.sql.QueryContext(ctx, s.rebind(`SELECT l.id, l.url, c.utm, c.name FROM links l
		JOIN campaigns c ON c.id = l.campaign_id WHERE l.campaign_id = ?`), campaignID)
	if err != nil {
		return nil, fmt.Errorf("models: links of campaign %d: %w", campaignID, err)
	}
	defer rows.Close()
	var out []TrackedLink
	for rows.Next() {
		l := TrackedLink{CampaignID: campaignID}
		if err := rows.Scan(&l.ID, &l.URL, &l.UTM, &l.CampaignName); err != nil {
			return nil, fmt.Errorf("models: links of campaign %d: %w", campaignID, err)
		}
		out = append(out, l)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("models: links of campaign %d: %w", campaignID, err)
	}
	return out, nil
}

// refChunk is how many ids one DeliveryRefs query looks up.
const refChunk = 250

// DeliveryRefs returns the refs of the deliveries among ids that exist, by
// id: the tracker resolves a batch of opens in one query instead of one per
// request.
func (s *Store) DeliveryRefs(ctx context.Context, ids []int64) (map[int64]DeliveryRef, error) {
	out := make(map[int64]DeliveryRef, len(ids))
	for rest := ids; len(rest) > 0; {
		n := min(len(rest), refChunk)
		args := make([]any, n)
		for i, id := range rest[:n] {
			args[i] = id
		}
		rows, err := s.sql.QueryContext(ctx, s.rebind("SELECT id, campaign_id, subscriber_id, list_id, sent_at FROM deliveries WHERE id IN ("+placeholders(n)+")"), args...)
		if err != nil {
			return nil, fmt.Errorf("models: %d deliveries: %w", len(ids), err)
		}
		for rows.Next() {
			var id int64
			var campaign, subscriber, list sql.NullInt64
			var sent sql.NullTime
			if err := rows.Scan(&id, &campaign, &subscriber, &list, &sent); err != nil {
				rows.Close()
				return nil, fmt.Errorf("models: %d deliveries: %w", len(ids), err)
			}
			out[id] = DeliveryRef{ID: id, CampaignID: campaign.Int64, SubscriberID: subscriber.Int64, ListID: list.Int64, SentAt: sent.Time}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("models: %d deliveries: %w", len(ids), err)
		}
		rest = rest[n:]
	}
	return out, nil
}
