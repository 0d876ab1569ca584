package models_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/herald-mail/herald/internal/testdb"
	"github.com/herald-mail/herald/models"
)

func count(t *testing.T, s *models.Store, sql string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := s.DB().Raw(sql, args...).Scan(&n).Error; err != nil {
		t.Fatal(err)
	}
	return n
}

// breakAudit makes every audit write fail, as a full disk or a lost
// connection would.
func breakAudit(t *testing.T, s *models.Store) {
	t.Helper()
	if err := s.DB().Exec("ALTER TABLE audit_log RENAME TO audit_log_gone").Error; err != nil {
		t.Fatal(err)
	}
}

// A change and the audit entry on its context commit together: the entry
// names the created row, a refused change writes no entry, and a failed
// audit write undoes the change.
func TestAuditInTheChangesTransaction(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		entry := models.AuditEntry{Action: "subscriber.create", ObjectType: "subscriber", Actor: "admin@example.com"}
		sub := &models.Subscriber{Email: "ada@example.org"}
		actx := models.WithAudit(ctx, entry, &sub.ID)
		if err := s.CreateSubscriber(actx, sub, nil, models.Evidence{Source: models.SourceAdmin}); err != nil {
			t.Fatal(err)
		}
		if !models.AuditWritten(actx) {
			t.Error("AuditWritten() = false after the change")
		}
		if n := count(t, s, "SELECT count(*) FROM audit_log WHERE action = 'subscriber.create' AND object_id = ?", fmt.Sprint(sub.ID)); n != 1 {
			t.Errorf("audit rows for the created subscriber = %d, want 1", n)
		}
		// Refused change: no entry.
		dup := &models.Subscriber{Email: "ada@example.org"}
		if err := s.CreateSubscriber(models.WithAudit(ctx, entry, &dup.ID), dup, nil, models.Evidence{Source: models.SourceAdmin}); !errors.Is(err, models.ErrConflict) {
			t.Fatalf("duplicate CreateSubscriber() = %v, want ErrConflict", err)
		}
		if n := count(t, s, "SELECT count(*) FROM audit_log"); n != 1 {
			t.Errorf("audit rows after a refused change = %d, want 1", n)
		}
		// Failed audit write: no change.
		breakAudit(t, s)
		other := &models.Subscriber{Email: "grace@example.org"}
		if err := s.CreateSubscriber(models.WithAudit(ctx, entry, &other.ID), other, nil, models.Evidence{Source: models.SourceAdmin}); err == nil {
			t.Fatal("CreateSubscriber() with a failing audit write = nil, want an error")
		}
		if n := count(t, s, "SELECT count(*) FROM subscribers WHERE email = 'grace@example.org'"); n != 0 {
			t.Errorf("the change stayed although its audit entry failed (%d rows)", n)
		}
	})
}

// Rectify and erase are single store methods in one transaction: the
// change, the data-subject request's record and the audit entry land
// together, or none does.
func TestRectifyAndEraseAreOneTransaction(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		ev := models.Evidence{Source: models.SourceAdmin}
		ada := &models.Subscriber{Email: "ada@example.org", Name: "Ada"}
		bob := &models.Subscriber{Email: "bob@example.org", Name: "Bob"}
		for _, sub := range []*models.Subscriber{ada, bob} {
			if err := s.CreateSubscriber(ctx, sub, nil, ev); err != nil {
				t.Fatal(err)
			}
		}
		who := models.AuditEntry{Actor: "admin@example.com"}
		rid, summary, err := s.RectifyForRequest(ctx, &models.Subscriber{ID: ada.ID, Email: "ada@example.net", Name: "Ada L."}, 0, "admin@example.com", who)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("rectified as request #%d: %s", rid, summary)
		if n := count(t, s, "SELECT count(*) FROM dsr_requests WHERE id = ? AND status = 'done' AND kind = 'rectification'", rid); n != 1 {
			t.Errorf("done rectification requests = %d, want 1", n)
		}
		if n := count(t, s, "SELECT count(*) FROM audit_log WHERE action = 'dsr.rectify' AND object_id = ?", fmt.Sprint(ada.ID)); n != 1 {
			t.Errorf("rectify audit rows = %d, want 1", n)
		}
		// An open request, answered by erasure.
		req := &models.DSRRequest{Kind: models.DSRErasure, SubjectEmail: bob.Email, SubscriberID: &bob.ID}
		if err := s.CreateDSR(ctx, req); err != nil {
			t.Fatal(err)
		}
		breakAudit(t, s)
		if _, _, err := s.RectifyForRequest(ctx, &models.Subscriber{ID: ada.ID, Email: "ada@example.com"}, 0, "admin", who); err == nil {
			t.Fatal("RectifyForRequest() with a failing audit write = nil, want an error")
		}
		if got, _ := s.Subscriber(ctx, ada.ID); got.Email != "ada@example.net" {
			t.Errorf("email after a failed rectification = %q, want it unchanged", got.Email)
		}
		if _, err := s.EraseForRequest(ctx, bob.ID, req.ID, ev, "admin", who); err == nil {
			t.Fatal("EraseForRequest() with a failing audit write = nil, want an error")
		}
		if got, err := s.Subscriber(ctx, bob.ID); err != nil || got.Email != "bob@example.org" {
			t.Errorf("subscriber after a failed erasure = %+v, %v; want it intact", got, err)
		}
		if r, _ := s.DSR(ctx, req.ID); r.Status != models.DSROpen {
			t.Errorf("request after a failed erasure = %s, want still open", r.Status)
		}
		if n := count(t, s, "SELECT count(*) FROM dsr_requests"); n != 2 {
			t.Errorf("requests after the failures = %d, want 2 (no half-written ones)", n)
		}
	})
}
