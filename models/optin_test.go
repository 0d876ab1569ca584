package models_test

import (
	"context"
	"errors"
	"testing"

	"github.com/herald-mail/herald/internal/testdb"
	"github.com/herald-mail/herald/models"
)

func mkList(t *testing.T, s *models.Store, name, optin, vis string) int64 {
	t.Helper()
	l := &models.List{Name: name, Optin: optin, Visibility: vis}
	if err := s.CreateList(context.Background(), l); err != nil {
		t.Fatal(err)
	}
	return l.ID
}

func statusOn(t *testing.T, s *models.Store, sub, list int64) string {
	t.Helper()
	subs, err := s.SubscriptionsOf(context.Background(), sub)
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range subs {
		if x.ListID == list {
			return x.Status
		}
	}
	return ""
}

func TestSignupFromForm(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		single := mkList(t, s, "Single", models.OptinSingle, models.ListPublic)
		double := mkList(t, s, "Double", models.OptinDouble, models.ListPublic)
		private := mkList(t, s, "Private", models.OptinSingle, models.ListPrivate)
		ev := models.Evidence{Source: models.SourceForm, IP: "192.0.2.7", UserAgent: "ua", ConsentText: "I agree"}

		if _, err := s.SignupFromForm(ctx, "x@example.com", "X", private, ev); !errors.Is(err, models.ErrNotFound) {
			t.Errorf("private list: err = %v, want ErrNotFound", err)
		}
		if _, err := s.SignupFromForm(ctx, "x@example.com", "X", 987654, ev); !errors.Is(err, models.ErrNotFound) {
			t.Errorf("unknown list: err = %v, want ErrNotFound", err)
		}

		cases := []struct {
			name, email string
			list        int64
			want        string
			status      string
		}{
			{"new, single", "ann@example.com", single, models.SignupSubscribed, models.SubConfirmed},
			{"again, single", "ann@example.com", single, models.SignupUnchanged, models.SubConfirmed},
			{"existing, double", "ann@example.com", double, models.SignupPending, models.SubUnconfirmed},
			{"pending again, double", "ann@example.com", double, models.SignupPending, models.SubUnconfirmed},
		}
		var id int64
		for _, c := range cases {
			res, err := s.SignupFromForm(ctx, c.email, "Ann", c.list, ev)
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			if res.Outcome != c.want {
				t.Errorf("%s: outcome = %q, want %q", c.name, res.Outcome, c.want)
			}
			id = res.SubscriberID
			if got := statusOn(t, s, id, c.list); got != c.status {
				t.Errorf("%s: status = %q, want %q", c.name, got, c.status)
			}
		}
		rows, err := s.ConsentsBySubscriber(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != 2 {
			t.Fatalf("consent rows = %d, want 2 (one grant per list; repeats write nothing)", len(rows))
		}
		if rows[0].TextHash == "" || rows[0].IP != "192.0.2.7" {
			t.Errorf("row = %+v, want the consent text hash and IP", rows[0])
		}

		// Unsubscribed people may come back; the ledger records it.
		if err := s.SetSubscriptions(ctx, id, map[int64]string{single: models.SubUnsubscribed}, ev); err != nil {
			t.Fatal(err)
		}
		if res, _ := s.SignupFromForm(ctx, "ANN@example.com", "", single, ev); res.Outcome != models.SignupSubscribed || statusOn(t, s, id, single) != models.SubConfirmed {
			t.Errorf("resubscribe after leaving: %+v, status %q", res, statusOn(t, s, id, single))
		}

		if err := s.AddSuppression(ctx, "@blocked.example", models.SuppressManual, ""); err != nil {
			t.Fatal(err)
		}
		if res, err := s.SignupFromForm(ctx, "who@blocked.example", "", single, ev); err != nil || res.Outcome != models.SignupRefused || res.SubscriberID != 0 {
			t.Errorf("suppressed domain: %+v %v, want refused with no subscriber", res, err)
		}
	})
}

func TestConfirmSubscription(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		double := mkList(t, s, "Double", models.OptinDouble, models.ListPublic)
		res, err := s.SignupFromForm(ctx, "bo@example.com", "", double, models.Evidence{Source: models.SourceForm})
		if err != nil {
			t.Fatal(err)
		}
		proof := models.Evidence{Source: models.SourceForm, IP: "198.51.100.4", UserAgent: "Firefox", Actor: "subscriber"}
		for i, want := range []string{models.ConfirmDone, models.ConfirmAlready, models.ConfirmAlready} {
			got, err := s.ConfirmSubscription(ctx, res.SubscriberID, double, proof)
			if err != nil || got != want {
				t.Errorf("confirm #%d = %q, %v; want %q", i+1, got, err, want)
			}
		}
		rows, _ := s.ConsentsBySubscriber(ctx, res.SubscriberID)
		if len(rows) != 2 || rows[1].Action != models.ConsentConfirmed || rows[1].IP != "198.51.100.4" || rows[1].UserAgent != "Firefox" {
			t.Fatalf("ledger = %+v, want granted then one confirmed row with the proof", rows)
		}
		if err := s.SetSubscriptions(ctx, res.SubscriberID, map[int64]string{double: models.SubUnsubscribed}, proof); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.ConfirmSubscription(ctx, res.SubscriberID, double, proof); got != models.ConfirmStale {
			t.Errorf("confirm after leaving = %q, want stale", got)
		}
		if statusOn(t, s, res.SubscriberID, double) != models.SubUnsubscribed {
			t.Error("an old confirmation link resubscribed someone who left")
		}
		if _, err := s.ConfirmSubscription(ctx, 424242, double, proof); !errors.Is(err, models.ErrNotFound) {
			t.Errorf("unknown subscriber: %v, want ErrNotFound", err)
		}
	})
}

func TestEnsureOptinTemplateKeepsEdits(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		tpl, err := s.EnsureOptinTemplate(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if tpl.Kind != models.TemplateTransactional || tpl.Name != models.OptinTemplate || tpl.HTML == "" || tpl.Text == "" {
			t.Fatalf("template = %+v", tpl)
		}
		tpl.Subject = "Edited: {{.Data.list}}"
		if err := s.UpdateTemplate(ctx, tpl); err != nil {
			t.Fatal(err)
		}
		again, err := s.EnsureOptinTemplate(ctx)
		if err != nil || again.ID != tpl.ID || again.Subject != "Edited: {{.Data.list}}" {
			t.Errorf("second ensure = %+v, %v; want the edited template kept", again, err)
		}
	})
}
