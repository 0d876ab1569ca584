package models

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Data-subject request kinds and statuses.
const (
	DSRAccess        = "access"
	DSRPortability   = "portability"
	DSRRectification = "rectification"
	DSRErasure       = "erasure"

	DSROpen     = "open"
	DSRDone     = "done"
	DSRRejected = "rejected"
)

// DSRKinds lists the kinds of request a person may make.
var DSRKinds = []string{DSRAccess, DSRPortability, DSRRectification, DSRErasure}

// DSRDeadline is how long a request may stay open before it is overdue
// (GDPR art. 12(3): one month).
const DSRDeadline = 30 * 24 * time.Hour

// DSRRequest is one data-subject request and how it was handled.
// SubjectEmail is blanked when the person is erased; SubjectHash stays.
type DSRRequest struct {
	ID           int64
	Kind         string
	SubjectEmail string
	SubjectHash  string
	SubscriberID *int64
	Status       string
	Note         string
	Outcome      string
	CreatedBy    string
	HandledBy    string
	ReceivedAt   time.Time
	HandledAt    *time.Time
}

// TableName keeps GORM from pluralising.
func (DSRRequest) TableName() string { return "dsr_requests" }

// Overdue reports whether the request is still open past DSRDeadline at t.
func (r DSRRequest) Overdue(t time.Time) bool {
	return r.Status == DSROpen && t.Sub(r.ReceivedAt) > DSRDeadline
}

// Due is when the request must be answered.
func (r DSRRequest) Due() time.Time { return r.ReceivedAt.Add(DSRDeadline) }

// Validate checks a request being logged; it returns a field→message map.
func (r *DSRRequest) Validate() map[string]string {
	errs := map[string]string{}
	if !slices.Contains(DSRKinds, r.Kind) {
		errs["kind"] = "Choose what the person asked for: access, portability, rectification or erasure."
	}
	email, err := NormalizeEmail(r.SubjectEmail)
	if err != nil {
		errs["email"] = err.Error()
	} else {
		r.SubjectEmail = email
	}
	if r.ReceivedAt.IsZero() {
		errs["received_at"] = "Give the date the request was received."
	} else if r.ReceivedAt.After(now().Add(24 * time.Hour)) {
		errs["received_at"] = "The date the request was received cannot be in the future."
	}
	if len(r.Note) > 2000 {
		errs["note"] = "Keep the note under 2,000 characters."
	}
	return errs
}

// CreateDSR logs a request. An empty Status means open.
func (s *Store) CreateDSR(ctx context.Context, r *DSRRequest) error {
	prepareDSR(r)
	if err := s.conn(ctx).Create(r).Error; err != nil {
		return fmt.Errorf("models: create data-subject request: %w", err)
	}
	return nil
}

// prepareDSR fills a new request's hash, status and times.
func prepareDSR(r *DSRRequest) {
	r.SubjectHash = SuppressionHash(r.SubjectEmail)
	if r.Status == "" {
		r.Status = DSROpen
	}
	if r.ReceivedAt.IsZero() {
		r.ReceivedAt = now()
	}
	r.ReceivedAt = dbTime(r.ReceivedAt)
	if r.HandledAt != nil {
		t := dbTime(*r.HandledAt)
		r.HandledAt = &t
	}
}

// DSR returns one request.
func (s *Store) DSR(ctx context.Context, id int64) (*DSRRequest, error) {
	var r DSRRequest
	if err := s.conn(ctx).First(&r, id).Error; err != nil {
		return nil, fmt.Errorf("models: data-subject request %d: %w", id, notFound(err))
	}
	return &r, nil
}

// DSRQuery selects requests; zero fields do not filter.
type DSRQuery struct {
	Status string
	Before int64 // cursor: only ids below this
	Limit  int   // default 50
}

// DSRs returns a page of requests, newest first, and the cursor of the next
// page (0 on the last one).
func (s *Store) DSRs(ctx context.Context, q DSRQuery) ([]DSRRequest, int64, error) {
	if q.Limit <= 0 || q.Limit > 500 {
		q.Limit = 50
	}
	db := s.conn(ctx).Order("id DESC").Limit(q.Limit + 1)
	if q.Status != "" {
		db = db.Where("status = ?", q.Status)
	}
	if q.Before > 0 {
		db = db.Where("id < ?", q.Before)
	}
	var rows []DSRRequest
	if err := db.Find(&rows).Error; err != nil {
		return nil, 0, fmt.Errorf("models: data-subject requests: %w", err)
	}
	var next int64
	if len(rows) > q.Limit {
		rows = rows[:q.Limit]
		next = rows[q.Limit-1].ID
	}
	return rows, next, nil
}

// OpenDSRCount returns how many requests are open and how many of those are
// overdue at t.
func (s *Store) OpenDSRCount(ctx context.Context, t time.Time) (open, overdue int64, err error) {
	var row struct{ Open, Overdue int64 }
	err = s.conn(ctx).Raw(`SELECT count(*) AS open,
		COALESCE(sum(CASE WHEN received_at < ? THEN 1 ELSE 0 END), 0) AS overdue
		FROM dsr_requests WHERE status = 'open'`, dbTime(t.Add(-DSRDeadline))).Scan(&row).Error
	if err != nil {
		return 0, 0, fmt.Errorf("models: open data-subject requests: %w", err)
	}
	return row.Open, row.Overdue, nil
}

// ErrDSRClosed is returned when a request that is already closed would be
// handled again.
var ErrDSRClosed = fmt.Errorf("the request is already closed: %w", ErrConflict)

// CloseDSR marks an open request done or rejected, with who handled it and
// what came of it.
func (s *Store) CloseDSR(ctx context.Context, id int64, status, handledBy, outcome string, subscriberID int64) error {
	if status != DSRDone && status != DSRRejected {
		return fmt.Errorf("models: close data-subject request %d: bad status %q", id, status)
	}
	t := dbNow()
	updates := map[string]any{"status": status, "handled_by": handledBy, "outcome": outcome, "handled_at": t}
	if subscriberID != 0 {
		updates["subscriber_id"] = subscriberID
	}
	res := s.conn(ctx).Model(&DSRRequest{}).Where("id = ? AND status = ?", id, DSROpen).Updates(updates)
	if res.Error != nil {
		return fmt.Errorf("models: close data-subject request %d: %w", id, res.Error)
	}
	if res.RowsAffected == 0 {
		if _, err := s.DSR(ctx, id); err != nil {
			return err
		}
		return ErrDSRClosed
	}
	return nil
}

// DSRsBySubject returns the requests about an address, newest first.
func (s *Store) DSRsBySubject(ctx context.Context, email string) ([]DSRRequest, error) {
	var rows []DSRRequest
	err := s.conn(ctx).Where("subject_hash = ?", SuppressionHash(strings.TrimSpace(email))).Order("id DESC").Find(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("models: data-subject requests by subject: %w", err)
	}
	return rows, nil
}
