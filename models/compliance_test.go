package models_test

import (
	"context"
	"testing"
	"time"

	"github.com/herald-mail/herald/internal/testdb"
	"github.com/herald-mail/herald/models"
)

func mustList(t *testing.T, s *models.Store, name, optin string) *models.List {
	t.Helper()
	l := &models.List{Name: name, Optin: optin, Visibility: models.ListPrivate}
	if err := s.CreateList(context.Background(), l); err != nil {
		t.Fatal(err)
	}
	return l
}

func mustSubscribe(t *testing.T, s *models.Store, email string, lists map[int64]string, ev models.Evidence) int64 {
	t.Helper()
	sub := &models.Subscriber{Email: email}
	if err := s.CreateSubscriber(context.Background(), sub, lists, ev); err != nil {
		t.Fatalf("subscribe %s: %v", email, err)
	}
	return sub.ID
}

func TestConsentPageFilters(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		news, promo := mustList(t, s, "News", models.OptinSingle), mustList(t, s, "Promo", models.OptinSingle)
		form := models.Evidence{Source: models.SourceForm, IP: "192.0.2.1", ConsentText: "Yes please"}
		admin := models.Evidence{Source: models.SourceAdmin, LawfulBasis: models.BasisLegitimate, Note: "customer", Actor: "admin@example.com"}
		a := mustSubscribe(t, s, "a@example.com", map[int64]string{news.ID: models.SubConfirmed}, form)
		mustSubscribe(t, s, "B@example.com", map[int64]string{promo.ID: models.SubConfirmed}, admin)
		mustSubscribe(t, s, "c@example.com", map[int64]string{news.ID: models.SubConfirmed, promo.ID: models.SubConfirmed}, form)
		if err := s.SetSubscriptions(ctx, a, map[int64]string{news.ID: models.SubUnsubscribed}, form); err != nil {
			t.Fatal(err)
		}
		// 5 rows: a granted, b granted, c granted ×2, a withdrawn.
		count := func(q models.ConsentQuery) int {
			t.Helper()
			rows, next, err := s.ConsentPage(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			if next != 0 {
				t.Fatalf("unexpected next page for %+v", q)
			}
			n := 0
			if err := s.EachConsent(ctx, q, func(*models.ConsentEntry) error { n++; return nil }); err != nil {
				t.Fatal(err)
			}
			if n != len(rows) {
				t.Fatalf("EachConsent(%+v) saw %d rows, ConsentPage %d", q, n, len(rows))
			}
			return n
		}
		hour := time.Hour
		for _, tc := range []struct {
			name string
			q    models.ConsentQuery
			want int
		}{
			{"all", models.ConsentQuery{}, 5},
			{"list", models.ConsentQuery{ListID: news.ID}, 3},
			{"source", models.ConsentQuery{Source: models.SourceAdmin}, 1},
			{"basis", models.ConsentQuery{LawfulBasis: models.BasisLegitimate}, 1},
			{"action", models.ConsentQuery{Action: models.ConsentWithdrawn}, 1},
			{"email any case", models.ConsentQuery{Email: "b@EXAMPLE.com"}, 1},
			{"subscriber", models.ConsentQuery{SubscriberID: a}, 2},
			{"combined", models.ConsentQuery{ListID: promo.ID, Source: models.SourceForm}, 1},
			{"range now", models.ConsentQuery{From: time.Now().Add(-hour), To: time.Now().Add(hour)}, 5},
			{"range future", models.ConsentQuery{From: time.Now().Add(hour)}, 0},
			{"range past", models.ConsentQuery{To: time.Now().Add(-hour)}, 0},
		} {
			if got := count(tc.q); got != tc.want {
				t.Errorf("%s: %d rows, want %d", tc.name, got, tc.want)
			}
		}
		// Keyset pages of 2 cover all 5 rows, newest first, once each.
		seen := map[int64]bool{}
		var last int64 = 1 << 62
		q := models.ConsentQuery{Limit: 2}
		for pages := 0; ; pages++ {
			rows, next, err := s.ConsentPage(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range rows {
				if seen[r.ID] || r.ID >= last {
					t.Fatalf("row %d repeated or out of order", r.ID)
				}
				seen[r.ID], last = true, r.ID
				if r.ListID != nil && r.ListName == "" {
					t.Errorf("row %d has no list name", r.ID)
				}
			}
			if next == 0 {
				break
			}
			if pages > 5 {
				t.Fatal("pagination does not end")
			}
			q.Before = next
		}
		if len(seen) != 5 {
			t.Errorf("pages covered %d rows, want 5", len(seen))
		}
	})
}

// TestConsentCoverage plants members with and without a valid basis and
// checks the counts, the list of those lacking one, and unsubscribing them.
func TestConsentCoverage(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		l := mustList(t, s, "Letters", models.OptinDouble)
		other := mustList(t, s, "Other", models.OptinSingle)
		on := func(st string) map[int64]string { return map[int64]string{l.ID: st} }
		form := models.Evidence{Source: models.SourceForm, IP: "192.0.2.1", UserAgent: "UA"}
		bare := models.Evidence{Source: models.SourceAdmin, Actor: "admin@example.com", IP: "198.51.100.1"}
		mustSubscribe(t, s, "form@example.com", on(models.SubConfirmed), form)
		mustSubscribe(t, s, "li@example.com", on(models.SubConfirmed), models.Evidence{Source: models.SourceAdmin, LawfulBasis: models.BasisLegitimate, Note: "existing customers, LIA 2024-01"})
		lacking1 := mustSubscribe(t, s, "bare@example.com", on(models.SubConfirmed), bare)
		lacking2 := mustSubscribe(t, s, "linote@example.com", on(models.SubConfirmed), models.Evidence{Source: models.SourceAdmin, LawfulBasis: models.BasisLegitimate})
		// Confirmed by the subscriber themselves after an admin added them unconfirmed.
		doi := mustSubscribe(t, s, "doi@example.com", on(models.SubUnconfirmed), bare)
		if err := s.SetSubscriptions(ctx, doi, on(models.SubConfirmed), models.Evidence{Source: models.SourceForm}); err != nil {
			t.Fatal(err)
		}
		// Had a valid consent, withdrew, was put back by an admin without evidence.
		back := mustSubscribe(t, s, "back@example.com", on(models.SubConfirmed), form)
		s.SetSubscriptions(ctx, back, on(models.SubUnsubscribed), form)
		if err := s.SetSubscriptions(ctx, back, on(models.SubConfirmed), bare); err != nil {
			t.Fatal(err)
		}
		// Unsubscribed members are not counted.
		gone := mustSubscribe(t, s, "gone@example.com", on(models.SubConfirmed), bare)
		s.SetSubscriptions(ctx, gone, on(models.SubUnsubscribed), bare)

		cov, err := s.ConsentCoverage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(cov) != 2 || cov[0].ListID != l.ID || cov[1].ListID != other.ID {
			t.Fatalf("coverage = %+v", cov)
		}
		if c := cov[0]; c.Live != 6 || c.Covered != 3 || c.Lacking() != 3 {
			t.Errorf("coverage of Letters = live %d covered %d lacking %d, want 6/3/3", c.Live, c.Covered, c.Lacking())
		}
		if c := cov[1]; c.Live != 0 || c.Lacking() != 0 {
			t.Errorf("coverage of an empty list = %+v", c)
		}
		rows, next, err := s.LackingBasis(ctx, l.ID, 0, 2)
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != 2 || next == 0 || rows[0].SubscriberID != lacking1 || rows[1].SubscriberID != lacking2 {
			t.Fatalf("first page of lacking = %+v next %d", rows, next)
		}
		rest, next2, err := s.LackingBasis(ctx, l.ID, next, 2)
		if err != nil || len(rest) != 1 || next2 != 0 || rest[0].SubscriberID != back {
			t.Fatalf("second page of lacking = %+v next %d err %v", rest, next2, err)
		}
		n, err := s.UnsubscribeLacking(ctx, l.ID, models.Evidence{Source: models.SourceAdmin, Actor: "admin@example.com", Note: "no basis"})
		if err != nil || n != 3 {
			t.Fatalf("UnsubscribeLacking = %d, %v; want 3", n, err)
		}
		cov, _ = s.ConsentCoverage(ctx)
		if c := cov[0]; c.Live != 3 || c.Lacking() != 0 {
			t.Errorf("after unsubscribing: %+v", c)
		}
		w, _, err := s.ConsentPage(ctx, models.ConsentQuery{SubscriberID: lacking1, Action: models.ConsentWithdrawn})
		if err != nil || len(w) != 1 || w[0].Note != "no basis" {
			t.Fatalf("withdrawal row of %d = %+v, %v", lacking1, w, err)
		}
		if brk, _, err := s.VerifyConsents(ctx); err != nil || brk != nil {
			t.Fatalf("ledger after bulk unsubscribe: %+v %v", brk, err)
		}
	})
}

func TestFindPeople(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		l := mustList(t, s, "News", models.OptinSingle)
		ev := models.Evidence{Source: models.SourceForm, IP: "192.0.2.1"}
		mustSubscribe(t, s, "ada@example.com", map[int64]string{l.ID: models.SubConfirmed}, ev)
		gone := mustSubscribe(t, s, "gone@example.com", map[int64]string{l.ID: models.SubConfirmed}, ev)
		if err := s.DeleteSubscriber(ctx, gone, ev); err != nil {
			t.Fatal(err)
		}
		got, err := s.FindPeople(ctx, "ada", 10)
		if err != nil || len(got) != 1 || got[0].Email != "ada@example.com" || got[0].Consents != 1 {
			t.Fatalf("FindPeople(ada) = %+v, %v", got, err)
		}
		got, err = s.FindPeople(ctx, "GONE@example.com", 10)
		if err != nil || len(got) != 1 || got[0].SubscriberID != 0 || got[0].LedgerSubscriberID != gone || got[0].Consents != 2 {
			t.Fatalf("FindPeople(gone) = %+v, %v", got, err)
		}
		if got, _ := s.FindPeople(ctx, "nobody@example.com", 10); len(got) != 0 {
			t.Fatalf("FindPeople(nobody) = %+v", got)
		}
	})
}

func TestAuditPageFilters(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		for _, e := range []models.AuditEntry{
			{Actor: "Admin@example.com", Action: "list.create", ObjectType: "list", ObjectID: "1"},
			{Actor: "admin@example.com", Action: "subscriber.update", ObjectType: "subscriber", ObjectID: "2"},
			{Actor: "eve@example.com", Action: "subscriber.erase", ObjectType: "subscriber", ObjectID: "3"},
			{Actor: "eve@example.com", Action: "subscriber_x", ObjectType: "other"},
		} {
			if err := s.Audit(ctx, e); err != nil {
				t.Fatal(err)
			}
		}
		h := time.Hour
		for _, tc := range []struct {
			name string
			q    models.AuditQuery
			want int
		}{
			{"all", models.AuditQuery{}, 4},
			{"actor any case", models.AuditQuery{Actor: "ADMIN@example.com"}, 2},
			{"action prefix is literal", models.AuditQuery{ActionPrefix: "subscriber."}, 2},
			{"underscore not a wildcard", models.AuditQuery{ActionPrefix: "subscriber_"}, 1},
			{"object", models.AuditQuery{ObjectType: "subscriber"}, 2},
			{"range", models.AuditQuery{From: time.Now().Add(-h), To: time.Now().Add(h)}, 4},
			{"future", models.AuditQuery{From: time.Now().Add(h)}, 0},
		} {
			rows, _, err := s.AuditPage(ctx, tc.q)
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			if err := s.EachAudit(ctx, tc.q, func(*models.AuditEntry) error { n++; return nil }); err != nil {
				t.Fatal(err)
			}
			if len(rows) != tc.want || n != tc.want {
				t.Errorf("%s: page %d, each %d, want %d", tc.name, len(rows), n, tc.want)
			}
		}
		rows, next, err := s.AuditPage(ctx, models.AuditQuery{Limit: 3})
		if err != nil || len(rows) != 3 || next == 0 {
			t.Fatalf("page 1 = %d rows next %d, %v", len(rows), next, err)
		}
		rows2, next2, _ := s.AuditPage(ctx, models.AuditQuery{Limit: 3, Before: next})
		if len(rows2) != 1 || next2 != 0 || rows2[0].ID >= rows[2].ID {
			t.Fatalf("page 2 = %+v next %d", rows2, next2)
		}
		types, err := s.AuditObjectTypes(ctx)
		if err != nil || len(types) != 3 {
			t.Fatalf("object types = %v, %v", types, err)
		}
	})
}
