package models_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/herald-mail/herald/internal/testdb"
	"github.com/herald-mail/herald/models"
)

// welcomeSteps is a two-message series: a welcome at once, a second
// message two days later on the subscriber's clock.
func welcomeSteps() []models.AutomationStep {
	return []models.AutomationStep{
		{Kind: models.StepSend, Subject: "Welcome", HTML: "<p>Hello {{ .Subscriber.Name }}</p>"},
		{Kind: models.StepWait, WaitDays: 2, WaitWeekday: -1},
		{Kind: models.StepSend, Subject: "Day two", HTML: "<p>Two days in</p>"},
	}
}

// stepDeliveries returns the subscribers with a delivery of the
// automation's send step at position pos, and when each is due.
func stepDeliveries(t *testing.T, s *models.Store, steps []models.AutomationStep, pos int) map[int64]time.Time {
	t.Helper()
	var rows []struct {
		SubscriberID  int64
		NextAttemptAt time.Time
	}
	if err := s.DB().Raw("SELECT subscriber_id, next_attempt_at FROM deliveries WHERE campaign_id = ?", *steps[pos-1].CampaignID).
		Scan(&rows).Error; err != nil {
		t.Fatal(err)
	}
	out := map[int64]time.Time{}
	for _, r := range rows {
		if _, dup := out[r.SubscriberID]; dup {
			t.Errorf("subscriber %d has two deliveries of step %d", r.SubscriberID, pos)
		}
		out[r.SubscriberID] = r.NextAttemptAt
	}
	return out
}

// People who confirm get step 1 at once and step 2 exactly two days
// later on their own wall clock (New York crosses the DST change in
// between: 47 hours; Tokyo has none: 48); the one who unsubscribes in
// between and the one who meets the exit criterion get nothing more; one
// who never confirms never enters; advancing again sends nothing twice.
func TestAutomationWelcomeSeries(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		list := mkList(t, s, "News", models.OptinDouble, models.ListPublic)
		a := &models.Automation{Name: "Welcome", TriggerKind: models.TriggerListConfirmed, ListID: &list,
			FromEmail: "hello@example.com", TZAttribute: "tz", TZDefault: "UTC", ExitAttribute: "bought", ExitValue: "yes"}
		if err := s.CreateAutomation(ctx, a, welcomeSteps()); err != nil {
			t.Fatal(err)
		}
		if err := s.SetAutomationStatus(ctx, a.ID, models.AutomationActive); err != nil {
			t.Fatal(err)
		}
		steps, err := s.AutomationSteps(ctx, a.ID, 0)
		if err != nil {
			t.Fatal(err)
		}
		ev := models.Evidence{Source: models.SourceForm, IP: "192.0.2.1", UserAgent: "ua", ConsentText: "yes"}
		people := map[string]int64{}
		for _, p := range []struct{ email, tz string }{
			{"ann@example.com", "America/New_York"}, {"eve@example.com", "Asia/Tokyo"},
			{"bob@example.com", "Europe/Paris"}, {"cat@example.com", "Europe/Paris"}, {"dan@example.com", "UTC"},
		} {
			r, err := s.SignupFromForm(ctx, p.email, p.email[:3], list, ev)
			if err != nil {
				t.Fatal(err)
			}
			people[p.email[:3]] = r.SubscriberID
			sub, err := s.Subscriber(ctx, r.SubscriberID)
			if err != nil {
				t.Fatal(err)
			}
			sub.Attributes = models.Attributes{"tz": p.tz}
			if err := s.UpdateSubscriber(ctx, sub); err != nil {
				t.Fatal(err)
			}
			if p.email[:3] != "dan" {
				if _, err := s.ConfirmSubscription(ctx, r.SubscriberID, list, ev); err != nil {
					t.Fatal(err)
				}
			}
		}
		// Saturday 7 March 2026, 15:00 UTC; New York moves to summer time
		// on Sunday 8 March.
		t0 := time.Date(2026, 3, 7, 15, 0, 0, 0, time.UTC)
		rep, err := s.AdvanceAutomations(ctx, t0)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Entered != 4 || rep.Queued != 4 {
			t.Errorf("first advance: %+v, want 4 entered (dan never confirmed) and 4 welcomes queued", rep)
		}
		first := stepDeliveries(t, s, steps, 1)
		for _, who := range []string{"ann", "eve", "bob", "cat"} {
			if at, ok := first[people[who]]; !ok || !at.Equal(t0) {
				t.Errorf("%s's welcome: due %v (present %v), want at once (%v)", who, at, ok, t0)
			}
		}
		if _, ok := first[people["dan"]]; ok {
			t.Error("dan, who never confirmed, got the welcome")
		}
		// In between: bob unsubscribes, cat buys.
		if err := s.UnsubscribeEverywhere(ctx, people["bob"], ev); err != nil {
			t.Fatal(err)
		}
		cat, _ := s.Subscriber(ctx, people["cat"])
		cat.Attributes["bought"] = "yes"
		if err := s.UpdateSubscriber(ctx, cat); err != nil {
			t.Fatal(err)
		}

		annDue := time.Date(2026, 3, 9, 10, 0, 0, 0, time.UTC).Add(4 * time.Hour) // 10:00 EDT = 14:00 UTC
		eveDue := t0.Add(48 * time.Hour)
		if got := annDue.Sub(t0); got != 47*time.Hour {
			t.Fatalf("test set-up: ann's wait is %v, want 47h across the DST change", got)
		}
		for _, tick := range []time.Time{t0.Add(time.Hour), annDue.Add(-time.Second)} {
			if _, err := s.AdvanceAutomations(ctx, tick); err != nil {
				t.Fatal(err)
			}
			if got := stepDeliveries(t, s, steps, 3); len(got) != 0 {
				t.Errorf("at %v, %d people have step 3, want none before the wait is over", tick, len(got))
			}
		}
		if _, err := s.AdvanceAutomations(ctx, annDue); err != nil {
			t.Fatal(err)
		}
		second := stepDeliveries(t, s, steps, 3)
		if at, ok := second[people["ann"]]; !ok || !at.Equal(annDue) {
			t.Errorf("ann's step 3: due %v (present %v), want %v (two days on New York's clock)", at, ok, annDue)
		}
		if len(second) != 1 {
			t.Errorf("at %v, step 3 went to %d people, want only ann", annDue, len(second))
		}
		for _, tick := range []time.Time{eveDue, eveDue.Add(time.Minute), eveDue.Add(72 * time.Hour)} {
			if _, err := s.AdvanceAutomations(ctx, tick); err != nil {
				t.Fatal(err)
			}
		}
		second = stepDeliveries(t, s, steps, 3)
		if at, ok := second[people["eve"]]; !ok || !at.Equal(eveDue) {
			t.Errorf("eve's step 3: due %v (present %v), want %v (two days on Tokyo's clock)", at, ok, eveDue)
		}
		for _, who := range []string{"bob", "cat"} {
			if _, ok := second[people[who]]; ok {
				t.Errorf("%s got step 3 after leaving", who)
			}
		}
		if len(second) != 2 {
			t.Errorf("step 3 went to %d people, want 2 (ann, eve)", len(second))
		}
		if got := len(stepDeliveries(t, s, steps, 1)); got != 4 {
			t.Errorf("step 1 has %d deliveries after every advance, want still 4", got)
		}
		wantState := map[string][2]string{"ann": {"done", ""}, "eve": {"done", ""}, "bob": {"exited", "unsubscribed"},
			"cat": {"exited", "exit criterion"}}
		for who, want := range wantState {
			r, err := s.AutomationRunOf(ctx, a.ID, people[who])
			if err != nil {
				t.Fatal(err)
			}
			if r.State != want[0] || r.ExitReason != want[1] {
				t.Errorf("%s's run: %s (%q), want %s (%q)", who, r.State, r.ExitReason, want[0], want[1])
			}
		}
		if _, err := s.AutomationRunOf(ctx, a.ID, people["dan"]); !errors.Is(err, models.ErrNotFound) {
			t.Errorf("dan's run: err = %v, want not found", err)
		}
		figs, err := s.AutomationFigures(ctx, a.ID, 0)
		if err != nil {
			t.Fatal(err)
		}
		if figs[0].Passed != 4 || figs[0].Queued != 4 || figs[2].Passed != 2 {
			t.Errorf("figures: %+v, want 4 past step 1 with 4 queued, 2 past step 3", figs)
		}
	})
}

// A branch on a click in the first message: who clicked goes to the end,
// who did not gets the reminder. Editing the steps of a live automation
// makes a new version; "continue" moves the people inside to it.
func TestAutomationBranchAndEdit(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		list := mkList(t, s, "Course", models.OptinSingle, models.ListPublic)
		a := &models.Automation{Name: "Course", TriggerKind: models.TriggerAPI, ListID: &list, FromEmail: "hello@example.com"}
		steps := []models.AutomationStep{
			{Kind: models.StepSend, Subject: "Lesson 1", HTML: "<a href=\"https://example.com/1\">one</a>"},
			{Kind: models.StepWait, WaitDays: 2, WaitWeekday: -1},
			{Kind: models.StepBranch, Cond: models.CondClicked, CondStep: 1, ThenStep: -1, ElseStep: 0},
			{Kind: models.StepSend, Subject: "Did you see lesson 1?", HTML: "<p>Reminder</p>"},
		}
		if err := s.CreateAutomation(ctx, a, steps); err != nil {
			t.Fatal(err)
		}
		if err := s.SetAutomationStatus(ctx, a.ID, models.AutomationActive); err != nil {
			t.Fatal(err)
		}
		ev := models.Evidence{Source: models.SourceForm, IP: "192.0.2.1", UserAgent: "ua", ConsentText: "yes"}
		var ids []int64
		for _, e := range []string{"clicker@example.com", "idle@example.com"} {
			r, err := s.SignupFromForm(ctx, e, "", list, ev)
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, r.SubscriberID)
		}
		t0 := time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC)
		if n, err := s.EnterAutomation(ctx, a.ID, append(ids, ids[0]), false, t0); err != nil || n != 2 {
			t.Fatalf("enter: %d, %v; want 2 (one id twice)", n, err)
		}
		if _, err := s.AdvanceAutomations(ctx, t0); err != nil {
			t.Fatal(err)
		}
		got, err := s.AutomationSteps(ctx, a.ID, 0)
		if err != nil {
			t.Fatal(err)
		}
		var did int64
		if err := s.DB().Raw("SELECT id FROM deliveries WHERE campaign_id = ? AND subscriber_id = ?", *got[0].CampaignID, ids[0]).Scan(&did).Error; err != nil || did == 0 {
			t.Fatalf("clicker's delivery: %d, %v", did, err)
		}
		if err := s.DB().Exec(`INSERT INTO events (delivery_id, campaign_id, subscriber_id, kind, machine, created_at) VALUES (?, ?, ?, 'click', ?, ?)`,
			did, *got[0].CampaignID, ids[0], false, t0.Add(time.Hour)).Error; err != nil {
			t.Fatal(err)
		}
		// Edit while they wait: a new last message; they continue on it.
		edited := append([]models.AutomationStep(nil), got...)
		edited[3].Subject = "Lesson 1, once more"
		a2, _ := s.Automation(ctx, a.ID)
		if err := s.UpdateAutomation(ctx, a2, edited, models.EditContinue); err != nil {
			t.Fatal(err)
		}
		v2, err := s.AutomationSteps(ctx, a.ID, 0)
		if err != nil {
			t.Fatal(err)
		}
		if v2[0].Version != 2 || *v2[0].CampaignID != *got[0].CampaignID || *v2[3].CampaignID == *got[3].CampaignID {
			t.Errorf("version 2: %+v; want version 2 keeping step 1's campaign and a new one for the edited step 4", v2)
		}
		if _, err := s.AdvanceAutomations(ctx, t0.Add(48*time.Hour)); err != nil {
			t.Fatal(err)
		}
		rem := stepDeliveries(t, s, v2, 4)
		if _, ok := rem[ids[1]]; !ok || len(rem) != 1 {
			t.Errorf("reminder (new version) went to %v, want only the one who did not click (%d)", rem, ids[1])
		}
		if old := stepDeliveries(t, s, got, 4); len(old) != 0 {
			t.Errorf("the old version's reminder went to %d people, want none", len(old))
		}
		r, _ := s.AutomationRunOf(ctx, a.ID, ids[0])
		if r.State != "done" || r.ExitReason != "branch to the end" {
			t.Errorf("clicker's run: %s %q, want done by the branch", r.State, r.ExitReason)
		}
		// Erasure takes the person's place and path with them.
		if err := s.EraseSubscriber(ctx, ids[1], ev); err != nil {
			t.Fatal(err)
		}
		var left int64
		if err := s.DB().Raw(`SELECT (SELECT COUNT(*) FROM automation_runs WHERE subscriber_id = ?) +
			(SELECT COUNT(*) FROM automation_passes WHERE subscriber_id = ?)`, ids[1], ids[1]).Scan(&left).Error; err != nil {
			t.Fatal(err)
		}
		if left != 0 {
			t.Errorf("%d automation rows of an erased subscriber left, want none", left)
		}
		var bad *models.ValidationError
		if err := s.UpdateAutomation(ctx, a2, []models.AutomationStep{{Kind: "teleport"}}, models.EditContinue); !errors.As(err, &bad) {
			t.Errorf("unknown step kind: err = %v, want a validation error", err)
		}
	})
}

// A suppression added while someone waits stops their next message: the
// automation's delivery is checked against every suppression when the
// mailer claims it.
func TestAutomationSuppressedAtClaim(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		list := mkList(t, s, "News", models.OptinSingle, models.ListPublic)
		a := &models.Automation{Name: "Drip", TriggerKind: models.TriggerAPI, ListID: &list, FromEmail: "hello@example.com"}
		if err := s.CreateAutomation(ctx, a, []models.AutomationStep{{Kind: models.StepSend, Subject: "One", HTML: "<p>1</p>"}}); err != nil {
			t.Fatal(err)
		}
		if err := s.SetAutomationStatus(ctx, a.ID, models.AutomationActive); err != nil {
			t.Fatal(err)
		}
		ev := models.Evidence{Source: models.SourceForm, IP: "192.0.2.1", UserAgent: "ua", ConsentText: "yes"}
		var ids []int64
		for _, e := range []string{"kept@example.com", "gone@example.com"} {
			r, err := s.SignupFromForm(ctx, e, "", list, ev)
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, r.SubscriberID)
		}
		t0 := time.Now()
		if _, err := s.EnterAutomation(ctx, a.ID, ids, false, t0); err != nil {
			t.Fatal(err)
		}
		if _, err := s.AdvanceAutomations(ctx, t0); err != nil {
			t.Fatal(err)
		}
		if err := s.AddSuppression(ctx, "gone@example.com", "manual", "asked by phone"); err != nil {
			t.Fatal(err)
		}
		steps, _ := s.AutomationSteps(ctx, a.ID, 0)
		got, err := s.ClaimDeliveries(ctx, models.ClaimRequest{Node: "n1", Lease: time.Minute, Limit: 10,
			CampaignIDs: []int64{*steps[0].CampaignID}, Now: t0.Add(time.Second)})
		if err != nil {
			t.Fatal(err)
		}
		why := map[string]string{}
		for _, c := range got {
			why[c.Email] = c.Ineligible
		}
		if len(got) != 2 || why["kept@example.com"] != "" || why["gone@example.com"] != "suppressed" {
			t.Errorf("claimed %v, want kept@ eligible and gone@ suppressed", why)
		}
	})
}

// The dashboard's running campaigns leave out the automations' send
// steps, whose campaigns run for as long as the automation does; reports
// still list them.
func TestRatesListLeavesOutAutomations(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		list := mkList(t, s, "News", models.OptinSingle, models.ListPublic)
		a := &models.Automation{Name: "Drip", TriggerKind: models.TriggerAPI, ListID: &list, FromEmail: "hello@example.com"}
		if err := s.CreateAutomation(ctx, a, []models.AutomationStep{{Kind: models.StepSend, Subject: "One", HTML: "<p>1</p>"}}); err != nil {
			t.Fatal(err)
		}
		c := &models.Campaign{Name: "Monthly", FromEmail: "news@example.com"}
		if err := s.CreateCampaign(ctx, c, []int64{list}); err != nil {
			t.Fatal(err)
		}
		if err := s.StartCampaign(ctx, c.ID); err != nil {
			t.Fatal(err)
		}
		if err := s.DB().Exec("UPDATE campaigns SET status = ?, started_at = ? WHERE automation_id = ?", models.CampaignRunning, time.Now(), a.ID).Error; err != nil {
			t.Fatal(err)
		}
		running := func(no bool) []string {
			rs, err := s.CampaignRatesList(ctx, models.CampaignRatesQuery{Statuses: []string{models.CampaignRunning}, NoAutomations: no})
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, r := range rs {
				names = append(names, r.Name)
			}
			return names
		}
		if got := running(true); len(got) != 1 || got[0] != "Monthly" {
			t.Errorf("running campaigns without automations = %q, want [Monthly]", got)
		}
		if got := running(false); len(got) != 2 {
			t.Errorf("running campaigns with automations = %q, want the step's too", got)
		}
	})
}
