package models

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Outgoing webhook events (see the README's Webhooks section). Delivered
// means what sent means: the receiving server accepted the message over
// SMTP (or the capture transport kept it); Herald cannot see an inbox.
const (
	HookSent         = "sent"
	HookDelivered    = "delivered"
	HookBounced      = "bounced"
	HookComplained   = "complained"
	HookOpened       = "opened"
	HookClicked      = "clicked"
	HookUnsubscribed = "unsubscribed"
	HookSubscribed   = "subscribed"
	// HookTest is the event of the "send test event" button; every
	// webhook receives it whatever it subscribed to.
	HookTest = "test"
)

// WebhookEvents are the events a webhook can subscribe to, in the order
// the dashboard lists them.
var WebhookEvents = []string{HookSent, HookDelivered, HookBounced, HookComplained, HookOpened, HookClicked, HookUnsubscribed, HookSubscribed}

// SettingWebhookPrivate, when "on", lets webhooks target loopback, private,
// link-local and unique-local addresses (a receiver on the same host or
// network). Off by default: a URL an admin types must not become a way
// into the internal network.
const SettingWebhookPrivate = "webhooks_allow_private"

// Webhook delivery states.
const (
	HookPending   = "pending"
	HookDone      = "delivered"
	HookGivenUp   = "failed"
	hookSecretLen = 32
)

// Webhook is an endpoint an admin registered.
type Webhook struct {
	ID             int64
	URL            string
	Events         []string
	Secret         string
	Enabled        bool
	DisabledReason string
	CreatedAt      time.Time
	UpdatedAt      time.Time
}

// Wants reports whether the webhook receives event.
func (w *Webhook) Wants(event string) bool { return slices.Contains(w.Events, event) }

// ValidWebhookEvents returns the unknown names among events, and events
// in the canonical order without duplicates.
func ValidWebhookEvents(events []string) (known []string, unknown []string) {
	for _, e := range WebhookEvents {
		if slices.Contains(events, e) {
			known = append(known, e)
		}
	}
	for _, e := range events {
		if !slices.Contains(WebhookEvents, e) {
			unknown = append(unknown, e)
		}
	}
	return known, unknown
}

func newHookSecret() string {
	b := make([]byte, hookSecretLen)
	rand.Read(b)
	return "whsec_" + hex.EncodeToString(b)
}

const webhookCols = "id, url, events, secret, enabled, disabled_reason, created_at, updated_at"

func scanWebhook(sc interface{ Scan(...any) error }) (Webhook, error) {
	var w Webhook
	var events string
	err := sc.Scan(&w.ID, &w.URL, &events, &w.Secret, &w.Enabled, &w.DisabledReason, &w.CreatedAt, &w.UpdatedAt)
	if events != "" {
		w.Events = strings.Split(events, ",")
	}
	return w, err
}

// CreateWebhook registers an enabled webhook with a new secret. The URL
// is checked by the caller (web: the target guard).
func (s *Store) CreateWebhook(ctx context.Context, url string, events []string) (*Webhook, error) {
	w := &Webhook{URL: url, Events: events, Secret: newHookSecret(), Enabled: true, CreatedAt: dbNow()}
	w.UpdatedAt = w.CreatedAt
	err := s.sql.QueryRowContext(ctx, s.rebind(`INSERT INTO webhooks (url, events, secret, enabled, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?) RETURNING id`), w.URL, strings.Join(events, ","), w.Secret, true, w.CreatedAt, w.UpdatedAt).Scan(&w.ID)
	if err != nil {
		return nil, fmt.Errorf("models: create webhook: %w", err)
	}
	return w, nil
}

// Webhooks returns every webhook, oldest first.
func (s *Store) Webhooks(ctx context.Context) ([]Webhook, error) {
	rows, err := s.sql.QueryContext(ctx, "SELECT "+webhookCols+" FROM webhooks ORDER BY id")
	if err != nil {
		return nil, fmt.Errorf("models: webhooks: %w", err)
	}
	defer rows.Close()
	var out []Webhook
	for rows.Next() {
		w, err := scanWebhook(rows)
		if err != nil {
			return nil, fmt.Errorf("models: webhooks: %w", err)
		}
		out = append(out, w)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("models: webhooks: %w", err)
	}
	return out, nil
}

// Webhook returns one webhook; ErrNotFound when there is none.
func (s *Store) Webhook(ctx context.Context, id int64) (*Webhook, error) {
	w, err := scanWebhook(s.sql.QueryRowContext(ctx, s.rebind("SELECT "+webhookCols+" FROM webhooks WHERE id = ?"), id))
	if errors.Is(err, sql.ErrNoRows) {
		err = ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("models: webhook %d: %w", id, err)
	}
	return &w, nil
}

// UpdateWebhook changes a webhook's URL, events and enabled flag;
// enabling it again clears why it was disabled.
func (s *Store) UpdateWebhook(ctx context.Context, id int64, url string, events []string, enabled bool) error {
	res, err := s.sql.ExecContext(ctx, s.rebind(`UPDATE webhooks SET url = ?, events = ?, enabled = ?,
		disabled_reason = CASE WHEN ? THEN '' ELSE disabled_reason END, updated_at = ? WHERE id = ?`),
		url, strings.Join(events, ","), enabled, enabled, dbNow(), id)
	if err == nil {
		if n, _ := res.RowsAffected(); n == 0 {
			err = ErrNotFound
		}
	}
	if err != nil {
		return fmt.Errorf("models: update webhook %d: %w", id, err)
	}
	return nil
}

// DeleteWebhook removes a webhook with its deliveries and their log.
func (s *Store) DeleteWebhook(ctx context.Context, id int64) error {
	tx, err := s.sql.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("models: delete webhook %d: %w", id, err)
	}
	defer tx.Rollback()
	// Children first: SQLite enforces foreign keys only when asked to.
	for _, q := range []string{"DELETE FROM webhook_attempts WHERE webhook_id = ?", "DELETE FROM webhook_deliveries WHERE webhook_id = ?"} {
		if _, err := tx.ExecContext(ctx, s.rebind(q), id); err != nil {
			return fmt.Errorf("models: delete webhook %d: %w", id, err)
		}
	}
	res, err := tx.ExecContext(ctx, s.rebind("DELETE FROM webhooks WHERE id = ?"), id)
	if err != nil {
		return fmt.Errorf("models: delete webhook %d: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("models: delete webhook %d: %w", id, ErrNotFound)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("models: delete webhook %d: %w", id, err)
	}
	return nil
}

// WebhookDelivery is one event on its way to one webhook.
type WebhookDelivery struct {
	ID        int64
	WebhookID int64
	EventID   string // the idempotency key receivers see
	Event     string
	Payload   string // the JSON body, fixed when the event was fed
	Attempts  int    // made before this one
	URL       string
	Secret    string
}

// HookEvent is an event as the feed writes it to the outbox.
type HookEvent struct {
	ID           string // unique per event: type and source row
	Type         string
	At           time.Time
	Payload      []byte
	SubscriberID int64 // whom it is about, 0 for nobody; erasure deletes it
}

// EnqueueWebhookEvents writes events to the outbox of every webhook among
// hooks that wants them (each once: a repeated event id is ignored). It
// returns how many deliveries it added.
func (s *Store) EnqueueWebhookEvents(ctx context.Context, hooks []Webhook, evs []HookEvent, now time.Time) (int, error) {
	tx, err := s.sql.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("models: enqueue webhook events: %w", err)
	}
	defer tx.Rollback()
	n, err := s.enqueueHooks(ctx, tx, hooks, evs, now)
	if err != nil {
		return 0, err
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("models: enqueue webhook events: %w", err)
	}
	return n, nil
}

// hookChunk is how many deliveries one INSERT carries.
const hookChunk = 50

func (s *Store) enqueueHooks(ctx context.Context, tx *sql.Tx, hooks []Webhook, evs []HookEvent, now time.Time) (int, error) {
	var args []any
	added := 0
	flush := func() error {
		if len(args) == 0 {
			return nil
		}
		rows := len(args) / 9
		q := "INSERT INTO webhook_deliveries (webhook_id, event_id, subscriber_id, event, payload, status, next_attempt_at, created_at, updated_at) VALUES " +
			strings.TrimSuffix(strings.Repeat("(?,?,?,?,?,?,?,?,?),", rows), ",") + " ON CONFLICT (webhook_id, event_id) DO NOTHING"
		res, err := tx.ExecContext(ctx, s.rebind(q), args...)
		if err != nil {
			return fmt.Errorf("models: enqueue webhook events: %w", err)
		}
		k, _ := res.RowsAffected()
		added += int(k)
		args = args[:0]
		return nil
	}
	at := dbTime(now)
	for _, e := range evs {
		for _, h := range hooks {
			if !h.Enabled || (e.Type != HookTest && !h.Wants(e.Type)) {
				continue
			}
			args = append(args, h.ID, e.ID, nullID(e.SubscriberID), e.Type, string(e.Payload), HookPending, at, at, at)
			if len(args)/9 == hookChunk {
				if err := flush(); err != nil {
					return 0, err
				}
			}
		}
	}
	if err := flush(); err != nil {
		return 0, err
	}
	return added, nil
}

// ClaimWebhookDeliveries leases up to limit due deliveries of enabled
// webhooks to owner until now+lease, so that one node posts each; a node
// that dies holding them gives them up when the lease ends.
func (s *Store) ClaimWebhookDeliveries(ctx context.Context, owner string, now time.Time, lease time.Duration, limit int) ([]WebhookDelivery, error) {
	wrap := func(err error) error { return fmt.Errorf("models: claim webhook deliveries: %w", err) }
	t, until := dbTime(now), dbTime(now.Add(lease))
	_, err := s.sql.ExecContext(ctx, s.rebind(`UPDATE webhook_deliveries SET lease_owner = ?, lease_until = ?
		WHERE id IN (SELECT d.id FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id
			WHERE d.status = 'pending' AND d.next_attempt_at <= ? AND (d.lease_until IS NULL OR d.lease_until < ?) AND w.enabled
			ORDER BY d.next_attempt_at, d.id LIMIT ?)
		AND status = 'pending' AND (lease_until IS NULL OR lease_until < ?)`), owner, until, t, t, limit, t)
	if err != nil {
		return nil, wrap(err)
	}
	rows, err := s.sql.QueryContext(ctx, s.rebind(`SELECT d.id, d.webhook_id, d.event_id, d.event, d.payload, d.attempts, w.url, w.secret
		FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id
		WHERE d.lease_owner = ? AND d.status = 'pending' AND d.lease_until = ? ORDER BY d.id`), owner, until)
	if err != nil {
		return nil, wrap(err)
	}
	defer rows.Close()
	var out []WebhookDelivery
	for rows.Next() {
		var d WebhookDelivery
		if err := rows.Scan(&d.ID, &d.WebhookID, &d.EventID, &d.Event, &d.Payload, &d.Attempts, &d.URL, &d.Secret); err != nil {
			return nil, wrap(err)
		}
		out = append(out, d)
	}
	return out, wrap2(rows.Err(), wrap)
}

func wrap2(err error, wrap func(error) error) error {
	if err == nil {
		return nil
	}
	return wrap(err)
}

// WebhookAttempt is the result of one POST of a delivery.
type WebhookAttempt struct {
	DeliveryID, WebhookID int64
	Attempt               int // 1 for the first
	Code                  int // the HTTP status, 0 when none came back
	Error                 string
	Duration              time.Duration
	At                    time.Time
	// Status is the delivery's state after it: HookDone, HookPending (to
	// be retried at Next) or HookGivenUp.
	Status string
	Next   time.Time
	// Disable turns the webhook off, saying why (the receiver answered
	// 410 Gone).
	Disable string
}

// RecordWebhookAttempt logs an attempt and moves its delivery on, if
// owner still holds its lease.
func (s *Store) RecordWebhookAttempt(ctx context.Context, owner string, a WebhookAttempt) error {
	wrap := func(err error) error {
		return fmt.Errorf("models: record webhook attempt of %d: %w", a.DeliveryID, err)
	}
	tx, err := s.sql.BeginTx(ctx, nil)
	if err != nil {
		return wrap(err)
	}
	defer tx.Rollback()
	next := a.Next
	if next.IsZero() {
		next = a.At
	}
	res, err := tx.ExecContext(ctx, s.rebind(`UPDATE webhook_deliveries SET status = ?, attempts = ?, next_attempt_at = ?, last_code = ?,
		last_error = ?, lease_owner = '', lease_until = NULL, updated_at = ? WHERE id = ? AND lease_owner = ?`),
		a.Status, a.Attempt, dbTime(next), a.Code, clip(a.Error, 500), dbTime(a.At), a.DeliveryID, owner)
	if err != nil {
		return wrap(err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return nil // another node took it over
	}
	if _, err := tx.ExecContext(ctx, s.rebind(`INSERT INTO webhook_attempts (delivery_id, webhook_id, attempt, status_code, error, duration_ms, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?)`), a.DeliveryID, a.WebhookID, a.Attempt, a.Code, clip(a.Error, 500), a.Duration.Milliseconds(), dbTime(a.At)); err != nil {
		return wrap(err)
	}
	if a.Disable != "" {
		if _, err := tx.ExecContext(ctx, s.rebind("UPDATE webhooks SET enabled = ?, disabled_reason = ?, updated_at = ? WHERE id = ?"),
			false, a.Disable, dbTime(a.At), a.WebhookID); err != nil {
			return wrap(err)
		}
	}
	return wrap2(tx.Commit(), wrap)
}

// WebhookLogEntry is one attempt in a webhook's delivery log.
type WebhookLogEntry struct {
	At         time.Time
	DeliveryID int64
	EventID    string
	Event      string
	Attempt    int
	Code       int
	Error      string
	Status     string    // the delivery's state now
	NextAt     time.Time // the next attempt, while Status is pending
}

// WebhookLog returns the last limit attempts made for a webhook, newest
// first, then its deliveries not attempted yet (Attempt 0).
func (s *Store) WebhookLog(ctx context.Context, webhookID int64, limit int) ([]WebhookLogEntry, error) {
	wrap := func(err error) error { return fmt.Errorf("models: log of webhook %d: %w", webhookID, err) }
	rows, err := s.sql.QueryContext(ctx, s.rebind(`SELECT a.created_at, d.id, d.event_id, d.event, a.attempt, a.status_code, a.error,
		d.status, d.next_attempt_at, d.attempts
		FROM webhook_attempts a JOIN webhook_deliveries d ON d.id = a.delivery_id
		WHERE a.webhook_id = ? ORDER BY a.id DESC LIMIT ?`), webhookID, limit)
	if err != nil {
		return nil, wrap(err)
	}
	var out []WebhookLogEntry
	for rows.Next() {
		var e WebhookLogEntry
		var attempts int
		if err := rows.Scan(&e.At, &e.DeliveryID, &e.EventID, &e.Event, &e.Attempt, &e.Code, &e.Error, &e.Status, &e.NextAt, &attempts); err != nil {
			rows.Close()
			return nil, wrap(err)
		}
		// Only the delivery's latest attempt is followed by its next.
		if e.Status != HookPending || e.Attempt != attempts {
			e.NextAt = time.Time{}
		}
		out = append(out, e)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, wrap(err)
	}
	rows, err = s.sql.QueryContext(ctx, s.rebind(`SELECT created_at, id, event_id, event, next_attempt_at FROM webhook_deliveries
		WHERE webhook_id = ? AND attempts = 0 AND status = 'pending' ORDER BY id DESC LIMIT ?`), webhookID, limit)
	if err != nil {
		return nil, wrap(err)
	}
	defer rows.Close()
	for rows.Next() {
		e := WebhookLogEntry{Status: HookPending}
		if err := rows.Scan(&e.At, &e.DeliveryID, &e.EventID, &e.Event, &e.NextAt); err != nil {
			return nil, wrap(err)
		}
		out = append(out, e)
	}
	return out, wrap2(rows.Err(), wrap)
}

// PruneWebhookDeliveries deletes the deliveries finished (delivered or
// given up) before before, with their log; pending ones stay.
func (s *Store) PruneWebhookDeliveries(ctx context.Context, before time.Time) (int64, error) {
	wrap := func(err error) error { return fmt.Errorf("models: prune webhook deliveries: %w", err) }
	tx, err := s.sql.BeginTx(ctx, nil)
	if err != nil {
		return 0, wrap(err)
	}
	defer tx.Rollback()
	const old = `SELECT id FROM webhook_deliveries WHERE status <> 'pending' AND updated_at < ?`
	if _, err := tx.ExecContext(ctx, s.rebind(`DELETE FROM webhook_attempts WHERE delivery_id IN (`+old+`)`), dbTime(before)); err != nil {
		return 0, wrap(err)
	}
	res, err := tx.ExecContext(ctx, s.rebind(`DELETE FROM webhook_deliveries WHERE id IN (`+old+`)`), dbTime(before))
	if err != nil {
		return 0, wrap(err)
	}
	n, _ := res.RowsAffected()
	return n, wrap2(tx.Commit(), wrap)
}
