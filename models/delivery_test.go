package models_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/herald-mail/herald/internal/testdb"
	"github.com/herald-mail/herald/models"
)

// Materialisation picks exactly the eligible subscribers, once each.
func TestMaterializeCampaign(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		single := &models.List{Name: "Single", Optin: models.OptinSingle, Visibility: models.ListPublic}
		double := &models.List{Name: "Double", Optin: models.OptinDouble, Visibility: models.ListPublic}
		other := &models.List{Name: "Other", Optin: models.OptinSingle, Visibility: models.ListPublic}
		for _, l := range []*models.List{single, double, other} {
			if err := s.CreateList(ctx, l); err != nil {
				t.Fatal(err)
			}
		}
		ev := models.Evidence{Source: models.SourceAdmin, Actor: "test"}
		people := []struct {
			email string
			lists map[int64]string
			want  string // delivery status, "" for no delivery
		}{
			{"confirmed@a.test", map[int64]string{double.ID: models.SubConfirmed}, models.DeliveryQueued},
			{"single-unconfirmed@a.test", map[int64]string{single.ID: models.SubUnconfirmed}, models.DeliveryQueued},
			{"double-unconfirmed@a.test", map[int64]string{double.ID: models.SubUnconfirmed}, ""},
			{"unsubscribed@a.test", map[int64]string{single.ID: models.SubConfirmed}, ""}, // unsubscribed below
			{"both-lists@a.test", map[int64]string{single.ID: models.SubConfirmed, double.ID: models.SubConfirmed}, models.DeliveryQueued},
			{"other-list@a.test", map[int64]string{other.ID: models.SubConfirmed}, ""},
			{"blocked@a.test", map[int64]string{single.ID: models.SubConfirmed}, ""},
			{"suppressed@a.test", map[int64]string{single.ID: models.SubConfirmed}, models.DeliverySuppressed},
			{"someone@blocked-domain.test", map[int64]string{single.ID: models.SubConfirmed}, models.DeliverySuppressed},
		}
		ids := map[string]int64{}
		for _, p := range people {
			sub := &models.Subscriber{Email: p.email}
			if err := s.CreateSubscriber(ctx, sub, p.lists, ev); err != nil {
				t.Fatal(err)
			}
			ids[p.email] = sub.ID
		}
		if err := s.SetBlocklisted(ctx, ids["blocked@a.test"], true, ev); err != nil {
			t.Fatal(err)
		}
		if err := s.SetSubscriptions(ctx, ids["unsubscribed@a.test"], map[int64]string{single.ID: models.SubUnsubscribed}, ev); err != nil {
			t.Fatal(err)
		}
		for _, v := range []string{"suppressed@a.test", "@blocked-domain.test"} {
			if err := s.AddSuppression(ctx, v, models.SuppressManual, ""); err != nil {
				t.Fatal(err)
			}
		}
		tpl := &models.Template{Kind: models.TemplateCampaign, Name: "t", HTML: "<p>x</p>"}
		if err := s.CreateTemplate(ctx, tpl); err != nil {
			t.Fatal(err)
		}
		c := &models.Campaign{Name: "c", TemplateID: &tpl.ID, FromEmail: "a@b.test"}
		if err := s.CreateCampaign(ctx, c, []int64{single.ID, double.ID}); err != nil {
			t.Fatal(err)
		}
		if err := s.StartCampaign(ctx, c.ID); err != nil {
			t.Fatal(err)
		}
		for i := 0; ; i++ {
			done, err := s.MaterializeCampaign(ctx, c.ID, 2) // tiny spans: many batches
			if err != nil {
				t.Fatal(err)
			}
			if done {
				break
			}
			if i > 100 {
				t.Fatal("MaterializeCampaign never reported done")
			}
		}
		if done, err := s.MaterializeCampaign(ctx, c.ID, 2); !done || err != nil {
			t.Errorf("MaterializeCampaign(again) = %v, %v; want true, nil", done, err)
		}
		for _, p := range people {
			var got []string
			s.DB().Raw("SELECT status FROM deliveries WHERE campaign_id = ? AND subscriber_id = ?", c.ID, ids[p.email]).Scan(&got)
			switch {
			case p.want == "" && len(got) != 0:
				t.Errorf("%s: deliveries %v, want none", p.email, got)
			case p.want != "" && (len(got) != 1 || got[0] != p.want):
				t.Errorf("%s: deliveries %v, want one %s", p.email, got, p.want)
			}
		}
		pr, err := s.CampaignProgress(ctx, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		if pr.Queued != 3 || pr.Suppressed != 2 {
			t.Errorf("counters = %+v, want 3 queued and 2 suppressed", pr.Counters)
		}

		// A campaign to one list takes its own path (no grouping): the
		// same people, as each list alone would have them. Batches of two
		// look each address up among the suppressions (more of them than
		// a batch's eighth); batches of 1,000 read all of them instead.
		for _, batch := range []int{2, 1000} {
			for _, one := range []struct {
				list *models.List
				want map[string]string
			}{
				{single, map[string]string{"single-unconfirmed@a.test": models.DeliveryQueued, "both-lists@a.test": models.DeliveryQueued,
					"suppressed@a.test": models.DeliverySuppressed, "someone@blocked-domain.test": models.DeliverySuppressed}},
				{double, map[string]string{"confirmed@a.test": models.DeliveryQueued, "both-lists@a.test": models.DeliveryQueued}},
			} {
				c := &models.Campaign{Name: fmt.Sprintf("to %s in batches of %d", one.list.Name, batch), TemplateID: &tpl.ID, FromEmail: "a@b.test"}
				if err := s.CreateCampaign(ctx, c, []int64{one.list.ID}); err != nil {
					t.Fatal(err)
				}
				if err := s.StartCampaign(ctx, c.ID); err != nil {
					t.Fatal(err)
				}
				for done := false; !done; {
					if done, err = s.MaterializeCampaign(ctx, c.ID, batch); err != nil {
						t.Fatal(err)
					}
				}
				for _, p := range people {
					var got []string
					s.DB().Raw("SELECT status FROM deliveries WHERE campaign_id = ? AND subscriber_id = ?", c.ID, ids[p.email]).Scan(&got)
					want := one.want[p.email]
					switch {
					case want == "" && len(got) != 0:
						t.Errorf("%s, %s: deliveries %v, want none", c.Name, p.email, got)
					case want != "" && (len(got) != 1 || got[0] != want):
						t.Errorf("%s, %s: deliveries %v, want one %s", c.Name, p.email, got, want)
					}
				}
			}
		}
	})
}

// Concurrent claimers never lease the same row, and outcomes keep the
// counters exact.
func TestClaimConcurrent(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		emails := make([]string, 300)
		for i := range emails {
			emails[i] = fmt.Sprintf("u%d@c.test", i)
		}
		cid := materializedCampaign(t, s, emails, nil)
		var (
			mu   sync.Mutex
			seen = map[int64]string{}
			wg   sync.WaitGroup
		)
		for w := 0; w < 4; w++ {
			node := fmt.Sprintf("node%d", w)
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					got, err := s.ClaimDeliveries(ctx, models.ClaimRequest{Node: node, Lease: time.Minute, Limit: 25, CampaignIDs: []int64{cid}, Reclaim: models.ReclaimExpired})
					if err != nil {
						t.Error(err)
						return
					}
					if len(got) == 0 {
						return
					}
					var outs []models.Outcome
					mu.Lock()
					for _, g := range got {
						if prev, dup := seen[g.ID]; dup {
							t.Errorf("delivery %d claimed by %s and %s", g.ID, prev, node)
						}
						seen[g.ID] = node
						outs = append(outs, models.Outcome{ID: g.ID, LeaseGen: g.LeaseGen, CampaignID: cid, Status: models.DeliverySent, Attempted: true, Code: 250, At: time.Now()})
					}
					mu.Unlock()
					if n, err := s.RecordOutcomes(ctx, outs); err != nil || n != len(outs) {
						t.Errorf("RecordOutcomes() = %d, %v; want %d, nil", n, err, len(outs))
					}
				}
			}()
		}
		wg.Wait()
		if len(seen) != 300 {
			t.Errorf("claimed %d deliveries, want 300", len(seen))
		}
		pr, _ := s.CampaignProgress(ctx, cid)
		if pr.Sent != 300 || pr.Queued != 0 || pr.Sending != 0 {
			t.Errorf("counters = %+v, want 300 sent", pr.Counters)
		}
		if done, err := s.FinishCampaignIfDone(ctx, cid); !done || err != nil {
			t.Errorf("FinishCampaignIfDone() = %v, %v; want true, nil", done, err)
		}
	})
}

// TestClaimHonoursLaterSuppressions: an address or a domain suppressed
// after a campaign was materialised is not mailed, nor is a subscriber
// whose address was changed since to one suppressed long ago: the claim
// marks those rows suppressed, and only those.
func TestClaimHonoursLaterSuppressions(t *testing.T) {
	for _, bulk := range []bool{false, true} {
		t.Run(map[bool]string{false: "few", true: "after a big upload"}[bulk], func(t *testing.T) { claimHonoursLaterSuppressions(t, bulk) })
	}
}

func claimHonoursLaterSuppressions(t *testing.T, bulk bool) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		// The list was imported just before the send: the claim checks
		// its rows only against the suppressions added since
		// materialisation, except a subscriber changed since.
		cid := materializedCampaign(t, s, []string{"keep@a.test", "gone@a.test", "x@blocked.test", "y@blocked.test", "other@c.test"}, nil)
		for _, v := range []string{"GONE@a.test", "@blocked.test"} {
			if err := s.AddSuppression(ctx, v, models.SuppressManual, "after materialisation"); err != nil {
				t.Fatal(err)
			}
		}
		// A complaint from a year ago, and a subscriber whose address is
		// changed to it after materialisation.
		if err := s.AddSuppression(ctx, "complained@z.test", models.SuppressManual, "long ago"); err != nil {
			t.Fatal(err)
		}
		if err := s.DB().Exec("UPDATE suppressions SET created_at = ? WHERE value = 'complained@z.test'", time.Now().AddDate(-1, 0, 0).UTC()).Error; err != nil {
			t.Fatal(err)
		}
		var other models.Subscriber
		if err := s.DB().Where("email = ?", "other@c.test").First(&other).Error; err != nil {
			t.Fatal(err)
		}
		other.Email = "complained@z.test"
		if err := s.UpdateSubscriber(ctx, &other); err != nil {
			t.Fatal(err)
		}
		if bulk {
			// A big suppression upload meanwhile: more than a claim reads.
			if err := s.DB().Exec(`INSERT INTO suppressions (kind, value, value_hash, reason, note, created_at)
				SELECT 'address', 'x' || CAST(n AS TEXT) || '@bulk.test', 'filler' || CAST(n AS TEXT), 'manual', '', ?
				FROM (WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 2500) SELECT n FROM c) AS seq`,
				time.Now().UTC()).Error; err != nil {
				t.Fatal(err)
			}
		}
		got, err := s.ClaimDeliveries(ctx, models.ClaimRequest{Node: "n", Lease: time.Minute, Limit: 10, CampaignIDs: []int64{cid}})
		if err != nil {
			t.Fatal(err)
		}
		verdict := map[string]string{}
		for _, g := range got {
			verdict[g.Email] = g.Ineligible
		}
		want := map[string]string{"keep@a.test": "", "gone@a.test": "suppressed", "x@blocked.test": "suppressed",
			"y@blocked.test": "suppressed", "complained@z.test": "suppressed"}
		if fmt.Sprint(verdict) != fmt.Sprint(want) {
			t.Errorf("claim verdicts = %v\nwant %v", verdict, want)
		}
	})
}
