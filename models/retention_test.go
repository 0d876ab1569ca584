package models_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/herald-mail/herald/internal/testdb"
	"github.com/herald-mail/herald/models"
)

// TestEnforceRetention plants data of every kind the policy covers, then
// enforces retention with a clock moved forward: what is older than its
// period goes, what is younger or kept forever stays.
func TestEnforceRetention(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		start := time.Now().UTC()
		day := 24 * time.Hour
		p, err := s.Retention(ctx)
		if err != nil || p != models.DefaultRetention {
			t.Fatalf("Retention() = %+v, %v; want the defaults", p, err)
		}
		if err := s.SetRetention(ctx, models.RetentionPolicy{UnconfirmedDays: 10, EventDays: 20, BounceDays: 5, OutboxDays: 0}); err != nil {
			t.Fatal(err)
		}
		l1, l2 := mustList(t, s, "One", models.OptinDouble), mustList(t, s, "Two", models.OptinDouble)
		ev := models.Evidence{Source: models.SourceForm, IP: "192.0.2.1"}
		onlyUnconfirmed := mustSubscribe(t, s, "u@example.com", map[int64]string{l1.ID: models.SubUnconfirmed}, ev)
		mixed := mustSubscribe(t, s, "m@example.com", map[int64]string{l1.ID: models.SubUnconfirmed, l2.ID: models.SubConfirmed}, ev)
		confirmed := mustSubscribe(t, s, "c@example.com", map[int64]string{l1.ID: models.SubConfirmed}, ev)

		if err := s.InsertEvents(ctx, []models.Event{
			{DeliveryID: 1, CampaignID: 1, SubscriberID: confirmed, Kind: models.EventOpen, IP: "203.0.113.1", UserAgent: "old", CreatedAt: start.Add(-30 * day)},
			{DeliveryID: 1, CampaignID: 1, SubscriberID: confirmed, Kind: models.EventClick, IP: "203.0.113.1", UserAgent: "new", CreatedAt: start},
		}); err != nil {
			t.Fatal(err)
		}
		for _, at := range []time.Time{start.Add(-10 * day), start} {
			if err := s.DB().Exec(`INSERT INTO bounces (kind, category, status, diagnostic, remote_mta, created_at)
				VALUES ('hard', 'mailbox', '5.1.1', '550 no such user m@example.com', 'mx.example', ?)`, at).Error; err != nil {
				t.Fatal(err)
			}
		}
		if err := s.SaveOutbox(ctx, &models.OutboxMessage{MailFrom: "a@b", RcptTo: "c@example.com", Raw: "x"}); err != nil {
			t.Fatal(err)
		}

		// Nothing unconfirmed is old enough yet.
		rep, err := s.EnforceRetention(ctx, start.Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if rep.UnconfirmedRemoved != 0 || rep.EventsAnonymised != 1 || rep.BouncesCleared != 1 || rep.OutboxDeleted != 0 {
			t.Fatalf("first run = %+v; want 1 event, 1 bounce", rep)
		}
		var diag []string
		s.DB().Raw("SELECT diagnostic FROM bounces ORDER BY id").Scan(&diag)
		if len(diag) != 2 || diag[0] != "" || diag[1] == "" {
			t.Errorf("bounce diagnostics = %q; want the old one cleared only", diag)
		}

		// Eleven days later the unconfirmed subscriptions are due.
		rep, err = s.EnforceRetention(ctx, start.Add(11*day))
		if err != nil {
			t.Fatal(err)
		}
		// The second bounce is now 11 days old, past its 5.
		want := models.RetentionReport{UnconfirmedRemoved: 2, SubscribersRemoved: 1, BouncesCleared: 1}
		if rep != want {
			t.Fatalf("second run = %+v, want %+v", rep, want)
		}
		if _, err := s.Subscriber(ctx, onlyUnconfirmed); err == nil {
			t.Error("a subscriber left on no list was kept")
		}
		subs, err := s.SubscriptionsOf(ctx, mixed)
		if err != nil || len(subs) != 1 || subs[0].ListID != l2.ID {
			t.Errorf("mixed subscriber's memberships = %+v, %v; want only the confirmed one", subs, err)
		}
		if subs, _ := s.SubscriptionsOf(ctx, confirmed); len(subs) != 1 {
			t.Errorf("a confirmed subscription was removed")
		}
		hist, _ := s.ConsentsBySubscriber(ctx, mixed)
		if last := hist[len(hist)-1]; last.Action != models.ConsentWithdrawn || last.Source != models.SourceRetention {
			t.Errorf("last ledger row of the mixed subscriber = %+v, want a retention withdrawal", last)
		}
		if brk, _, err := s.VerifyConsents(ctx); brk != nil || err != nil {
			t.Fatalf("ledger after retention: %+v %v", brk, err)
		}

		// Outbox is kept forever (0) until the policy changes.
		var n int64
		s.DB().Raw("SELECT count(*) FROM outbox").Scan(&n)
		if n != 1 {
			t.Fatalf("outbox rows = %d, want 1 (kept forever)", n)
		}
		s.SetRetention(ctx, models.RetentionPolicy{OutboxDays: 30})
		if rep, _ = s.EnforceRetention(ctx, start.Add(29*day)); rep.OutboxDeleted != 0 {
			t.Errorf("outbox deleted before 30 days: %+v", rep)
		}
		if rep, _ = s.EnforceRetention(ctx, start.Add(31*day)); rep.OutboxDeleted != 1 || rep.EventsAnonymised != 0 {
			t.Errorf("after 31 days = %+v; want 1 outbox message, and no events (their retention is now forever)", rep)
		}

		var personal int64
		s.DB().Raw("SELECT count(*) FROM events WHERE ip <> '' OR user_agent <> '' OR subscriber_id IS NOT NULL").Scan(&personal)
		var total int64
		s.DB().Raw("SELECT count(*) FROM events").Scan(&total)
		if personal != 1 || total != 2 {
			t.Errorf("events: %d with personal data of %d; want 1 of 2", personal, total)
		}
		var mta []string
		s.DB().Raw("SELECT remote_mta FROM bounces WHERE remote_mta <> ''").Scan(&mta)
		if len(mta) != 0 {
			t.Errorf("remote MTAs kept past retention: %q", mta)
		}
	})
}

func TestParseRetention(t *testing.T) {
	vals := map[string]string{models.SettingRetainUnconfirmed: "7", models.SettingRetainEvents: "-1",
		models.SettingRetainBounces: "ten", models.SettingRetainOutbox: "0"}
	p, errs := models.ParseRetention(func(k string) string { return vals[k] })
	if len(errs) != 2 || errs[models.SettingRetainEvents] == "" || errs[models.SettingRetainBounces] == "" {
		t.Fatalf("errors = %v; want events and bounces", errs)
	}
	if p.UnconfirmedDays != 7 || p.OutboxDays != 0 {
		t.Errorf("policy = %+v", p)
	}
}

// TestTakeJob: once due, exactly one of many concurrent callers gets the
// job; a run that did not finish is taken up again after its lease; after
// a finished run nobody gets it within the period, and it is due after.
func TestTakeJob(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		now := time.Now()
		var wg sync.WaitGroup
		var got atomic.Int32
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				mine, err := s.TakeJob(ctx, "daily", "node-a", now, 15*time.Minute)
				if err != nil {
					t.Error(err)
				}
				if mine {
					got.Add(1)
				}
			}()
		}
		wg.Wait()
		if got.Load() != 1 {
			t.Fatalf("%d callers got the job, want 1", got.Load())
		}
		// The run fails (JobDone is not called): the job is due again once
		// the lease is over, not a day later.
		if mine, _ := s.TakeJob(ctx, "daily", "node-a", now.Add(10*time.Minute), 15*time.Minute); mine {
			t.Error("job taken again within its lease")
		}
		later := now.Add(16 * time.Minute)
		if mine, _ := s.TakeJob(ctx, "daily", "node-a", later, 15*time.Minute); !mine {
			t.Fatal("a failed run was not taken up again after its lease")
		}
		// This run succeeds: nobody runs it again within the period.
		if err := s.JobDone(ctx, "daily", "node-a", later.Add(24*time.Hour)); err != nil {
			t.Fatal(err)
		}
		if mine, _ := s.TakeJob(ctx, "daily", "node-a", later.Add(23*time.Hour), 15*time.Minute); mine {
			t.Error("job taken again within its period")
		}
		if mine, _ := s.TakeJob(ctx, "daily", "node-a", later.Add(24*time.Hour+time.Second), 15*time.Minute); !mine {
			t.Error("job not due again after its period")
		}
		if mine, _ := s.TakeJob(ctx, "other", "node-a", now, time.Hour); !mine {
			t.Error("a second job is not independent of the first")
		}
	})
}
