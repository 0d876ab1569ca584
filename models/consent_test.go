package models_test

import (
	"context"
	"testing"

	"github.com/herald-mail/herald/internal/testdb"
	"github.com/herald-mail/herald/models"
)

func TestConsentChainDetectsEdits(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		l := &models.List{Name: "News", Optin: models.OptinSingle, Visibility: models.ListPublic}
		if err := s.CreateList(ctx, l); err != nil {
			t.Fatal(err)
		}
		ev := models.Evidence{Source: models.SourceForm, IP: "192.0.2.1", UserAgent: "test", Actor: "subscriber"}
		var ids []int64
		for _, e := range []string{"a@example.com", "b@example.com", "c@example.com"} {
			sub := &models.Subscriber{Email: e}
			if err := s.CreateSubscriber(ctx, sub, map[int64]string{l.ID: models.SubConfirmed}, ev); err != nil {
				t.Fatal(err)
			}
			ids = append(ids, sub.ID)
		}
		if err := s.SetSubscriptions(ctx, ids[1], map[int64]string{l.ID: models.SubUnsubscribed}, ev); err != nil {
			t.Fatal(err)
		}
		brk, n, err := s.VerifyConsents(ctx)
		if err != nil || brk != nil || n != 4 {
			t.Fatalf("VerifyConsents() = %+v, %d, %v; want nil, 4, nil", brk, n, err)
		}
		hist, err := s.ConsentsBySubscriber(ctx, ids[1])
		if err != nil {
			t.Fatal(err)
		}
		if len(hist) != 2 || hist[0].Action != models.ConsentGranted || hist[1].Action != models.ConsentWithdrawn {
			t.Fatalf("history of b = %+v, want granted then withdrawn", hist)
		}

		// Tamper: change the lawful basis of the second row directly.
		if err := s.DB().Exec("UPDATE consents SET lawful_basis = 'legitimate_interest' WHERE id = ?", hist[0].ID).Error; err != nil {
			t.Fatal(err)
		}
		brk, _, err = s.VerifyConsents(ctx)
		if err != nil || brk == nil || brk.ID != hist[0].ID {
			t.Fatalf("after edit VerifyConsents() = %+v, %v; want break at %d", brk, err, hist[0].ID)
		}
		s.DB().Exec("UPDATE consents SET lawful_basis = 'consent' WHERE id = ?", hist[0].ID)
		if brk, _, _ = s.VerifyConsents(ctx); brk != nil {
			t.Fatalf("restored row still breaks: %+v", brk)
		}

		// Tamper: change evidence (the IP).
		s.DB().Exec("UPDATE consents SET ip = '203.0.113.9' WHERE id = ?", hist[1].ID)
		if brk, _, _ = s.VerifyConsents(ctx); brk == nil || brk.ID != hist[1].ID {
			t.Fatalf("after IP edit break = %+v, want at %d", brk, hist[1].ID)
		}
		s.DB().Exec("UPDATE consents SET ip = '192.0.2.1' WHERE id = ?", hist[1].ID)

		// Tamper: delete a row; the next one no longer links.
		first := hist[0].ID
		s.DB().Exec("DELETE FROM consents WHERE id = ?", first)
		brk, _, _ = s.VerifyConsents(ctx)
		if brk == nil || brk.ID <= first {
			t.Fatalf("after delete break = %+v, want a row after %d", brk, first)
		}
	})
}

func TestUnsubscribeNonMemberChangesNothing(t *testing.T) {
	s := testdb.SQLite(t)
	ctx := context.Background()
	l := &models.List{Name: "News", Optin: models.OptinSingle, Visibility: models.ListPublic}
	s.CreateList(ctx, l)
	sub := &models.Subscriber{Email: "x@example.com"}
	if err := s.CreateSubscriber(ctx, sub, nil, models.Evidence{Source: models.SourceAdmin}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetSubscriptions(ctx, sub.ID, map[int64]string{l.ID: models.SubUnsubscribed}, models.Evidence{Source: models.SourceAPI}); err != nil {
		t.Fatal(err)
	}
	subs, _ := s.SubscriptionsOf(ctx, sub.ID)
	hist, _ := s.ConsentsBySubscriber(ctx, sub.ID)
	if len(subs) != 0 || len(hist) != 0 {
		t.Fatalf("subscriptions = %v, consents = %v; want none", subs, hist)
	}
}
