package models_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/herald-mail/herald/internal/testdb"
	"github.com/herald-mail/herald/models"
)

// An A/B tested campaign: the test share goes out split evenly, the rest
// is held (never claimed) until the winner, chosen from human clicks
// only, is released to it; nobody gets two variants.
func TestABTestLifecycle(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		list := &models.List{Name: "AB", Optin: models.OptinSingle, Visibility: models.ListPublic}
		if err := s.CreateList(ctx, list); err != nil {
			t.Fatal(err)
		}
		ev := models.Evidence{Source: models.SourceAdmin, Actor: "test"}
		for i := range 200 {
			sub := &models.Subscriber{Email: fmt.Sprintf("p%03d@ab.test", i)}
			if err := s.CreateSubscriber(ctx, sub, map[int64]string{list.ID: models.SubConfirmed}, ev); err != nil {
				t.Fatal(err)
			}
		}
		tpl := &models.Template{Kind: models.TemplateCampaign, Name: "t", HTML: "<p>x</p>"}
		if err := s.CreateTemplate(ctx, tpl); err != nil {
			t.Fatal(err)
		}
		c := &models.Campaign{Name: "ab", TemplateID: &tpl.ID, FromEmail: "a@b.test",
			AB:       models.ABTest{Share: 50, Metric: models.MetricClicks, WaitSeconds: 60},
			Variants: []models.Variant{{Subject: "Hello"}, {Subject: "Hi there", FromName: "Ann"}}}
		if errs := c.Validate(); len(errs) > 0 {
			t.Fatal(errs)
		}
		if err := s.CreateCampaign(ctx, c, []int64{list.ID}); err != nil {
			t.Fatal(err)
		}
		vs, err := s.CampaignVariants(ctx, c.ID)
		if err != nil || len(vs) != 2 || vs[0].Label != "A" || vs[1].Label != "B" || vs[1].FromName != "Ann" {
			t.Fatalf("CampaignVariants = %+v, %v", vs, err)
		}
		if err := s.StartCampaign(ctx, c.ID); err != nil {
			t.Fatal(err)
		}
		claim := func() []models.Claimed {
			t.Helper()
			got, err := s.ClaimDeliveries(ctx, models.ClaimRequest{Node: "n", Lease: time.Minute, Limit: 1000, CampaignIDs: []int64{c.ID}})
			if err != nil {
				t.Fatal(err)
			}
			return got
		}
		// Half materialised: nothing is claimable yet.
		if done, err := s.MaterializeCampaign(ctx, c.ID, 37); done || err != nil {
			t.Fatalf("MaterializeCampaign = %v, %v", done, err)
		}
		if got := claim(); len(got) != 0 {
			t.Fatalf("claimed %d rows of a test not yet drawn", len(got))
		}
		for done := false; !done; {
			if done, err = s.MaterializeCampaign(ctx, c.ID, 37); err != nil {
				t.Fatal(err)
			}
		}
		test := claim()
		perVariant := map[int]int{}
		for _, d := range test {
			perVariant[d.Variant]++
		}
		if len(test) != 100 || perVariant[1] != 50 || perVariant[2] != 50 {
			t.Fatalf("test share claimed: %d rows, by variant %v; want 100, 50 each", len(test), perVariant)
		}
		if got := claim(); len(got) != 0 {
			t.Fatalf("claimed %d held rows before the winner", len(got))
		}
		// At random, not the first or last to sign up.
		var minSub int64
		s.DB().Raw("SELECT MIN(subscriber_id) FROM deliveries WHERE campaign_id = ?", c.ID).Scan(&minSub)
		early := 0
		for _, d := range test {
			if d.SubscriberID < minSub+100 {
				early++
			}
		}
		if early < 30 || early > 70 {
			t.Errorf("%d of the test share among the first 100 subscribers, want about 50", early)
		}
		if ok, _ := s.FinishCampaignIfDone(ctx, c.ID); ok {
			t.Fatal("campaign finished with its remainder held")
		}
		// The draw is a function of the ids: materialising again changes nothing.
		if done, err := s.MaterializeCampaign(ctx, c.ID, 37); !done || err != nil {
			t.Fatalf("MaterializeCampaign(again) = %v, %v", done, err)
		}
		var outs []models.Outcome
		for _, d := range test {
			outs = append(outs, models.Outcome{ID: d.ID, LeaseGen: d.LeaseGen, CampaignID: c.ID, Status: models.DeliverySent, At: time.Now()})
		}
		if _, err := s.RecordOutcomes(ctx, outs); err != nil {
			t.Fatal(err)
		}
		// B: 20 people click; A: 5 people click and a scanner clicks 30
		// more of A's messages, which must not count.
		var evs []models.Event
		clicks := map[int]int{1: 5, 2: 20}
		scanned := 0
		for _, d := range test {
			if clicks[d.Variant] > 0 {
				clicks[d.Variant]--
				evs = append(evs, models.Event{DeliveryID: d.ID, CampaignID: c.ID, SubscriberID: d.SubscriberID, Kind: models.EventClick})
				evs = append(evs, models.Event{DeliveryID: d.ID, CampaignID: c.ID, SubscriberID: d.SubscriberID, Kind: models.EventOpen})
			} else if d.Variant == 1 && scanned < 30 {
				scanned++
				evs = append(evs, models.Event{DeliveryID: d.ID, CampaignID: c.ID, SubscriberID: d.SubscriberID, Kind: models.EventClick, Machine: true})
			}
		}
		if err := s.InsertEvents(ctx, evs); err != nil {
			t.Fatal(err)
		}
		cp, err := s.Campaign(ctx, c.ID)
		if err != nil || cp.AB.TestAt == nil {
			t.Fatalf("campaign = %+v, %v; want the test's release time", cp, err)
		}
		if due, _ := s.DueABTests(ctx, cp.AB.TestAt.Add(59*time.Second)); len(due) != 0 {
			t.Errorf("due before the wait: %v", due)
		}
		due, err := s.DueABTests(ctx, cp.AB.TestAt.Add(61*time.Second))
		if err != nil || len(due) != 1 || due[0] != c.ID {
			t.Fatalf("DueABTests after the wait = %v, %v", due, err)
		}
		rep, err := s.CampaignABReport(ctx, c.ID)
		if err != nil || rep == nil || rep.Held != 100 {
			t.Fatalf("report before the decision = %+v, %v; want 100 held", rep, err)
		}
		a, err := s.DecideABTest(ctx, c.ID, 0, "job", cp.AB.TestAt.Add(61*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if a.Best != 2 || !a.Significant || a.Variants[0].Clicks != 5 || a.Variants[1].Clicks != 20 || a.Variants[0].Sent != 50 {
			t.Fatalf("analysis = %+v", a)
		}
		if _, err := s.DecideABTest(ctx, c.ID, 1, "someone", time.Now()); !errors.Is(err, models.ErrABNotReady) {
			t.Errorf("second decision: err = %v, want ErrABNotReady", err)
		}
		rest := claim()
		seen := map[int64]bool{}
		for _, d := range test {
			seen[d.SubscriberID] = true
		}
		for _, d := range rest {
			if d.Variant != 2 {
				t.Errorf("remainder row %d has variant %d, want 2", d.ID, d.Variant)
			}
			if seen[d.SubscriberID] {
				t.Errorf("subscriber %d in both the test and the remainder", d.SubscriberID)
			}
		}
		if len(rest) != 100 {
			t.Errorf("remainder claimed: %d rows, want 100", len(rest))
		}
		rep, err = s.CampaignABReport(ctx, c.ID)
		if err != nil || rep.Held != 0 || rep.Test.Winner == nil || *rep.Test.Winner != 2 || rep.Analysis.Best != 2 || rep.Test.DecidedBy != "job" {
			t.Fatalf("report after = %+v, %v", rep, err)
		}
		// A copy takes the test's settings and variants, not its outcome.
		cl, err := s.CloneCampaign(ctx, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		cvs, _ := s.CampaignVariants(ctx, cl.ID)
		cl, _ = s.Campaign(ctx, cl.ID)
		if len(cvs) != 2 || cvs[1].FromName != "Ann" || cl.AB.Share != 50 || cl.AB.Winner != nil || cl.AB.TestAt != nil {
			t.Errorf("clone: %+v, variants %+v", cl.AB, cvs)
		}
	})
}

// A variant set is checked: two to five, distinct, with a share, metric
// and wait in range.
func TestABValidate(t *testing.T) {
	tid := int64(1)
	base := func() *models.Campaign {
		return &models.Campaign{Name: "x", TemplateID: &tid, FromEmail: "a@b.test",
			AB: models.ABTest{Share: 20, WaitSeconds: 3600}, Variants: []models.Variant{{Subject: "a"}, {Subject: "b"}}}
	}
	if errs := base().Validate(); len(errs) != 0 {
		t.Fatalf("valid test: %v", errs)
	}
	for field, mod := range map[string]func(c *models.Campaign){
		"variants":  func(c *models.Campaign) { c.Variants = c.Variants[:1] },
		"ab_share":  func(c *models.Campaign) { c.AB.Share = 0 },
		"ab_metric": func(c *models.Campaign) { c.AB.Metric = "revenue" },
		"ab_wait":   func(c *models.Campaign) { c.AB.WaitSeconds = 1 },
		"variant_2": func(c *models.Campaign) { c.Variants[1].Subject = "a" },
	} {
		c := base()
		mod(c)
		if errs := c.Validate(); errs[field] == "" {
			t.Errorf("%s: errors = %v, want one for %s", field, errs, field)
		}
	}
}

// An A/B test and a local send time do not go together: Validate refuses
// the pair, and a campaign given both through the store (SetCampaignSendTime
// does not look at the test) still keeps its remainder held for the winner:
// the time-zone release step leaves held rows alone, and the test share is
// due when the draw is made.
func TestABTestWithSendTime(t *testing.T) {
	c := &models.Campaign{Name: "ab", HTML: "<p>x</p>", FromEmail: "a@b.test",
		AB:       models.ABTest{Share: 50, Metric: models.MetricClicks, WaitSeconds: 60},
		Variants: []models.Variant{{Subject: "Hello"}, {Subject: "Hi there"}},
		SendTime: models.SendTime{LocalSendAt: "09:00", TZDefault: "Europe/Paris"}}
	if errs := c.Validate(); errs["local_send_at"] == "" {
		t.Errorf("Validate of an A/B test at a local time = %v, want local_send_at refused", errs)
	}
	t0 := time.Date(2026, 12, 5, 12, 0, 30, 0, time.UTC) // 13:00 in Paris: 09:00 is tomorrow
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		list := &models.List{Name: "AB", Optin: models.OptinSingle, Visibility: models.ListPublic}
		if err := s.CreateList(ctx, list); err != nil {
			t.Fatal(err)
		}
		ev := models.Evidence{Source: models.SourceAdmin, Actor: "test"}
		for i := range 20 {
			sub := &models.Subscriber{Email: fmt.Sprintf("z%02d@ab.test", i)}
			if err := s.CreateSubscriber(ctx, sub, map[int64]string{list.ID: models.SubConfirmed}, ev); err != nil {
				t.Fatal(err)
			}
		}
		c := &models.Campaign{Name: "ab", HTML: "<p>x</p>", FromEmail: "a@b.test",
			AB:       models.ABTest{Share: 50, Metric: models.MetricClicks, WaitSeconds: 60},
			Variants: []models.Variant{{Subject: "Hello"}, {Subject: "Hi there"}}}
		if errs := c.Validate(); len(errs) > 0 {
			t.Fatal(errs)
		}
		if err := s.CreateCampaign(ctx, c, []int64{list.ID}); err != nil {
			t.Fatal(err)
		}
		if err := s.SetCampaignSendTime(ctx, c.ID, models.SendTime{LocalSendAt: "09:00", TZDefault: "Europe/Paris"}); err != nil {
			t.Fatal(err)
		}
		if err := s.StartCampaign(ctx, c.ID); err != nil {
			t.Fatal(err)
		}
		for done := false; !done; {
			var err error
			if done, err = s.MaterializeCampaignAt(ctx, c.ID, 7, t0); err != nil {
				t.Fatal(err)
			}
		}
		var rows []struct {
			Variant       *int
			NextAttemptAt time.Time
		}
		if err := s.DB().Raw("SELECT variant, next_attempt_at FROM deliveries WHERE campaign_id = ?", c.ID).Scan(&rows).Error; err != nil {
			t.Fatal(err)
		}
		var test, held int
		for _, r := range rows {
			if r.Variant != nil {
				test++
				if d := r.NextAttemptAt.Sub(t0); d < -time.Second || d > time.Second {
					t.Errorf("variant %d row due %s, want the draw's time %s", *r.Variant, r.NextAttemptAt.UTC(), t0)
				}
				continue
			}
			held++
			if r.NextAttemptAt.Year() < 2200 {
				t.Errorf("held row due %s: the release step freed a row held for the winner", r.NextAttemptAt.UTC())
			}
		}
		if test != 10 || held != 10 {
			t.Errorf("%d test rows and %d held, want 10 and 10", test, held)
		}
	})
}
