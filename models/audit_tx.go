package models

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"gorm.io/gorm"
)

// Audit in the same transaction as the change it records. An entry
// written after the change commits can fail and leave a change without
// its entry, so a handler puts the entry on the context it hands the
// store (WithAudit), and the store's transaction (tx) writes it after the
// change, before the commit: both land or neither. Multi-step workflows
// (RectifyForRequest, EraseForRequest) take their entry as an argument.
// A handler whose change is several store calls, or a store method
// without a transaction of its own, uses Begin: every store method reaches
// the database through conn(ctx), so the calls made with the change's
// context join its transaction and Commit writes the entries in it.

type auditCtxKey struct{}

// pendingAudit is an entry waiting for the transaction of the change.
type pendingAudit struct {
	e        AuditEntry
	objectID *int64 // read when writing: the id of a row the change creates
	written  bool
}

// WithAudit returns ctx carrying e: the next store change made with the
// returned context writes e in its own transaction. objectID, when not
// nil, is read at that moment into e.ObjectID (a created row's id).
func WithAudit(ctx context.Context, e AuditEntry, objectID *int64) context.Context {
	return context.WithValue(ctx, auditCtxKey{}, &pendingAudit{e: e, objectID: objectID})
}

// AuditWritten reports whether the entry ctx carries was written by a
// change (false when it carries none).
func AuditWritten(ctx context.Context) bool {
	p, _ := ctx.Value(auditCtxKey{}).(*pendingAudit)
	return p != nil && p.written
}

// writePendingAudit writes ctx's entry inside tx, once; it returns the
// entry to mark written after the commit.
func writePendingAudit(ctx context.Context, tx *gorm.DB) (*pendingAudit, error) {
	p, _ := ctx.Value(auditCtxKey{}).(*pendingAudit)
	if p == nil || p.written {
		return nil, nil
	}
	e := p.e
	if p.objectID != nil && *p.objectID != 0 {
		e.ObjectID = strconv.FormatInt(*p.objectID, 10)
	}
	if err := auditTx(tx, e); err != nil {
		return nil, err
	}
	return p, nil
}

func auditTx(tx *gorm.DB, e AuditEntry) error {
	e.ID = 0
	e.CreatedAt = dbNow()
	if err := tx.Create(&e).Error; err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	return nil
}

// RectifyForRequest corrects a subscriber's address, name and attributes
// on their request, in one transaction with the request's record and the
// audit entry: the request requestID is closed as done (0: a done request
// is logged), with the values before and after as its outcome. audit
// gives who did it; its object and summary are filled here. It returns
// the request's id and the summary of the changes.
func (s *Store) RectifyForRequest(ctx context.Context, after *Subscriber, requestID int64, actor string, audit AuditEntry) (int64, string, error) {
	if err := invalid(after.Validate()); err != nil {
		return 0, "", fmt.Errorf("models: rectify subscriber %d: %w", after.ID, err)
	}
	var rid int64
	var summary string
	err := s.conn(ctx).Transaction(func(tx *gorm.DB) error {
		var before Subscriber
		if err := tx.First(&before, after.ID).Error; err != nil {
			return notFound(err)
		}
		var n int64
		if err := tx.Model(&Subscriber{}).Where("lower(email) = lower(?) AND id <> ?", after.Email, after.ID).Count(&n).Error; err != nil {
			return err
		}
		if n > 0 {
			return ErrConflict
		}
		if err := tx.Model(&Subscriber{}).Where("id = ?", after.ID).Updates(map[string]any{
			"email": after.Email, "name": after.Name, "attributes": after.Attributes, "updated_at": dbNow(),
		}).Error; err != nil {
			return err
		}
		var changes []string
		if before.Email != after.Email {
			changes = append(changes, fmt.Sprintf("email %q → %q", before.Email, after.Email))
		}
		if before.Name != after.Name {
			changes = append(changes, fmt.Sprintf("name %q → %q", before.Name, after.Name))
		}
		if a, b := attributesText(before.Attributes), attributesText(after.Attributes); a != b {
			changes = append(changes, fmt.Sprintf("attributes %s → %s", a, b))
		}
		if len(changes) == 0 {
			changes = []string{"nothing changed"}
		}
		summary = strings.Join(changes, "; ")
		var err error
		rid, err = recordDSRTx(tx, requestID, DSRRectification, &before, actor, "rectified: "+summary)
		if err != nil {
			return err
		}
		audit.Action, audit.ObjectType, audit.ObjectID = "dsr.rectify", "subscriber", strconv.FormatInt(before.ID, 10)
		audit.Summary = fmt.Sprintf("request #%d: %s", rid, summary)
		return auditTx(tx, audit)
	})
	if err != nil {
		return 0, "", fmt.Errorf("models: rectify subscriber %d: %w", after.ID, err)
	}
	return rid, summary, nil
}

// EraseForRequest erases a subscriber (EraseSubscriber) in answer to a
// data-subject request, in one transaction with the request's record and
// the audit entry. Without a request (requestID 0) one is logged first, so
// the erasure blanks its address like every other trace, then closed as
// done. audit gives who did it. It returns the request's id.
func (s *Store) EraseForRequest(ctx context.Context, id, requestID int64, ev Evidence, actor string, audit AuditEntry) (int64, error) {
	var rid int64
	err := s.conn(ctx).Transaction(func(tx *gorm.DB) error {
		var sub Subscriber
		if err := tx.First(&sub, id).Error; err != nil {
			return notFound(err)
		}
		if requestID == 0 {
			r := &DSRRequest{Kind: DSRErasure, SubjectEmail: sub.Email, SubscriberID: &sub.ID, CreatedBy: actor}
			prepareDSR(r)
			if err := tx.Create(r).Error; err != nil {
				return err
			}
			requestID = r.ID
		}
		if err := s.eraseTx(tx, id, ev); err != nil {
			return err
		}
		var err error
		if rid, err = recordDSRTx(tx, requestID, DSRErasure, &sub, actor, "erased"); err != nil {
			return err
		}
		audit.Action, audit.ObjectType, audit.ObjectID = "dsr.erase", "subscriber", strconv.FormatInt(id, 10)
		audit.Summary = fmt.Sprintf("request #%d: subscriber %d erased", rid, id)
		return auditTx(tx, audit)
	})
	if err != nil {
		return 0, fmt.Errorf("models: erase subscriber %d: %w", id, err)
	}
	return rid, nil
}

// recordDSRTx closes request id as done, or, when id is 0, logs one that
// is done already; it returns the request's id.
func recordDSRTx(tx *gorm.DB, id int64, kind string, sub *Subscriber, actor, outcome string) (int64, error) {
	t := dbNow()
	if id != 0 {
		res := tx.Model(&DSRRequest{}).Where("id = ? AND status = ?", id, DSROpen).Updates(map[string]any{
			"status": DSRDone, "handled_by": actor, "outcome": outcome, "handled_at": t, "subscriber_id": sub.ID})
		if res.Error != nil {
			return 0, res.Error
		}
		if res.RowsAffected == 0 {
			return 0, ErrDSRClosed
		}
		return id, nil
	}
	r := &DSRRequest{Kind: kind, SubjectEmail: sub.Email, SubscriberID: &sub.ID, Status: DSRDone,
		Outcome: outcome, CreatedBy: actor, HandledBy: actor, ReceivedAt: t, HandledAt: &t}
	prepareDSR(r)
	if err := tx.Create(r).Error; err != nil {
		return 0, err
	}
	return r.ID, nil
}

// attributesText is attributes as compact JSON for a summary.
func attributesText(a Attributes) string {
	if len(a) == 0 {
		return "{}"
	}
	v, err := a.Value()
	if err != nil {
		return "?"
	}
	return fmt.Sprint(v)
}

type txCtxKey struct{}

// Tx is a change a caller assembles from several store calls, committed
// together with its audit entry. Begin starts it; every store call made
// with its context (Ctx) joins the transaction, so a handler keeps calling
// the usual store methods and its entry lands with them or not at all.
// A store method that has its own transaction (tx) nests in it as a
// savepoint.
type Tx struct {
	db    *gorm.DB
	ctx   context.Context
	done  bool
	after []func()
}

// AfterCommit runs fn once the change ctx carries commits (not at all if
// it rolls back), or now when ctx carries none: a wake-up or an in-memory
// state that must not run ahead of the database.
func AfterCommit(ctx context.Context, fn func()) {
	if t, ok := ctx.Value(txCtxKey{}).(*Tx); ok && !t.done {
		t.after = append(t.after, fn)
		return
	}
	fn()
}

// Begin starts a change. Defer End, and finish with Commit: End rolls
// back what was not committed (an early return, a refused input, a
// panic). Keep the work between them to the database: on SQLite the
// transaction holds the write lock until it ends.
func (s *Store) Begin(ctx context.Context) (*Tx, error) {
	if t, ok := ctx.Value(txCtxKey{}).(*Tx); ok && !t.done {
		return nil, fmt.Errorf("models: begin: a change is already open on this context")
	}
	db := s.db.WithContext(ctx).Begin()
	if db.Error != nil {
		return nil, fmt.Errorf("models: begin: %w", db.Error)
	}
	t := &Tx{db: db}
	t.ctx = context.WithValue(ctx, txCtxKey{}, t)
	if h, ok := ctx.Value(changesKey{}).(*changes); ok {
		h.mu.Lock()
		h.open = append(h.open, t)
		h.mu.Unlock()
	}
	return t, nil
}

type changesKey struct{}

// changes are the changes begun under one request (WithChanges).
type changes struct {
	mu   sync.Mutex
	open []*Tx
}

// WithChanges returns a context under which Begin notes every change it
// starts, so that EndChanges can end those still open. A request's
// handler runs under one: before anything is written to the client, its
// changes must be over, because writing the response also saves the
// session, which on SQLite waits for the write lock an open change holds
// (until busy_timeout, and then the request fails).
func WithChanges(ctx context.Context) context.Context {
	return context.WithValue(ctx, changesKey{}, &changes{})
}

// EndChanges ends (rolls back) every change begun under ctx that is still
// open: committed ones are left as they are.
func EndChanges(ctx context.Context) {
	h, ok := ctx.Value(changesKey{}).(*changes)
	if !ok {
		return
	}
	h.mu.Lock()
	open := h.open
	h.open = nil
	h.mu.Unlock()
	for _, t := range open {
		t.End()
	}
}

// Ctx is the context whose store calls join the change.
func (t *Tx) Ctx() context.Context { return t.ctx }

// Commit writes the audit entries in the change's transaction and
// commits all; when any fails, nothing of the change stays.
func (t *Tx) Commit(entries ...AuditEntry) error {
	if t.done {
		return fmt.Errorf("models: commit: the change has ended")
	}
	t.done = true
	for _, e := range entries {
		if err := auditTx(t.db, e); err != nil {
			t.db.Rollback()
			return fmt.Errorf("models: commit: %w", err)
		}
	}
	if err := t.db.Commit().Error; err != nil {
		return fmt.Errorf("models: commit: %w", err)
	}
	for _, fn := range t.after {
		fn()
	}
	return nil
}

// End rolls the change back unless it was committed.
func (t *Tx) End() {
	if !t.done {
		t.done = true
		t.db.Rollback()
	}
}
