package models_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/herald-mail/herald/internal/testdb"
	"github.com/herald-mail/herald/models"
)

func TestDSRLifecycle(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		bad := &models.DSRRequest{Kind: "delete-me", SubjectEmail: "not an address", ReceivedAt: time.Now().Add(72 * time.Hour)}
		errs := bad.Validate()
		for _, f := range []string{"kind", "email", "received_at"} {
			if errs[f] == "" {
				t.Errorf("Validate() has no message for %s: %v", f, errs)
			}
		}
		old := &models.DSRRequest{Kind: models.DSRErasure, SubjectEmail: " Ada@Example.com ", ReceivedAt: time.Now().Add(-40 * 24 * time.Hour), CreatedBy: "admin@example.com"}
		if errs := old.Validate(); len(errs) > 0 {
			t.Fatalf("Validate() = %v", errs)
		}
		if err := s.CreateDSR(ctx, old); err != nil {
			t.Fatal(err)
		}
		fresh := &models.DSRRequest{Kind: models.DSRAccess, SubjectEmail: "ada@example.com"}
		if err := s.CreateDSR(ctx, fresh); err != nil {
			t.Fatal(err)
		}
		other := &models.DSRRequest{Kind: models.DSRAccess, SubjectEmail: "bob@example.com", ReceivedAt: time.Now().Add(-60 * 24 * time.Hour)}
		s.CreateDSR(ctx, other)
		if err := s.CloseDSR(ctx, other.ID, models.DSRRejected, "admin@example.com", "identity not verified", 0); err != nil {
			t.Fatal(err)
		}
		open, overdue, err := s.OpenDSRCount(ctx, time.Now())
		if err != nil || open != 2 || overdue != 1 {
			t.Fatalf("OpenDSRCount = %d, %d, %v; want 2, 1", open, overdue, err)
		}
		got, err := s.DSR(ctx, old.ID)
		if err != nil || !got.Overdue(time.Now()) || got.SubjectEmail != "Ada@example.com" {
			t.Fatalf("DSR(old) = %+v, %v; want overdue, normalised address", got, err)
		}
		if f, _ := s.DSR(ctx, fresh.ID); f.Overdue(time.Now()) || !f.Overdue(time.Now().Add(31*24*time.Hour)) {
			t.Errorf("fresh request overdue now, or not after 31 days")
		}
		rows, _, err := s.DSRs(ctx, models.DSRQuery{Status: models.DSROpen})
		if err != nil || len(rows) != 2 {
			t.Fatalf("open requests = %d, %v", len(rows), err)
		}
		if err := s.CloseDSR(ctx, old.ID, models.DSRDone, "admin@example.com", "erased", 7); err != nil {
			t.Fatal(err)
		}
		if err := s.CloseDSR(ctx, old.ID, models.DSRDone, "admin@example.com", "again", 7); !errors.Is(err, models.ErrDSRClosed) {
			t.Fatalf("closing twice: %v, want ErrDSRClosed", err)
		}
		if err := s.CloseDSR(ctx, 9999, models.DSRDone, "x", "y", 0); !errors.Is(err, models.ErrNotFound) {
			t.Fatalf("closing a missing request: %v, want ErrNotFound", err)
		}
		closed, _ := s.DSR(ctx, old.ID)
		if closed.Status != models.DSRDone || closed.HandledAt == nil || closed.HandledBy != "admin@example.com" || closed.SubscriberID == nil || *closed.SubscriberID != 7 {
			t.Fatalf("closed request = %+v", closed)
		}
	})
}
