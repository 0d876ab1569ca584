package models

import (
	"cmp"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"
)

// The outgoing webhook feed reads the tables Herald already records
// events in, each from a cursor kept in webhook_cursors, and writes what
// the webhooks want to the webhook_deliveries outbox in the same
// transaction that moves the cursors. The send path writes nothing more
// than it did: the cost is one read per source per feed run.
//
// A row is read once it is settle old, so that rows committed a little
// out of order (concurrent transactions on PostgreSQL, the tracker's
// batches written after the clicks they hold) are seen before the cursor
// moves past them. A row recorded later than settle after its time is
// skipped; settle bounds that window, it does not close it.
//
// Sources and the events they give:
//   - deliveries now sent (ordered by the attempt time, which the sent
//     row keeps in next_attempt_at, through the claim index): sent and
//     delivered;
//   - bounces: bounced (hard or soft) and complained;
//   - events: opened and clicked (one-click unsubscribes are in the
//     consent ledger too);
//   - consents: subscribed (granted or confirmed) and unsubscribed
//     (withdrawn). Imports are not events.
const (
	hookSrcDeliveries = "deliveries"
	hookSrcBounces    = "bounces"
	hookSrcEvents     = "events"
	hookSrcConsents   = "consents"
)

// hookCursor is where the feed stopped in one source.
type hookCursor struct {
	lastID int64
	lastAt time.Time // deliveries only
	found  bool
}

// FeedStats says what one feed run did.
type FeedStats struct {
	Read     int // source rows read
	Enqueued int // webhook deliveries added
	Enabled  int // enabled webhooks
}

// hookPayload is the JSON body of one event.
type hookPayload struct {
	ID        string         `json:"id"`
	Type      string         `json:"type"`
	CreatedAt time.Time      `json:"created_at"`
	Data      map[string]any `json:"data"`
}

func hookEvent(typ string, srcID int64, at time.Time, data map[string]any) HookEvent {
	id := typ + "_" + strconv.FormatInt(srcID, 10)
	at = at.UTC()
	b, _ := json.Marshal(hookPayload{ID: id, Type: typ, CreatedAt: at, Data: data})
	sub, _ := data["subscriber_id"].(int64)
	return HookEvent{ID: id, Type: typ, At: at, Payload: b, SubscriberID: sub}
}

// TestHookEvent is the event the "send test event" button sends.
func TestHookEvent(now time.Time) HookEvent {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	id := "test_" + hex.EncodeToString(b)
	p, _ := json.Marshal(hookPayload{ID: id, Type: HookTest, CreatedAt: now.UTC(),
		Data: map[string]any{"message": "A test event sent from Herald's dashboard."}})
	return HookEvent{ID: id, Type: HookTest, At: now, Payload: p}
}

// FeedWebhooks reads up to limit new rows of each source recorded before
// now-settle and queues their events for the enabled webhooks that want
// them. While no webhook is enabled the cursors only move to the end, so
// registering a webhook does not replay history.
func (s *Store) FeedWebhooks(ctx context.Context, now time.Time, settle time.Duration, limit int) (FeedStats, error) {
	var st FeedStats
	hooks, err := s.Webhooks(ctx)
	if err != nil {
		return st, err
	}
	var live []Webhook
	for _, h := range hooks {
		if h.Enabled {
			live = append(live, h)
		}
	}
	wants := func(types ...string) bool {
		for _, h := range live {
			for _, t := range types {
				if h.Wants(t) {
					return true
				}
			}
		}
		return false
	}
	st.Enabled = len(live)
	cutoff := dbTime(now.Add(-settle))
	tx, err := s.sql.BeginTx(ctx, nil)
	if err != nil {
		return st, fmt.Errorf("models: feed webhooks: %w", err)
	}
	defer tx.Rollback()
	sources := []struct {
		name  string
		types []string
		read  func(ctx context.Context, tx *sql.Tx, c hookCursor, cutoff time.Time, limit int) ([]HookEvent, hookCursor, int, error)
	}{
		{hookSrcDeliveries, []string{HookSent, HookDelivered}, s.feedDeliveries},
		{hookSrcBounces, []string{HookBounced, HookComplained}, s.feedBounces},
		{hookSrcEvents, []string{HookOpened, HookClicked}, s.feedEvents},
		{hookSrcConsents, []string{HookSubscribed, HookUnsubscribed}, s.feedConsents},
	}
	for _, src := range sources {
		c, err := s.hookCursor(ctx, tx, src.name)
		if err != nil {
			return st, err
		}
		if !c.found || !wants(src.types...) {
			// Nobody listens: skip to the end.
			if c, err = s.hookCursorEnd(ctx, tx, src.name, cutoff); err != nil {
				return st, err
			}
			if err := s.saveHookCursor(ctx, tx, src.name, c); err != nil {
				return st, err
			}
			continue
		}
		evs, next, read, err := src.read(ctx, tx, c, cutoff, limit)
		if err != nil {
			return st, fmt.Errorf("models: feed webhooks from %s: %w", src.name, err)
		}
		st.Read += read
		n, err := s.enqueueHooks(ctx, tx, live, evs, now)
		if err != nil {
			return st, err
		}
		st.Enqueued += n
		if next != c {
			if err := s.saveHookCursor(ctx, tx, src.name, next); err != nil {
				return st, err
			}
		}
	}
	if err := tx.Commit(); err != nil {
		return st, fmt.Errorf("models: feed webhooks: %w", err)
	}
	return st, nil
}

func (s *Store) hookCursor(ctx context.Context, tx *sql.Tx, source string) (hookCursor, error) {
	var c hookCursor
	var at sql.NullTime
	err := tx.QueryRowContext(ctx, s.rebind("SELECT last_id, last_at FROM webhook_cursors WHERE source = ?"), source).Scan(&c.lastID, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return c, nil
	}
	if err != nil {
		return c, fmt.Errorf("models: webhook cursor %s: %w", source, err)
	}
	c.found, c.lastAt = true, at.Time
	return c, nil
}

// hookCursorEnd is the cursor past every row of source: the largest id,
// or for deliveries the cutoff.
func (s *Store) hookCursorEnd(ctx context.Context, tx *sql.Tx, source string, cutoff time.Time) (hookCursor, error) {
	c := hookCursor{found: true}
	if source == hookSrcDeliveries {
		c.lastAt, c.lastID = cutoff, math.MaxInt64
		return c, nil
	}
	if err := tx.QueryRowContext(ctx, "SELECT COALESCE(MAX(id), 0) FROM "+source).Scan(&c.lastID); err != nil {
		return c, fmt.Errorf("models: webhook cursor %s: %w", source, err)
	}
	return c, nil
}

func (s *Store) saveHookCursor(ctx context.Context, tx *sql.Tx, source string, c hookCursor) error {
	var at any
	if !c.lastAt.IsZero() {
		at = dbTime(c.lastAt)
	}
	_, err := tx.ExecContext(ctx, s.rebind(`INSERT INTO webhook_cursors (source, last_id, last_at) VALUES (?, ?, ?)
		ON CONFLICT (source) DO UPDATE SET last_id = excluded.last_id, last_at = excluded.last_at`), source, c.lastID, at)
	if err != nil {
		return fmt.Errorf("models: save webhook cursor %s: %w", source, err)
	}
	return nil
}

// feedByID reads rows of an id-ordered source after the cursor, stopping
// at the first one newer than cutoff (a later row may still be joined by
// an earlier id).
func feedByID[T any](ctx context.Context, tx *sql.Tx, q string, c hookCursor, cutoff time.Time, limit int,
	scan func(*sql.Rows) (id int64, at time.Time, v T, err error), emit func(id int64, at time.Time, v T) []HookEvent) ([]HookEvent, hookCursor, int, error) {
	rows, err := tx.QueryContext(ctx, q, c.lastID, limit)
	if err != nil {
		return nil, c, 0, err
	}
	defer rows.Close()
	var evs []HookEvent
	read := 0
	for rows.Next() {
		id, at, v, err := scan(rows)
		if err != nil {
			return nil, c, 0, err
		}
		if at.After(cutoff) {
			break
		}
		read++
		c.lastID = id
		evs = append(evs, emit(id, at, v)...)
	}
	return evs, c, read, rows.Err()
}

func (s *Store) feedEvents(ctx context.Context, tx *sql.Tx, c hookCursor, cutoff time.Time, limit int) ([]HookEvent, hookCursor, int, error) {
	type row struct {
		kind                                 string
		delivery, campaign, subscriber, link int64
		machine                              bool
		email, url                           string
	}
	q := s.rebind(`SELECT e.id, e.created_at, e.kind, e.delivery_id, COALESCE(e.campaign_id, 0), COALESCE(e.subscriber_id, 0),
		COALESCE(e.link_id, 0), e.machine, COALESCE(sb.email, ''), COALESCE(l.url, '')
		FROM events e LEFT JOIN subscribers sb ON sb.id = e.subscriber_id LEFT JOIN links l ON l.id = e.link_id
		WHERE e.id > ? ORDER BY e.id LIMIT ?`)
	return feedByID(ctx, tx, q, c, cutoff, limit, func(r *sql.Rows) (int64, time.Time, row, error) {
		var id int64
		var at time.Time
		var v row
		err := r.Scan(&id, &at, &v.kind, &v.delivery, &v.campaign, &v.subscriber, &v.link, &v.machine, &v.email, &v.url)
		return id, at, v, err
	}, func(id int64, at time.Time, v row) []HookEvent {
		data := map[string]any{"delivery_id": v.delivery, "campaign_id": v.campaign, "subscriber_id": v.subscriber,
			"email": v.email, "machine": v.machine}
		switch v.kind {
		case EventOpen:
			return []HookEvent{hookEvent(HookOpened, id, at, data)}
		case EventClick:
			data["link_id"], data["url"] = v.link, v.url
			return []HookEvent{hookEvent(HookClicked, id, at, data)}
		}
		return nil
	})
}

func (s *Store) feedBounces(ctx context.Context, tx *sql.Tx, c hookCursor, cutoff time.Time, limit int) ([]HookEvent, hookCursor, int, error) {
	type row struct {
		kind, category, status, diagnostic string
		delivery, campaign, subscriber     int64
		email                              string
	}
	q := s.rebind(`SELECT b.id, b.created_at, b.kind, b.category, b.status, b.diagnostic, COALESCE(b.delivery_id, 0),
		COALESCE(b.campaign_id, 0), COALESCE(b.subscriber_id, 0), COALESCE(NULLIF(d.email, ''), sb.email, '')
		FROM bounces b LEFT JOIN deliveries d ON d.id = b.delivery_id LEFT JOIN subscribers sb ON sb.id = b.subscriber_id
		WHERE b.id > ? ORDER BY b.id LIMIT ?`)
	return feedByID(ctx, tx, q, c, cutoff, limit, func(r *sql.Rows) (int64, time.Time, row, error) {
		var id int64
		var at time.Time
		var v row
		err := r.Scan(&id, &at, &v.kind, &v.category, &v.status, &v.diagnostic, &v.delivery, &v.campaign, &v.subscriber, &v.email)
		return id, at, v, err
	}, func(id int64, at time.Time, v row) []HookEvent {
		data := map[string]any{"delivery_id": v.delivery, "campaign_id": v.campaign, "subscriber_id": v.subscriber,
			"email": v.email, "category": v.category, "status": v.status, "diagnostic": v.diagnostic}
		if v.kind == "complaint" {
			return []HookEvent{hookEvent(HookComplained, id, at, data)}
		}
		data["kind"] = v.kind
		return []HookEvent{hookEvent(HookBounced, id, at, data)}
	})
}

func (s *Store) feedConsents(ctx context.Context, tx *sql.Tx, c hookCursor, cutoff time.Time, limit int) ([]HookEvent, hookCursor, int, error) {
	type row struct {
		action, email, source, status string
		subscriber, list              int64
	}
	// The subscription's status as it is now (a few seconds later):
	// unconfirmed while a double opt-in waits for its confirmation.
	q := s.rebind(`SELECT c.id, c.created_at, c.action, c.email, c.source, COALESCE(c.subscriber_id, 0), COALESCE(c.list_id, 0),
		COALESCE(sp.status, '')
		FROM consents c LEFT JOIN subscriptions sp ON sp.subscriber_id = c.subscriber_id AND sp.list_id = c.list_id
		WHERE c.id > ? ORDER BY c.id LIMIT ?`)
	return feedByID(ctx, tx, q, c, cutoff, limit, func(r *sql.Rows) (int64, time.Time, row, error) {
		var id int64
		var at time.Time
		var v row
		err := r.Scan(&id, &at, &v.action, &v.email, &v.source, &v.subscriber, &v.list, &v.status)
		return id, at, v, err
	}, func(id int64, at time.Time, v row) []HookEvent {
		data := map[string]any{"subscriber_id": v.subscriber, "list_id": v.list, "email": v.email, "source": v.source,
			"consent": v.action, "status": v.status}
		switch v.action {
		case ConsentGranted, ConsentConfirmed:
			return []HookEvent{hookEvent(HookSubscribed, id, at, data)}
		case ConsentWithdrawn:
			return []HookEvent{hookEvent(HookUnsubscribed, id, at, data)}
		}
		return nil
	})
}

// feedDeliveries reads the deliveries sent after the cursor, campaign by
// campaign through the claim index (campaign, status, next_attempt_at):
// a sent row's next_attempt_at is its attempt's time. Campaigns that
// cannot have sent since the cursor are not looked at.
func (s *Store) feedDeliveries(ctx context.Context, tx *sql.Tx, c hookCursor, cutoff time.Time, limit int) ([]HookEvent, hookCursor, int, error) {
	since := dbTime(c.lastAt.Add(-time.Hour))
	rows, err := tx.QueryContext(ctx, s.rebind(`SELECT id FROM campaigns WHERE status IN ('running', 'paused')
		OR finished_at >= ? OR updated_at >= ?`), since, since)
	if err != nil {
		return nil, c, 0, err
	}
	var campaigns []any
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, c, 0, err
		}
		campaigns = append(campaigns, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, c, 0, err
	}
	campaigns = append(campaigns, nil) // transactional messages
	type sent struct {
		id, campaign, subscriber int64
		at                       time.Time
		email, messageID, mx     string
	}
	var all []sent
	after := dbTime(c.lastAt)
	for _, campaign := range campaigns {
		where := "campaign_id = ?"
		args := []any{campaign}
		if campaign == nil {
			where, args = "campaign_id IS NULL", nil
		}
		args = append(args, after, after, c.lastID, cutoff, limit)
		// Campaign deliveries keep no address: the subscriber has it.
		rows, err := tx.QueryContext(ctx, s.rebind(`SELECT d.id, COALESCE(d.campaign_id, 0), COALESCE(d.subscriber_id, 0), d.next_attempt_at,
			COALESCE(NULLIF(d.email, ''), sb.email, ''), d.message_id, d.mx_host
			FROM deliveries d LEFT JOIN subscribers sb ON sb.id = d.subscriber_id WHERE d.`+where+` AND d.status = 'sent'
			AND (d.next_attempt_at > ? OR (d.next_attempt_at = ? AND d.id > ?)) AND d.next_attempt_at <= ?
			ORDER BY d.next_attempt_at, d.id LIMIT ?`), args...)
		if err != nil {
			return nil, c, 0, err
		}
		for rows.Next() {
			var d sent
			if err := rows.Scan(&d.id, &d.campaign, &d.subscriber, &d.at, &d.email, &d.messageID, &d.mx); err != nil {
				rows.Close()
				return nil, c, 0, err
			}
			all = append(all, d)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, c, 0, err
		}
	}
	slices.SortFunc(all, func(a, b sent) int {
		if k := a.at.Compare(b.at); k != 0 {
			return k
		}
		return cmp.Compare(a.id, b.id)
	})
	if len(all) > limit {
		all = all[:limit]
	}
	var evs []HookEvent
	for _, d := range all {
		data := map[string]any{"delivery_id": d.id, "campaign_id": d.campaign, "subscriber_id": d.subscriber,
			"email": d.email, "message_id": d.messageID, "mx_host": d.mx}
		evs = append(evs, hookEvent(HookSent, d.id, d.at, data), hookEvent(HookDelivered, d.id, d.at, data))
		c.lastAt, c.lastID = d.at, d.id
	}
	if len(all) < limit {
		// Everything up to the cutoff was read.
		c.lastAt, c.lastID = cutoff, math.MaxInt64
	}
	return evs, c, len(all), nil
}
