package models_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/herald-mail/herald/internal/testdb"
	"github.com/herald-mail/herald/models"
)

// subStatus is subscriber id's status on list ("" no row).
func subStatus(t *testing.T, s *models.Store, id, list int64) string {
	t.Helper()
	var st []string
	if err := s.DB().Raw("SELECT status FROM subscriptions WHERE subscriber_id = ? AND list_id = ?", id, list).Scan(&st).Error; err != nil {
		t.Fatal(err)
	}
	if len(st) == 0 {
		return ""
	}
	return st[0]
}

// The list and attribute steps and a branch on segment membership, with
// a clock passed in: everyone entered is put on "Members" (but the one
// who once unsubscribed from it stays unsubscribed), gets stage =
// onboarded and is taken off "Trial", each change in the consent ledger
// once; the branch on the Paris segment sends the Parisian on to a
// second attribute and the other to the end. Advancing again changes
// nothing.
func TestAutomationListAttributeSegmentSteps(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		news := mkList(t, s, "News", models.OptinSingle, models.ListPublic)
		members := mkList(t, s, "Members", models.OptinSingle, models.ListPrivate)
		trial := mkList(t, s, "Trial", models.OptinSingle, models.ListPrivate)
		paris := &models.Segment{Name: "Paris", Conditions: models.Conditions{Match: "all", Groups: []models.ConditionGroup{{Match: "all",
			Conditions: []models.Condition{{Field: "attribute", Key: "city", Op: "equals", Value: "Paris"}}}}}}
		if err := s.CreateSegment(ctx, paris); err != nil {
			t.Fatal(err)
		}
		a := &models.Automation{Name: "Onboarding", TriggerKind: models.TriggerAPI, FromEmail: "hello@example.com"}
		steps := []models.AutomationStep{
			{Kind: models.StepListAdd, TargetListID: &members},
			{Kind: models.StepSetAttr, AttrKey: "stage", AttrValue: "onboarded"},
			{Kind: models.StepListRemove, TargetListID: &trial},
			{Kind: models.StepBranch, Cond: models.CondSegment, SegmentID: &paris.ID, ThenStep: 0, ElseStep: -1},
			{Kind: models.StepSetAttr, AttrKey: "parisian", AttrValue: "yes"},
		}
		if err := s.CreateAutomation(ctx, a, steps); err != nil {
			t.Fatal(err)
		}
		if err := s.SetAutomationStatus(ctx, a.ID, models.AutomationActive); err != nil {
			t.Fatal(err)
		}
		ev := models.Evidence{Source: models.SourceAdmin, Actor: "test"}
		people := map[string]int64{}
		for _, p := range []struct{ email, city string }{{"ann@example.com", "Paris"}, {"bob@example.com", "Rome"}, {"cat@example.com", "Paris"}} {
			sub := &models.Subscriber{Email: p.email, Attributes: models.Attributes{"city": p.city}}
			lists := map[int64]string{news: models.SubConfirmed, trial: models.SubConfirmed}
			if p.email == "cat@example.com" {
				lists[members] = models.SubConfirmed
			}
			if err := s.CreateSubscriber(ctx, sub, lists, ev); err != nil {
				t.Fatal(err)
			}
			if p.email == "cat@example.com" {
				if err := s.SetSubscriptions(ctx, sub.ID, map[int64]string{members: models.SubUnsubscribed}, ev); err != nil {
					t.Fatal(err)
				}
			}
			people[p.email[:3]] = sub.ID
		}
		ledger := func() int64 {
			var n int64
			if err := s.DB().Raw("SELECT COUNT(*) FROM consents WHERE source = ?", models.SourceAutomation).Scan(&n).Error; err != nil {
				t.Fatal(err)
			}
			return n
		}
		t0 := time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC)
		ids := []int64{people["ann"], people["bob"], people["cat"]}
		if n, err := s.EnterAutomation(ctx, a.ID, ids, false, t0); err != nil || n != 3 {
			t.Fatalf("enter: %d, %v; want 3", n, err)
		}
		if _, err := s.AdvanceAutomations(ctx, t0); err != nil {
			t.Fatal(err)
		}
		for who, want := range map[string]string{"ann": "confirmed", "bob": "confirmed", "cat": "unsubscribed"} {
			if got := subStatus(t, s, people[who], members); got != want {
				t.Errorf("%s on Members: %q, want %q", who, got, want)
			}
			if got := subStatus(t, s, people[who], trial); got != "unsubscribed" {
				t.Errorf("%s on Trial: %q, want unsubscribed", who, got)
			}
			if got := subStatus(t, s, people[who], news); got != "confirmed" {
				t.Errorf("%s on News: %q, want confirmed (untouched)", who, got)
			}
			sub, err := s.Subscriber(ctx, people[who])
			if err != nil {
				t.Fatal(err)
			}
			if sub.Attributes["stage"] != "onboarded" || sub.Attributes["city"] == nil {
				t.Errorf("%s's attributes: %v, want stage onboarded and city kept", who, sub.Attributes)
			}
			wantParis := who != "bob"
			if (sub.Attributes["parisian"] == "yes") != wantParis {
				t.Errorf("%s's attributes: %v, want parisian set %v (the segment branch)", who, sub.Attributes, wantParis)
			}
			r, err := s.AutomationRunOf(ctx, a.ID, people[who])
			if err != nil {
				t.Fatal(err)
			}
			if r.State != "done" {
				t.Errorf("%s's run: %s %q, want done", who, r.State, r.ExitReason)
			}
		}
		// Two joined Members, three left Trial: five ledger rows.
		if n := ledger(); n != 5 {
			t.Errorf("%d consent rows from the automation, want 5", n)
		}
		if _, err := s.AdvanceAutomations(ctx, t0.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		if n := ledger(); n != 5 {
			t.Errorf("after a second advance: %d consent rows from the automation, want still 5", n)
		}
		if brk, _, err := s.VerifyConsents(ctx); err != nil || brk != nil {
			t.Errorf("consent chain after the list steps: %+v, %v", brk, err)
		}

		// Bad references are a clear validation error, not a failure.
		var bad *models.ValidationError
		missing := int64(999999)
		for want, st := range map[string]models.AutomationStep{
			"steps.1.target_list_id": {Kind: models.StepListAdd, TargetListID: &missing},
			"steps.1.attr_key":       {Kind: models.StepSetAttr, AttrValue: "x"},
			"steps.1.segment_id":     {Kind: models.StepBranch, Cond: models.CondSegment, SegmentID: &missing},
		} {
			err := s.CreateAutomation(ctx, &models.Automation{Name: "Bad", TriggerKind: models.TriggerAPI, FromEmail: "hello@example.com"},
				[]models.AutomationStep{st})
			if !errors.As(err, &bad) || bad.Fields[want] == "" {
				t.Errorf("%+v: %v, want a validation error on %s", st, err, want)
			}
		}
	})
}

// An API call takes people out: the one told to leave gets no further
// message after the wait, the other does; telling again or naming someone
// not inside changes nothing; an unknown automation is not found.
func TestAutomationExitByCall(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		list := mkList(t, s, "News", models.OptinSingle, models.ListPublic)
		a := &models.Automation{Name: "Trial", TriggerKind: models.TriggerAPI, ListID: &list, FromEmail: "hello@example.com"}
		if err := s.CreateAutomation(ctx, a, welcomeSteps()); err != nil {
			t.Fatal(err)
		}
		if err := s.SetAutomationStatus(ctx, a.ID, models.AutomationActive); err != nil {
			t.Fatal(err)
		}
		ev := models.Evidence{Source: models.SourceForm, IP: "192.0.2.1", UserAgent: "ua", ConsentText: "yes"}
		var ids []int64
		for _, e := range []string{"buyer@example.com", "browser@example.com", "outsider@example.com"} {
			r, err := s.SignupFromForm(ctx, e, "", list, ev)
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, r.SubscriberID)
		}
		t0 := time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC)
		if _, err := s.EnterAutomation(ctx, a.ID, ids[:2], false, t0); err != nil {
			t.Fatal(err)
		}
		if _, err := s.AdvanceAutomations(ctx, t0); err != nil {
			t.Fatal(err)
		}
		n, err := s.ExitAutomation(ctx, a.ID, []int64{ids[0], ids[2]}, "bought", t0.Add(time.Hour))
		if err != nil || n != 1 {
			t.Fatalf("exit: %d, %v; want 1 (the outsider was never inside)", n, err)
		}
		if n, err := s.ExitAutomation(ctx, a.ID, []int64{ids[0]}, "", t0.Add(2*time.Hour)); err != nil || n != 0 {
			t.Errorf("exit again: %d, %v; want 0", n, err)
		}
		if _, err := s.AdvanceAutomations(ctx, t0.Add(72*time.Hour)); err != nil {
			t.Fatal(err)
		}
		steps, err := s.AutomationSteps(ctx, a.ID, 0)
		if err != nil {
			t.Fatal(err)
		}
		second := stepDeliveries(t, s, steps, 3)
		if _, ok := second[ids[0]]; ok {
			t.Error("the buyer, told to leave, got the second message")
		}
		if _, ok := second[ids[1]]; !ok {
			t.Error("the browser did not get the second message")
		}
		r, _ := s.AutomationRunOf(ctx, a.ID, ids[0])
		if r.State != "exited" || r.ExitReason != "bought" {
			t.Errorf("buyer's run: %s %q, want exited, bought", r.State, r.ExitReason)
		}
		if _, err := s.ExitAutomation(ctx, 999999, ids, "", t0); !errors.Is(err, models.ErrNotFound) {
			t.Errorf("exit from an unknown automation: %v, want not found", err)
		}
	})
}

// The segment trigger, with a clock passed in: the people in the
// segment when the automation is activated never enter; one who enters
// the segment afterwards goes through, once, even after leaving and
// coming back; the people are chosen by one INSERT … SELECT.
func TestAutomationSegmentTrigger(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		list := mkList(t, s, "News", models.OptinSingle, models.ListPublic)
		vip := &models.Segment{Name: "VIP", Conditions: models.Conditions{Match: "all", Groups: []models.ConditionGroup{{Match: "all",
			Conditions: []models.Condition{{Field: "attribute", Key: "tier", Op: "equals", Value: "vip"}}}}}}
		if err := s.CreateSegment(ctx, vip); err != nil {
			t.Fatal(err)
		}
		ev := models.Evidence{Source: models.SourceAdmin, Actor: "test"}
		ids := map[string]int64{}
		for _, p := range []struct{ email, tier string }{{"old@example.com", "vip"}, {"new@example.com", "basic"}, {"never@example.com", "basic"}} {
			sub := &models.Subscriber{Email: p.email, Attributes: models.Attributes{"tier": p.tier}}
			if err := s.CreateSubscriber(ctx, sub, map[int64]string{list: models.SubConfirmed}, ev); err != nil {
				t.Fatal(err)
			}
			ids[p.email[:3]] = sub.ID
		}
		a := &models.Automation{Name: "VIP welcome", TriggerKind: models.TriggerSegment, TriggerSegmentID: &vip.ID, ListID: &list,
			FromEmail: "hello@example.com"}
		if err := s.CreateAutomation(ctx, a, []models.AutomationStep{{Kind: models.StepSend, Subject: "You are VIP", HTML: "<p>VIP</p>"}}); err != nil {
			t.Fatal(err)
		}
		if err := s.SetAutomationStatus(ctx, a.ID, models.AutomationActive); err != nil {
			t.Fatal(err)
		}
		steps, _ := s.AutomationSteps(ctx, a.ID, 0)
		t0 := time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC)
		rep, err := s.AdvanceAutomations(ctx, t0)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Entered != 0 || rep.Queued != 0 {
			t.Errorf("first look: %+v, want nobody entered (old was in the segment already)", rep)
		}
		setTier := func(who, tier string) {
			sub, err := s.Subscriber(ctx, ids[who])
			if err != nil {
				t.Fatal(err)
			}
			sub.Attributes["tier"] = tier
			if err := s.UpdateSubscriber(ctx, sub); err != nil {
				t.Fatal(err)
			}
		}
		setTier("new", "vip")
		// The trigger looks once a minute: half a minute after the
		// first look, nobody enters yet.
		if rep, err = s.AdvanceAutomations(ctx, t0.Add(30*time.Second)); err != nil || rep.Entered != 0 {
			t.Errorf("half a minute after the first look: %+v, %v; want nobody entered yet", rep, err)
		}
		rep, err = s.AdvanceAutomations(ctx, t0.Add(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		if rep.Entered != 1 || rep.Queued != 1 {
			t.Errorf("after new became vip: %+v, want 1 entered and 1 queued", rep)
		}
		got := stepDeliveries(t, s, steps, 1)
		if _, ok := got[ids["new"]]; !ok || len(got) != 1 {
			t.Errorf("VIP welcome went to %v, want only new (%d)", got, ids["new"])
		}
		setTier("new", "basic")
		if _, err := s.AdvanceAutomations(ctx, t0.Add(2*time.Minute)); err != nil {
			t.Fatal(err)
		}
		setTier("new", "vip")
		if rep, err = s.AdvanceAutomations(ctx, t0.Add(3*time.Minute)); err != nil || rep.Entered != 0 {
			t.Errorf("coming back into the segment: %+v, %v; want nobody entered again", rep, err)
		}
		if got := stepDeliveries(t, s, steps, 1); len(got) != 1 {
			t.Errorf("%d welcomes, want still 1", len(got))
		}
		var inUse *models.SegmentInUseError
		if err := s.DeleteSegment(ctx, vip.ID); !errors.As(err, &inUse) || len(inUse.Automations) != 1 || inUse.Automations[0] != "VIP welcome" {
			t.Errorf("deleting the trigger's segment: %v, want in use by the automation", err)
		}
		var bad *models.ValidationError
		missing := int64(999999)
		err = s.CreateAutomation(ctx, &models.Automation{Name: "Bad", TriggerKind: models.TriggerSegment, TriggerSegmentID: &missing, FromEmail: "hello@example.com"},
			[]models.AutomationStep{{Kind: models.StepExit}})
		if !errors.As(err, &bad) || bad.Fields["trigger_segment_id"] == "" {
			t.Errorf("unknown segment: %v, want a validation error on trigger_segment_id", err)
		}
	})
}

// The campaign-event triggers, with a clock passed in: opened; clicked a
// given link (another link or a scanner's click does not count); did not
// open within 3 days of the sending (not before the 3 days are over).
func TestAutomationCampaignEventTrigger(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		list := mkList(t, s, "News", models.OptinSingle, models.ListPublic)
		c := &models.Campaign{Name: "Launch", Subject: "Launch", HTML: "<p>x</p>", FromEmail: "hello@example.com"}
		if err := s.CreateCampaign(ctx, c, []int64{list}); err != nil {
			t.Fatal(err)
		}
		links, err := s.EnsureLinks(ctx, c.ID, []string{"https://example.com/buy", "https://example.com/about"})
		if err != nil {
			t.Fatal(err)
		}
		sent := time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC)
		ev := models.Evidence{Source: models.SourceAdmin, Actor: "test"}
		ids := map[string]int64{}
		deliveries := map[string]int64{}
		for _, who := range []string{"opener", "buyer", "reader", "scanned", "silent"} {
			sub := &models.Subscriber{Email: who + "@example.com"}
			if err := s.CreateSubscriber(ctx, sub, map[int64]string{list: models.SubConfirmed}, ev); err != nil {
				t.Fatal(err)
			}
			ids[who] = sub.ID
			var id int64
			if err := s.DB().Raw(`INSERT INTO deliveries (campaign_id, subscriber_id, list_id, domain, status, attempts, next_attempt_at, sent_at, created_at)
				VALUES (?, ?, ?, 'example.com', 'sent', 1, ?, ?, ?) RETURNING id`, c.ID, sub.ID, list, sent, sent, sent).Scan(&id).Error; err != nil {
				t.Fatal(err)
			}
			deliveries[who] = id
		}
		event := func(who, kind string, link int64, machine bool) models.Event {
			return models.Event{DeliveryID: deliveries[who], CampaignID: c.ID, SubscriberID: ids[who], LinkID: link, Kind: kind,
				Machine: machine, CreatedAt: sent.Add(time.Hour)}
		}
		if err := s.InsertEvents(ctx, []models.Event{event("opener", models.EventOpen, 0, false), event("buyer", models.EventClick, links[0], false),
			event("reader", models.EventClick, links[1], false), event("scanned", models.EventClick, links[0], true)}); err != nil {
			t.Fatal(err)
		}
		mk := func(name, on, url string, days int) *models.Automation {
			a := &models.Automation{Name: name, TriggerKind: models.TriggerCampaignEvent, TriggerCampaignID: &c.ID, TriggerEvent: on,
				TriggerURL: url, TriggerDays: days, FromEmail: "hello@example.com"}
			if err := s.CreateAutomation(ctx, a, []models.AutomationStep{{Kind: models.StepSetAttr, AttrKey: "got", AttrValue: name}}); err != nil {
				t.Fatal(err)
			}
			if err := s.SetAutomationStatus(ctx, a.ID, models.AutomationActive); err != nil {
				t.Fatal(err)
			}
			return a
		}
		opened := mk("opened", models.OnOpened, "", 0)
		clicked := mk("clicked", models.OnClicked, "https://example.com/buy", 0)
		silent := mk("silent", models.OnNotOpened, "", 3)
		inside := func(a *models.Automation) map[int64]bool {
			var got []int64
			if err := s.DB().Raw("SELECT subscriber_id FROM automation_runs WHERE automation_id = ?", a.ID).Scan(&got).Error; err != nil {
				t.Fatal(err)
			}
			out := map[int64]bool{}
			for _, id := range got {
				out[id] = true
			}
			return out
		}
		if _, err := s.AdvanceAutomations(ctx, sent.Add(48*time.Hour)); err != nil {
			t.Fatal(err)
		}
		if got := inside(opened); len(got) != 1 || !got[ids["opener"]] {
			t.Errorf("opened: %v, want only the opener (%d)", got, ids["opener"])
		}
		if got := inside(clicked); len(got) != 1 || !got[ids["buyer"]] {
			t.Errorf("clicked the buy link: %v, want only the buyer (%d)", got, ids["buyer"])
		}
		if got := inside(silent); len(got) != 0 {
			t.Errorf("did not open within 3 days, 2 days in: %v, want nobody yet", got)
		}
		if _, err := s.AdvanceAutomations(ctx, sent.Add(72*time.Hour)); err != nil {
			t.Fatal(err)
		}
		// The scanner's click is not the person's: scanned and silent did
		// not open.
		if got := inside(silent); len(got) != 2 || !got[ids["silent"]] || !got[ids["scanned"]] {
			t.Errorf("did not open within 3 days: %v, want silent and scanned", got)
		}
		sub, _ := s.Subscriber(ctx, ids["silent"])
		if sub.Attributes["got"] != "silent" {
			t.Errorf("silent's attributes: %v, want the step run", sub.Attributes)
		}
		var bad *models.ValidationError
		err = s.CreateAutomation(ctx, &models.Automation{Name: "Bad", TriggerKind: models.TriggerCampaignEvent, TriggerCampaignID: &c.ID,
			TriggerEvent: models.OnNotOpened, FromEmail: "hello@example.com"}, []models.AutomationStep{{Kind: models.StepExit}})
		if !errors.As(err, &bad) || bad.Fields["trigger_days"] == "" {
			t.Errorf("not opened without days: %v, want a validation error on trigger_days", err)
		}
	})
}

// Editing a live automation with "finish their version": the person
// inside goes on with the steps they entered on (the old message), the
// one who enters after the edit gets the new version's.
func TestAutomationEditFinishVersion(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		list := mkList(t, s, "News", models.OptinSingle, models.ListPublic)
		a := &models.Automation{Name: "Drip", TriggerKind: models.TriggerAPI, ListID: &list, FromEmail: "hello@example.com"}
		if err := s.CreateAutomation(ctx, a, welcomeSteps()); err != nil {
			t.Fatal(err)
		}
		if err := s.SetAutomationStatus(ctx, a.ID, models.AutomationActive); err != nil {
			t.Fatal(err)
		}
		ev := models.Evidence{Source: models.SourceForm, IP: "192.0.2.1", UserAgent: "ua", ConsentText: "yes"}
		var ids []int64
		for _, e := range []string{"early@example.com", "late@example.com"} {
			r, err := s.SignupFromForm(ctx, e, "", list, ev)
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, r.SubscriberID)
		}
		t0 := time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC)
		if _, err := s.EnterAutomation(ctx, a.ID, ids[:1], false, t0); err != nil {
			t.Fatal(err)
		}
		if _, err := s.AdvanceAutomations(ctx, t0); err != nil {
			t.Fatal(err)
		}
		v1, _ := s.AutomationSteps(ctx, a.ID, 0)
		edited := append([]models.AutomationStep(nil), v1...)
		edited[2].Subject = "Day two, rewritten"
		cur, _ := s.Automation(ctx, a.ID)
		if err := s.UpdateAutomation(ctx, cur, edited, models.EditFinish); err != nil {
			t.Fatal(err)
		}
		v2, _ := s.AutomationSteps(ctx, a.ID, 0)
		if v2[0].Version != 2 {
			t.Fatalf("after the edit: version %d, want 2", v2[0].Version)
		}
		if _, err := s.EnterAutomation(ctx, a.ID, ids[1:], false, t0.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		if _, err := s.AdvanceAutomations(ctx, t0.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		if _, err := s.AdvanceAutomations(ctx, t0.Add(72*time.Hour)); err != nil {
			t.Fatal(err)
		}
		old, nw := stepDeliveries(t, s, v1, 3), stepDeliveries(t, s, v2, 3)
		if _, ok := old[ids[0]]; !ok || len(old) != 1 {
			t.Errorf("old version's day two went to %v, want only early (%d), who finishes their version", old, ids[0])
		}
		if _, ok := nw[ids[1]]; !ok || len(nw) != 1 {
			t.Errorf("new version's day two went to %v, want only late (%d)", nw, ids[1])
		}
		r, _ := s.AutomationRunOf(ctx, a.ID, ids[0])
		if r.Version != 1 || r.State != "done" {
			t.Errorf("early's run: version %d %s, want version 1 done", r.Version, r.State)
		}
	})
}

// The attribute-changed trigger, with a clock passed in: nobody enters
// at the first look; a change to the value asked for lets the person in
// (once), a change to another value does not, and a subscriber created
// afterwards with the value enters too.
func TestAutomationAttributeChangedTrigger(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		list := mkList(t, s, "News", models.OptinSingle, models.ListPublic)
		ev := models.Evidence{Source: models.SourceAdmin, Actor: "test"}
		ids := map[string]int64{}
		mkSub := func(who, plan string) {
			sub := &models.Subscriber{Email: who + "@example.com", Attributes: models.Attributes{}}
			if plan != "" {
				sub.Attributes["plan"] = plan
			}
			if err := s.CreateSubscriber(ctx, sub, map[int64]string{list: models.SubConfirmed}, ev); err != nil {
				t.Fatal(err)
			}
			ids[who] = sub.ID
		}
		mkSub("upgrader", "free")
		mkSub("sidegrader", "free")
		mkSub("pro", "pro")
		pro := "pro"
		a := &models.Automation{Name: "Upgraded", TriggerKind: models.TriggerAttributeChanged, TriggerAttribute: "plan", TriggerValue: &pro,
			ListID: &list, FromEmail: "hello@example.com"}
		if err := s.CreateAutomation(ctx, a, []models.AutomationStep{{Kind: models.StepSetAttr, AttrKey: "thanked", AttrValue: "yes"}}); err != nil {
			t.Fatal(err)
		}
		if err := s.SetAutomationStatus(ctx, a.ID, models.AutomationActive); err != nil {
			t.Fatal(err)
		}
		t0 := time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC)
		if rep, err := s.AdvanceAutomations(ctx, t0); err != nil || rep.Entered != 0 {
			t.Fatalf("first look: %+v, %v; want nobody (pro was pro before)", rep, err)
		}
		set := func(who, plan string) {
			sub, err := s.Subscriber(ctx, ids[who])
			if err != nil {
				t.Fatal(err)
			}
			sub.Attributes["plan"] = plan
			if err := s.UpdateSubscriber(ctx, sub); err != nil {
				t.Fatal(err)
			}
		}
		set("upgrader", "pro")
		set("sidegrader", "team")
		mkSub("newpro", "pro")
		rep, err := s.AdvanceAutomations(ctx, t0.Add(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		if rep.Entered != 2 {
			t.Errorf("after the changes: %+v, want 2 entered (upgrader, newpro)", rep)
		}
		for who, want := range map[string]bool{"upgrader": true, "newpro": true, "sidegrader": false, "pro": false} {
			sub, _ := s.Subscriber(ctx, ids[who])
			if (sub.Attributes["thanked"] == "yes") != want {
				t.Errorf("%s thanked: %v, want %v", who, sub.Attributes["thanked"], want)
			}
		}
		// Down and up again: they were inside already.
		set("upgrader", "free")
		if _, err := s.AdvanceAutomations(ctx, t0.Add(2*time.Minute)); err != nil {
			t.Fatal(err)
		}
		set("upgrader", "pro")
		set("sidegrader", "pro")
		if rep, err = s.AdvanceAutomations(ctx, t0.Add(3*time.Minute)); err != nil || rep.Entered != 1 {
			t.Errorf("second round: %+v, %v; want 1 entered (sidegrader now pro; upgrader once only)", rep, err)
		}
		var bad *models.ValidationError
		err = s.CreateAutomation(ctx, &models.Automation{Name: "Bad", TriggerKind: models.TriggerAttributeChanged, FromEmail: "hello@example.com"},
			[]models.AutomationStep{{Kind: models.StepExit}})
		if !errors.As(err, &bad) || bad.Fields["trigger_attribute"] == "" {
			t.Errorf("no attribute: %v, want a validation error on trigger_attribute", err)
		}
	})
}
