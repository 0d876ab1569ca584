package models_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/herald-mail/herald/internal/testdb"
	"github.com/herald-mail/herald/models"
)

// The sunset rule, run with a clock passed in, unsubscribes exactly the
// inactive people of its round (a machine open is no sign of life), each
// with a ledger row per list and an audit entry, and keeps the engaged,
// the too-recently-added and whoever woke up during the waiting period.
func TestSunsetRule(t *testing.T) {
	for _, action := range []string{models.SunsetUnsubscribe, models.SunsetSuppress} {
		testdb.Each(t, func(t *testing.T, s *models.Store) {
			ctx := context.Background()
			t0 := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
			news := &models.List{Name: "News", Optin: models.OptinSingle, Visibility: models.ListPublic}
			offers := &models.List{Name: "Offers", Optin: models.OptinSingle, Visibility: models.ListPublic}
			for _, l := range []*models.List{news, offers} {
				if err := s.CreateList(ctx, l); err != nil {
					t.Fatal(err)
				}
			}
			tpl := &models.Template{Kind: models.TemplateCampaign, Name: "t", HTML: "<p>x</p>"}
			if err := s.CreateTemplate(ctx, tpl); err != nil {
				t.Fatal(err)
			}
			var campaigns []int64
			for i := range 8 {
				c := &models.Campaign{Name: "old " + string(rune('a'+i)), TemplateID: &tpl.ID, FromEmail: "news@b.test"}
				if err := s.CreateCampaign(ctx, c, []int64{news.ID}); err != nil {
					t.Fatal(err)
				}
				campaigns = append(campaigns, c.ID)
			}
			type person struct {
				email    string
				received int
				event    string // "human-open", "human-click", "machine-open", "old-open", ""
				inactive bool
			}
			people := []person{
				{"silent@a.test", 8, "", true},
				{"clicker@a.test", 8, "human-click", false},
				{"opener@a.test", 9, "human-open", false},
				{"machine@a.test", 8, "machine-open", true},
				{"scanner@a.test", 8, "machine-click", true},
				{"few@a.test", 3, "", false},
				{"longago@a.test", 8, "old-open", true},
				{"waker@a.test", 8, "", true}, // clicks during the waiting period
			}
			ev := models.Evidence{Source: models.SourceAdmin, Actor: "test", Note: "test fixture"}
			ids := map[string]int64{}
			for _, p := range people {
				sub := &models.Subscriber{Email: p.email}
				lists := map[int64]string{news.ID: models.SubConfirmed, offers.ID: models.SubConfirmed}
				if err := s.CreateSubscriber(ctx, sub, lists, ev); err != nil {
					t.Fatal(err)
				}
				ids[p.email] = sub.ID
				var deliveries []int64
				for i := range p.received {
					cid := campaigns[i%len(campaigns)]
					if i >= len(campaigns) { // a ninth delivery of a campaign already received
						continue
					}
					var id int64
					if err := s.DB().Raw(`INSERT INTO deliveries (campaign_id, subscriber_id, list_id, domain, status, attempts, next_attempt_at, created_at)
						VALUES (?, ?, ?, 'a.test', 'sent', 1, ?, ?) RETURNING id`, cid, sub.ID, news.ID, t0.AddDate(0, -9, i), t0.AddDate(0, -9, i)).Scan(&id).Error; err != nil {
						t.Fatal(err)
					}
					deliveries = append(deliveries, id)
				}
				at, kind, machine := t0.AddDate(0, -1, 0), "", false
				switch p.event {
				case "human-open":
					kind = models.EventOpen
				case "human-click":
					kind = models.EventClick
				case "machine-open":
					kind, machine = models.EventOpen, true
				case "machine-click":
					kind, machine = models.EventClick, true
				case "old-open":
					kind, at = models.EventOpen, t0.AddDate(0, -7, 0)
				}
				if kind != "" {
					if err := s.InsertEvents(ctx, []models.Event{{DeliveryID: deliveries[0], CampaignID: campaigns[0], SubscriberID: sub.ID,
						Kind: kind, Machine: machine, CreatedAt: at}}); err != nil {
						t.Fatal(err)
					}
				}
			}
			// Already gone from every list: not counted.
			gone := &models.Subscriber{Email: "gone@a.test"}
			if err := s.CreateSubscriber(ctx, gone, map[int64]string{news.ID: models.SubConfirmed}, ev); err != nil {
				t.Fatal(err)
			}
			if err := s.UnsubscribeEverywhere(ctx, gone.ID, ev); err != nil {
				t.Fatal(err)
			}

			rule := models.DefaultSunsetRule()
			rule.Enabled, rule.Action, rule.GraceDays = true, action, 14
			if errs := rule.Validate(); len(errs) > 0 {
				t.Fatal(errs)
			}
			if err := s.SaveSunsetRule(ctx, &rule); err != nil {
				t.Fatal(err)
			}
			var wantInactive []string
			for _, p := range people {
				if p.inactive {
					wantInactive = append(wantInactive, p.email)
				}
			}
			n, preview, err := s.SunsetMatches(ctx, rule, t0, 100)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, p := range preview {
				got = append(got, p.Email)
			}
			slices.Sort(got)
			slices.Sort(wantInactive)
			if n != int64(len(wantInactive)) || !slices.Equal(got, wantInactive) {
				t.Fatalf("SunsetMatches = %d %v, want %v", n, got, wantInactive)
			}

			round, err := s.StartSunsetRound(ctx, t0)
			if err != nil {
				t.Fatal(err)
			}
			if round.People != int64(len(wantInactive)) || round.List.Kind != models.ListKindSnapshot || round.Campaign.Status != models.CampaignDraft {
				t.Fatalf("round = %d people, list kind %q, campaign %q", round.People, round.List.Kind, round.Campaign.Status)
			}
			if lists, _ := s.CampaignLists(ctx, round.Campaign.ID); !slices.Equal(lists, []int64{round.List.ID}) {
				t.Errorf("re-engagement campaign lists = %v, want the snapshot %d", lists, round.List.ID)
			}
			// The job waits for the campaign to be sent, then for the period.
			if n, ran, err := s.RunSunsetIfDue(ctx, t0.AddDate(0, 1, 0), "sunset job"); err != nil || ran || n != 0 {
				t.Fatalf("RunSunsetIfDue before the campaign was sent = %d, %v, %v; want nothing", n, ran, err)
			}
			if err := s.DB().Exec("UPDATE campaigns SET status = ?, started_at = ? WHERE id = ?", models.CampaignFinished, t0, round.Campaign.ID).Error; err != nil {
				t.Fatal(err)
			}
			if n, ran, err := s.RunSunsetIfDue(ctx, t0.AddDate(0, 0, 13), "sunset job"); err != nil || ran || n != 0 {
				t.Fatalf("RunSunsetIfDue within the waiting period = %d, %v, %v; want nothing", n, ran, err)
			}
			// Someone in the round clicks (a person) during the wait;
			// someone outside it was never offered re-engagement.
			if err := s.InsertEvents(ctx, []models.Event{{DeliveryID: 1, CampaignID: round.Campaign.ID, SubscriberID: ids["waker@a.test"],
				Kind: models.EventClick, CreatedAt: t0.AddDate(0, 0, 3)}}); err != nil {
				t.Fatal(err)
			}
			if dry, err := s.SunsetDryRun(ctx, t0.AddDate(0, 0, 14)); err != nil || dry != int64(len(wantInactive)-1) {
				t.Errorf("SunsetDryRun = %d, %v; want %d", dry, err, len(wantInactive)-1)
			}
			n, ran, err := s.RunSunsetIfDue(ctx, t0.AddDate(0, 0, 14), "sunset job")
			if err != nil || !ran {
				t.Fatalf("RunSunsetIfDue after the period = %d, %v, %v", n, ran, err)
			}
			if n != int64(len(wantInactive)-1) {
				t.Errorf("RunSunsetIfDue acted on %d, want %d", n, len(wantInactive)-1)
			}
			for _, p := range people {
				gone := p.inactive && p.email != "waker@a.test"
				subs, err := s.SubscriptionsOf(ctx, ids[p.email])
				if err != nil {
					t.Fatal(err)
				}
				for _, m := range subs {
					if m.ListKind != models.ListKindList {
						continue
					}
					if unsub := m.Status == models.SubUnsubscribed; unsub != gone {
						t.Errorf("%s on %s: status %s, want unsubscribed %v", p.email, m.ListName, m.Status, gone)
					}
				}
				ledger, err := s.ConsentsBySubscriber(ctx, ids[p.email])
				if err != nil {
					t.Fatal(err)
				}
				var sunset int
				for _, c := range ledger {
					if c.Source == models.SourceSunset {
						sunset++
						if c.Action != models.ConsentWithdrawn || !strings.HasPrefix(c.Note, models.SunsetReason) || c.Actor != "sunset job" {
							t.Errorf("%s: ledger row %+v", p.email, c)
						}
					}
				}
				if want := map[bool]int{true: 2, false: 0}[gone]; sunset != want {
					t.Errorf("%s: %d sunset ledger rows, want %d (one per list)", p.email, sunset, want)
				}
				supp, err := s.IsSuppressed(ctx, p.email)
				if err != nil {
					t.Fatal(err)
				}
				if want := gone && action == models.SunsetSuppress; supp != want {
					t.Errorf("%s: suppressed %v, want %v", p.email, supp, want)
				}
			}
			if brk, _, err := s.VerifyConsents(ctx); err != nil || brk != nil {
				t.Errorf("VerifyConsents = %+v, %v", brk, err)
			}
			entries, _, err := s.AuditPage(ctx, models.AuditQuery{})
			if err != nil {
				t.Fatal(err)
			}
			var audited bool
			for _, e := range entries {
				audited = audited || (e.Action == "sunset.run" && e.Actor == "sunset job" && strings.Contains(e.Summary, "4 inactive people"))
			}
			if !audited {
				t.Errorf("no sunset.run audit entry for 4 people in %+v", entries)
			}
			// The round is closed: the next day's job does nothing.
			if n, ran, err := s.RunSunsetIfDue(ctx, t0.AddDate(0, 0, 15), "sunset job"); err != nil || ran || n != 0 {
				t.Errorf("RunSunsetIfDue after the round = %d, %v, %v; want nothing", n, ran, err)
			}
		})
	}
}
