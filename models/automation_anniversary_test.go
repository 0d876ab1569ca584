package models_test

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/herald-mail/herald/internal/testdb"
	"github.com/herald-mail/herald/models"
)

// openTwice returns two stores on one database (two nodes): on a SQLite
// file, and on a PostgreSQL schema when configured.
func eachTwoStores(t *testing.T, fn func(t *testing.T, s, other *models.Store)) {
	open := func(t *testing.T, dsn string) *models.Store {
		s, err := models.Open(context.Background(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		if _, err := s.Migrate(context.Background()); err != nil {
			t.Fatal(err)
		}
		return s
	}
	t.Run("sqlite", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "herald.db")
		fn(t, open(t, path), open(t, path))
	})
	t.Run("postgres", func(t *testing.T) {
		if testdb.PostgresDSN() == "" {
			t.Skip("HERALD_TEST_POSTGRES not set")
		}
		dsn := testdb.PostgresSchema(t, testdb.PostgresDSN())
		fn(t, open(t, dsn), open(t, dsn))
	})
}

// occurrenceDeliveries returns the subscribers with a delivery of the send
// step whose campaign is campaign, for the runs of occurrence occ, and
// when each is due; a second delivery of one person fails the test.
func occurrenceDeliveries(t *testing.T, s *models.Store, campaign int64, occ int) map[int64]time.Time {
	t.Helper()
	var rows []struct {
		SubscriberID  int64
		NextAttemptAt time.Time
	}
	if err := s.DB().Raw(`SELECT d.subscriber_id, d.next_attempt_at FROM deliveries d JOIN campaigns c ON c.id = d.campaign_id
		WHERE c.occurrence_of = ? AND c.occurrence = ?`, campaign, occ).Scan(&rows).Error; err != nil {
		t.Fatal(err)
	}
	out := map[int64]time.Time{}
	for _, r := range rows {
		if _, dup := out[r.SubscriberID]; dup {
			t.Errorf("subscriber %d has two deliveries of occurrence %d", r.SubscriberID, occ)
		}
		out[r.SubscriberID] = r.NextAttemptAt
	}
	return out
}

// A birthday message at 09:00 on each person's clock, with a clock
// passed in and two nodes: Tokyo's 09:00 comes 13 hours before New
// York's (summer time); nobody gets it before their hour, everyone gets
// it once however often and from however many nodes the engine runs,
// and again the next year in a delivery of its own; the unsubscribed
// person gets nothing; a 29 February birthday fires on 28 February in
// 2027 and on the 29th in 2028; a birthday the next day waits for it.
func TestAutomationAnniversaryTrigger(t *testing.T) {
	eachTwoStores(t, func(t *testing.T, s, other *models.Store) {
		ctx := context.Background()
		list := mkList(t, s, "News", models.OptinSingle, models.ListPublic)
		a := &models.Automation{Name: "Birthday", TriggerKind: models.TriggerAnniversary, TriggerAttribute: "birthday",
			FromEmail: "hello@example.com", TZAttribute: "tz", TZDefault: "UTC"}
		if err := s.CreateAutomation(ctx, a, []models.AutomationStep{{Kind: models.StepSend, Subject: "Happy birthday", HTML: "<p>Cheers</p>"}}); err != nil {
			t.Fatal(err)
		}
		if a.TriggerTime != models.DefaultTriggerTime {
			t.Errorf("trigger time %q, want the default %q", a.TriggerTime, models.DefaultTriggerTime)
		}
		if err := s.SetAutomationStatus(ctx, a.ID, models.AutomationActive); err != nil {
			t.Fatal(err)
		}
		steps, err := s.AutomationSteps(ctx, a.ID, 0)
		if err != nil {
			t.Fatal(err)
		}
		step := *steps[0].CampaignID
		ev := models.Evidence{Source: models.SourceAdmin, Actor: "test"}
		people := map[string]int64{}
		for _, p := range []struct{ name, tz, birthday string }{
			{"ann", "America/New_York", "1990-07-14"}, {"eve", "Asia/Tokyo", "07-14"},
			{"bob", "Europe/Paris", "1985-07-14"}, {"leo", "", "2000-02-29"}, {"dan", "Asia/Tokyo", "1990-07-15"},
		} {
			attrs := models.Attributes{"birthday": p.birthday}
			if p.tz != "" {
				attrs["tz"] = p.tz
			}
			sub := &models.Subscriber{Email: p.name + "@example.com", Attributes: attrs}
			if err := s.CreateSubscriber(ctx, sub, map[int64]string{list: models.SubConfirmed}, ev); err != nil {
				t.Fatal(err)
			}
			people[p.name] = sub.ID
		}
		if err := s.UnsubscribeEverywhere(ctx, people["bob"], ev); err != nil {
			t.Fatal(err)
		}
		// advance runs the engine at tick on both nodes at once, twice.
		advance := func(tick time.Time) {
			t.Helper()
			for range 2 {
				var wg sync.WaitGroup
				errs := make([]error, 2)
				for i, st := range []*models.Store{s, other} {
					wg.Add(1)
					go func() {
						defer wg.Done()
						_, errs[i] = st.AdvanceAutomations(ctx, tick)
					}()
				}
				wg.Wait()
				for _, err := range errs {
					if err != nil {
						t.Fatalf("advance at %v: %v", tick, err)
					}
				}
			}
		}
		expect := func(when string, occ int, want map[string]time.Time) {
			t.Helper()
			got := occurrenceDeliveries(t, s, step, occ)
			for who, at := range want {
				if g, ok := got[people[who]]; !ok || !g.Equal(at) {
					t.Errorf("%s: %s's %d message due %v (present %v), want %v", when, who, occ, g, ok, at)
				}
			}
			if len(got) != len(want) {
				t.Errorf("%s: %d messages of %d, want %d (%v)", when, len(got), occ, len(want), want)
			}
		}

		// 2027 has no 29 February: leo's birthday is the 28th, 09:00 UTC.
		feb28 := time.Date(2027, 2, 28, 9, 0, 0, 0, time.UTC)
		advance(feb28.Add(-time.Minute))
		expect("before leo's hour", 2027, nil)
		advance(feb28.Add(30 * time.Second))
		expect("leo's hour", 2027, map[string]time.Time{"leo": feb28.Add(30 * time.Second)})

		// 14 July 2027: 09:00 in Tokyo is 00:00 UTC, in New York 13:00 UTC.
		tokyo := time.Date(2027, 7, 14, 0, 0, 0, 0, time.UTC)
		newYork := time.Date(2027, 7, 14, 13, 0, 0, 0, time.UTC)
		advance(tokyo.Add(-time.Second))
		expect("before Tokyo's 09:00", 2027, map[string]time.Time{"leo": feb28.Add(30 * time.Second)})
		advance(tokyo)
		advance(newYork.Add(-time.Minute))
		want2027 := map[string]time.Time{"leo": feb28.Add(30 * time.Second), "eve": tokyo}
		expect("between Tokyo's and New York's 09:00", 2027, want2027)
		advance(newYork)
		want2027["ann"] = newYork
		for _, tick := range []time.Time{newYork.Add(time.Minute), newYork.Add(6 * time.Hour)} {
			advance(tick)
		}
		expect("after New York's 09:00", 2027, want2027)
		// dan's birthday is on the 15th (Tokyo): it waits for it.
		dan := time.Date(2027, 7, 15, 0, 1, 0, 0, time.UTC)
		advance(dan)
		want2027["dan"] = dan
		expect("the 15th in Tokyo", 2027, want2027)

		// 2028 is a leap year: nothing for leo on the 28th, his message on
		// the 29th.
		advance(time.Date(2028, 2, 28, 9, 0, 0, 0, time.UTC))
		expect("28 February 2028", 2028, nil)
		feb29 := time.Date(2028, 2, 29, 9, 0, 0, 0, time.UTC)
		advance(feb29)
		expect("29 February 2028", 2028, map[string]time.Time{"leo": feb29})
		advance(time.Date(2028, 7, 14, 0, 0, 0, 0, time.UTC))
		advance(time.Date(2028, 7, 14, 13, 0, 0, 0, time.UTC))
		expect("14 July 2028", 2028, map[string]time.Time{"leo": feb29,
			"eve": time.Date(2028, 7, 14, 0, 0, 0, 0, time.UTC), "ann": time.Date(2028, 7, 14, 13, 0, 0, 0, time.UTC)})
		expect("a year on", 2027, want2027)

		var onStep int64
		if err := s.DB().Raw("SELECT COUNT(*) FROM deliveries WHERE campaign_id = ?", step).Scan(&onStep).Error; err != nil {
			t.Fatal(err)
		}
		if onStep != 0 {
			t.Errorf("the step's own campaign has %d deliveries, want none (each year has its copy)", onStep)
		}
		var bob int64
		if err := s.DB().Raw("SELECT (SELECT COUNT(*) FROM deliveries WHERE subscriber_id = ?) + (SELECT COUNT(*) FROM automation_runs WHERE subscriber_id = ?)",
			people["bob"], people["bob"]).Scan(&bob).Error; err != nil {
			t.Fatal(err)
		}
		if bob != 0 {
			t.Errorf("bob, unsubscribed, has %d runs and deliveries, want none", bob)
		}
		r, err := s.AutomationRunOf(ctx, a.ID, people["ann"])
		if err != nil {
			t.Fatal(err)
		}
		if r.Occurrence != 2028 || r.State != "done" {
			t.Errorf("ann's latest run: occurrence %d, %s; want 2028, done", r.Occurrence, r.State)
		}
		figs, err := s.AutomationFigures(ctx, a.ID, 0)
		if err != nil {
			t.Fatal(err)
		}
		if figs[0].Queued != 7 {
			t.Errorf("figures: %+v, want 7 messages queued over the two years", figs[0])
		}
	})
}

// A renewal reminder seven days before, at 10:00 in Paris: a renewal on
// 3 January is announced on 27 December (its occurrence is the next
// year). A day later a branch on a click in the message reads that
// year's message only: the click on the 2027 reminder ends the 2027 run,
// and the 2028 run, with no click on its own message, goes on to set the
// attribute.
func TestAutomationAnniversaryDaysBefore(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		list := mkList(t, s, "Members", models.OptinSingle, models.ListPrivate)
		a := &models.Automation{Name: "Renewal", TriggerKind: models.TriggerAnniversary, TriggerAttribute: "renewal",
			TriggerDays: 7, TriggerTime: "10:00", ListID: &list, FromEmail: "hello@example.com", TZDefault: "Europe/Paris"}
		steps := []models.AutomationStep{
			{Kind: models.StepSend, Subject: "Renew soon", HTML: "<p>Renew</p>"},
			{Kind: models.StepWait, WaitDays: 1, WaitWeekday: -1},
			{Kind: models.StepBranch, Cond: models.CondClicked, CondStep: 1, ThenStep: -1, ElseStep: 0},
			{Kind: models.StepSetAttr, AttrKey: "reminded", AttrValue: "no click"},
		}
		if err := s.CreateAutomation(ctx, a, steps); err != nil {
			t.Fatal(err)
		}
		if err := s.SetAutomationStatus(ctx, a.ID, models.AutomationActive); err != nil {
			t.Fatal(err)
		}
		got, err := s.AutomationSteps(ctx, a.ID, 0)
		if err != nil {
			t.Fatal(err)
		}
		step := *got[0].CampaignID
		ev := models.Evidence{Source: models.SourceAdmin, Actor: "test"}
		sub := &models.Subscriber{Email: "ann@example.com", Attributes: models.Attributes{"renewal": "2025-01-03"}}
		if err := s.CreateSubscriber(ctx, sub, map[int64]string{list: models.SubConfirmed}, ev); err != nil {
			t.Fatal(err)
		}
		reminded := func() any {
			got, err := s.Subscriber(ctx, sub.ID)
			if err != nil {
				t.Fatal(err)
			}
			return got.Attributes["reminded"]
		}
		for _, y := range []int{2026, 2027} {
			occ := y + 1
			at := time.Date(y, 12, 27, 9, 0, 0, 0, time.UTC) // 10:00 in Paris
			if _, err := s.AdvanceAutomations(ctx, at.Add(-time.Second)); err != nil {
				t.Fatal(err)
			}
			if n := len(occurrenceDeliveries(t, s, step, occ)); n != 0 {
				t.Errorf("%d: %d reminders before 10:00 in Paris, want none", occ, n)
			}
			rep, err := s.AdvanceAutomations(ctx, at)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Entered != 1 || rep.Queued != 1 {
				t.Errorf("%d: advance at 10:00 in Paris: %+v, want 1 entered, 1 queued", occ, rep)
			}
			if _, ok := occurrenceDeliveries(t, s, step, occ)[sub.ID]; !ok {
				t.Fatalf("%d: no reminder for ann", occ)
			}
			if occ == 2027 {
				var d struct{ ID, CampaignID int64 }
				if err := s.DB().Raw(`SELECT d.id, d.campaign_id FROM deliveries d JOIN campaigns c ON c.id = d.campaign_id
					WHERE c.occurrence_of = ? AND c.occurrence = ?`, step, occ).Scan(&d).Error; err != nil {
					t.Fatal(err)
				}
				if err := s.DB().Exec(`INSERT INTO events (delivery_id, campaign_id, subscriber_id, kind, machine, created_at) VALUES (?, ?, ?, 'click', ?, ?)`,
					d.ID, d.CampaignID, sub.ID, false, at.Add(time.Hour)).Error; err != nil {
					t.Fatal(err)
				}
			}
			if _, err := s.AdvanceAutomations(ctx, at.AddDate(0, 0, 1)); err != nil {
				t.Fatal(err)
			}
			var r models.AutomationRun
			if err := s.DB().Where("automation_id = ? AND subscriber_id = ? AND occurrence = ?", a.ID, sub.ID, occ).First(&r).Error; err != nil {
				t.Fatalf("%d: ann's run: %v", occ, err)
			}
			wantReason, wantAttr := "branch to the end", any(nil)
			if occ == 2028 {
				wantReason, wantAttr = "", "no click"
			}
			if r.State != "done" || r.ExitReason != wantReason || reminded() != wantAttr {
				t.Errorf("%d: ann's run %s (%q), reminded %v; want done (%q), reminded %v", occ, r.State, r.ExitReason, reminded(), wantReason, wantAttr)
			}
		}
	})
}

// The anniversary trigger's settings are checked with a message per field.
func TestAutomationAnniversaryValidate(t *testing.T) {
	for _, c := range []struct {
		name  string
		a     models.Automation
		field string
	}{
		{"no attribute", models.Automation{TriggerAttribute: " "}, "trigger_attribute"},
		{"bad hour", models.Automation{TriggerAttribute: "birthday", TriggerTime: "25:00"}, "trigger_time"},
		{"days before", models.Automation{TriggerAttribute: "birthday", TriggerDays: -1}, "trigger_days"},
	} {
		a := c.a
		a.Name, a.FromEmail, a.TriggerKind = "Birthday", "hello@example.com", models.TriggerAnniversary
		errs := a.Validate()
		if errs[c.field] == "" || len(errs) != 1 {
			t.Errorf("%s: Validate() = %v, want one message on %s", c.name, errs, c.field)
		}
	}
	ok := models.Automation{Name: "Birthday", FromEmail: "hello@example.com", TriggerKind: models.TriggerAnniversary,
		TriggerAttribute: "birthday", TriggerTime: "08:30", TriggerDays: 7}
	if errs := ok.Validate(); len(errs) != 0 {
		t.Errorf("Validate() = %v, want none", errs)
	}
}

// Migration 45 keeps every automation row: down to 44 and up again,
// the runs, passes, attribute readings and step campaigns are all there
// (SQLite rebuilds the tables on the way).
func TestMigration45KeepsAutomations(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		list := mkList(t, s, "News", models.OptinSingle, models.ListPublic)
		a := &models.Automation{Name: "Welcome", TriggerKind: models.TriggerAttributeChanged, TriggerAttribute: "plan", ListID: &list, FromEmail: "hello@example.com"}
		if err := s.CreateAutomation(ctx, a, welcomeSteps()); err != nil {
			t.Fatal(err)
		}
		if err := s.SetAutomationStatus(ctx, a.ID, models.AutomationActive); err != nil {
			t.Fatal(err)
		}
		sub := &models.Subscriber{Email: "ann@example.com", Attributes: models.Attributes{"plan": "free"}}
		if err := s.CreateSubscriber(ctx, sub, map[int64]string{list: models.SubConfirmed}, models.Evidence{Source: models.SourceAdmin, Actor: "test"}); err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		if _, err := s.AdvanceAutomations(ctx, now); err != nil { // reads the attribute
			t.Fatal(err)
		}
		if _, err := s.EnterAutomation(ctx, a.ID, []int64{sub.ID}, false, now); err != nil {
			t.Fatal(err)
		}
		if _, err := s.AdvanceAutomations(ctx, now); err != nil {
			t.Fatal(err)
		}
		count := func() [5]int64 {
			var n [5]int64
			for i, q := range []string{"SELECT COUNT(*) FROM automation_runs", "SELECT COUNT(*) FROM automation_passes",
				"SELECT COUNT(*) FROM automation_attr_seen", "SELECT COUNT(*) FROM campaigns WHERE automation_id IS NOT NULL",
				"SELECT COUNT(*) FROM automation_steps"} {
				if err := s.DB().Raw(q).Scan(&n[i]).Error; err != nil {
					t.Fatal(err)
				}
			}
			return n
		}
		before := count()
		if before[0] != 1 || before[1] == 0 || before[2] != 1 || before[3] != 2 {
			t.Fatalf("set-up: runs, passes, readings, step campaigns, steps = %v", before)
		}
		p := migrator(t, s)
		if _, err := p.DownTo(ctx, 44); err != nil {
			t.Fatal(err)
		}
		if got := count(); got != before {
			t.Errorf("at 44: %v, want %v", got, before)
		}
		if _, err := p.Up(ctx); err != nil {
			t.Fatal(err)
		}
		if got := count(); got != before {
			t.Errorf("back at 45: %v, want %v", got, before)
		}
		r, err := s.AutomationRunOf(ctx, a.ID, sub.ID)
		if err != nil || r.Occurrence != 0 || r.Step != 3 || r.State != "active" {
			t.Errorf("ann's run after the round trip: %+v, %v; want occurrence 0, active, due at step 3 after the wait", r, err)
		}
	})
}
