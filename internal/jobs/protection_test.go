package jobs

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/herald-mail/herald/internal/testdb"
	"github.com/herald-mail/herald/models"
)

// runningCampaign writes a running campaign with n deliveries to
// gmail.com, sent (or, with deferred, left deferred) at, and returns its
// id and the deliveries' ids.
func runningCampaign(t *testing.T, s *models.Store, n int, status string, at time.Time) (int64, []int64) {
	t.Helper()
	ctx := context.Background()
	c := &models.Campaign{Name: "Protected", FromEmail: "news@example.com"}
	if err := s.CreateCampaign(ctx, c, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.StartCampaign(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := s.DB().Exec(`INSERT INTO deliveries (campaign_id, email, domain, status, attempts, next_attempt_at, last_attempt_at, mx_host, created_at)
			VALUES (?, ?, 'gmail.com', ?, 1, ?, ?, 'gmail-smtp-in.l.google.com', ?)`,
			c.ID, fmt.Sprintf("r%d@gmail.com", i), status, at, at, at).Error; err != nil {
			t.Fatal(err)
		}
	}
	var ids []int64
	if err := s.DB().Raw("SELECT id FROM deliveries WHERE campaign_id = ? ORDER BY id", c.ID).Scan(&ids).Error; err != nil {
		t.Fatal(err)
	}
	return c.ID, ids
}

// recount sets every campaign's counters from its deliveries, as the
// store keeps them, after the fixtures wrote deliveries straight in.
func recount(t *testing.T, s *models.Store) {
	t.Helper()
	for _, st := range []string{"sent", "deferred", "bounced", "failed"} {
		if err := s.DB().Exec(`UPDATE campaigns SET `+st+` = (SELECT COUNT(*) FROM deliveries d WHERE d.campaign_id = campaigns.id AND d.status = ?)`, st).Error; err != nil {
			t.Fatal(err)
		}
	}
}

func pauseAudit(t *testing.T, s *models.Store, id int64) []models.AuditEntry {
	t.Helper()
	var a []models.AuditEntry
	if err := s.DB().Where("action = ? AND object_id = ?", ProtectionAction, fmt.Sprint(id)).Find(&a).Error; err != nil {
		t.Fatal(err)
	}
	return a
}

func campaignState(t *testing.T, s *models.Store, id int64) (string, string) {
	t.Helper()
	c, err := s.Campaign(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return c.Status, c.PauseReason
}

// TestProtectHardBounces: with the default thresholds (2% hard bounces,
// judged from 500 messages), 9 hard bounces in 500 sends leave a campaign
// running and the 10th pauses it, with the reason and an audit entry;
// resuming clears the reason.
func TestProtectHardBounces(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		log := slog.New(slog.DiscardHandler)
		id, ids := runningCampaign(t, s, 500, models.DeliverySent, time.Now().Add(-2*time.Hour))
		hard := func(i int) {
			if _, err := s.RecordBounce(ctx, models.BounceNotice{DeliveryID: ids[i], Kind: models.BounceHard, Category: "user_unknown",
				Status: "5.1.1", Diagnostic: "550 5.1.1 no such user"}); err != nil {
				t.Fatal(err)
			}
		}
		for i := range 9 {
			hard(i)
		}
		recount(t, s)
		if err := Protect(ctx, s, log, time.Now()); err != nil {
			t.Fatal(err)
		}
		if st, _ := campaignState(t, s, id); st != models.CampaignRunning {
			t.Fatalf("after 9 hard bounces in 500 (1.8%%) status = %s, want running", st)
		}
		hard(9)
		recount(t, s)
		if err := Protect(ctx, s, log, time.Now()); err != nil {
			t.Fatal(err)
		}
		st, reason := campaignState(t, s, id)
		if st != models.CampaignPaused {
			t.Fatalf("after 10 hard bounces in 500 (2%%) status = %s, want paused", st)
		}
		for _, want := range []string{"Paused automatically: 10 hard bounces for 500 messages sent by this campaign (2%)",
			"pause threshold of 2%", "at least 500 messages", "clean the list"} {
			if !strings.Contains(reason, want) {
				t.Errorf("reason %q lacks %q", reason, want)
			}
		}
		if a := pauseAudit(t, s, id); len(a) != 1 || a[0].Actor != ProtectionActor || a[0].Summary != reason {
			t.Errorf("audit = %+v, want one entry by %q with the reason", a, ProtectionActor)
		}
		// A second round changes nothing: the campaign is no longer running.
		recount(t, s)
		if err := Protect(ctx, s, log, time.Now()); err != nil {
			t.Fatal(err)
		}
		if a := pauseAudit(t, s, id); len(a) != 1 {
			t.Errorf("%d audit entries after a second round, want 1", len(a))
		}
		if err := s.ResumeCampaign(ctx, id); err != nil {
			t.Fatal(err)
		}
		if st, reason := campaignState(t, s, id); st != models.CampaignRunning || reason != "" {
			t.Errorf("after resume: %s, %q; want running with no reason", st, reason)
		}
	})
}

// TestProtectDeferrals: deferrals count only within the moving window.
// 200 deferred and 300 sent attempts two hours ago are outside the
// default 60-minute window and pause nothing; the same attempts inside it
// (40% deferred, over the 30% threshold) pause the campaign.
func TestProtectDeferrals(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		log := slog.New(slog.DiscardHandler)
		old, _ := runningCampaign(t, s, 200, models.DeliveryDeferred, time.Now().Add(-2*time.Hour))
		if err := s.DB().Exec(`INSERT INTO deliveries (campaign_id, email, domain, status, attempts, next_attempt_at, last_attempt_at, mx_host, created_at)
			SELECT campaign_id, 's' || email, domain, 'sent', 1, next_attempt_at, last_attempt_at, mx_host, created_at FROM deliveries WHERE campaign_id = ? AND id IN
			(SELECT id FROM deliveries WHERE campaign_id = ? ORDER BY id LIMIT 100)`, old, old).Error; err != nil {
			t.Fatal(err)
		}
		recent := time.Now().Add(-10 * time.Minute)
		id, _ := runningCampaign(t, s, 200, models.DeliveryDeferred, recent)
		for i := range 300 {
			if err := s.DB().Exec(`INSERT INTO deliveries (campaign_id, email, domain, status, attempts, next_attempt_at, last_attempt_at, mx_host, created_at)
				VALUES (?, ?, 'gmail.com', 'sent', 1, ?, ?, 'gmail-smtp-in.l.google.com', ?)`, id, fmt.Sprintf("s%d@gmail.com", i), recent, recent, recent).Error; err != nil {
				t.Fatal(err)
			}
		}
		recount(t, s)
		if err := Protect(ctx, s, log, time.Now()); err != nil {
			t.Fatal(err)
		}
		if st, _ := campaignState(t, s, old); st != models.CampaignRunning {
			t.Errorf("campaign deferred two hours ago: %s, want running (outside the window)", st)
		}
		st, reason := campaignState(t, s, id)
		if st != models.CampaignPaused {
			t.Fatalf("campaign with 200 of 500 attempts deferred in the window: %s, want paused", st)
		}
		if want := "200 of the 500 messages sent by this campaign attempted in the last 60 minutes were deferred (40%)"; !strings.Contains(reason, want) {
			t.Errorf("reason %q lacks %q", reason, want)
		}
	})
}

// TestProtectComplaintsPerProvider: complaints are judged per provider
// too, so 2 complaints in 500 Gmail sends (0.4%) pause a campaign whose
// overall rate (2 in 1000, 0.2%) is under the threshold; while one
// complaint in 10 sends (10%, under the 500-message sample) pauses
// nothing; and turning protection off pauses nothing.
func TestProtectComplaintsPerProvider(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		log := slog.New(slog.DiscardHandler)
		small, sids := runningCampaign(t, s, 10, models.DeliverySent, time.Now())
		if _, err := s.RecordComplaint(ctx, models.BounceNotice{DeliveryID: sids[0], Category: "abuse"}); err != nil {
			t.Fatal(err)
		}
		id, ids := runningCampaign(t, s, 500, models.DeliverySent, time.Now())
		for i := range 500 {
			if err := s.DB().Exec(`INSERT INTO deliveries (campaign_id, email, domain, status, attempts, next_attempt_at, mx_host, created_at)
				VALUES (?, ?, 'example.org', 'sent', 1, ?, 'mx.example.org', ?)`, id, fmt.Sprintf("o%d@example.org", i), time.Now(), time.Now()).Error; err != nil {
				t.Fatal(err)
			}
		}
		for _, d := range ids[:2] {
			if _, err := s.RecordComplaint(ctx, models.BounceNotice{DeliveryID: d, Category: "abuse"}); err != nil {
				t.Fatal(err)
			}
		}
		off := models.DefaultProtection
		off.Enabled = false
		if err := s.SaveProtection(ctx, off); err != nil {
			t.Fatal(err)
		}
		recount(t, s)
		if err := Protect(ctx, s, log, time.Now()); err != nil {
			t.Fatal(err)
		}
		if st, _ := campaignState(t, s, id); st != models.CampaignRunning {
			t.Fatalf("with protection off: %s, want running", st)
		}
		if err := s.SaveProtection(ctx, models.DefaultProtection); err != nil {
			t.Fatal(err)
		}
		recount(t, s)
		if err := Protect(ctx, s, log, time.Now()); err != nil {
			t.Fatal(err)
		}
		if st, _ := campaignState(t, s, small); st != models.CampaignRunning {
			t.Errorf("1 complaint in 10 sends: %s, want running (below the minimum sample)", st)
		}
		st, reason := campaignState(t, s, id)
		if st != models.CampaignPaused {
			t.Fatalf("2 complaints in 500 Gmail sends: %s, want paused", st)
		}
		if want := "2 spam complaints for 500 messages sent by this campaign to Gmail (google) (0.4%) reached the pause threshold of 0.3%"; !strings.Contains(reason, want) {
			t.Errorf("reason %q lacks %q", reason, want)
		}
	})
}

// TestProtectSources: a sending IP is judged over every campaign that
// sent from it in the last day. Two running campaigns of 300 messages
// each from 192.0.2.7, one with 2 complaints, are each under the
// 500-message sample, but the IP's 2 in 600 (0.33%) crosses 0.3%: both
// pause, with the IP in the reason; a campaign from another IP runs on.
func TestProtectSources(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		log := slog.New(slog.DiscardHandler)
		at := time.Now().Add(-3 * time.Hour)
		// Each campaign has a From domain of its own here, so that only
		// the IPs' sums reach the sample (TestProtectSendingDomains).
		fromIP := func(ip, domain string) (int64, []int64) {
			id, ids := runningCampaign(t, s, 300, models.DeliverySent, at)
			if err := s.DB().Exec("UPDATE deliveries SET source_ip = ?, sent_at = ? WHERE campaign_id = ?", ip, at, id).Error; err != nil {
				t.Fatal(err)
			}
			if err := s.DB().Exec("UPDATE campaigns SET from_email = ? WHERE id = ?", "news@"+domain, id).Error; err != nil {
				t.Fatal(err)
			}
			return id, ids
		}
		a, aIDs := fromIP("192.0.2.7", "a.example")
		b, _ := fromIP("192.0.2.7", "b.example")
		other, oIDs := fromIP("192.0.2.8", "c.example")
		for _, d := range []int64{aIDs[0], aIDs[1], oIDs[0]} {
			if _, err := s.RecordComplaint(ctx, models.BounceNotice{DeliveryID: d, Category: "abuse"}); err != nil {
				t.Fatal(err)
			}
		}
		recount(t, s)
		if err := Protect(ctx, s, log, time.Now()); err != nil {
			t.Fatal(err)
		}
		if st, _ := campaignState(t, s, a); st != models.CampaignRunning {
			t.Fatalf("campaign check alone: %s, want running (300 sends are under the sample)", st)
		}
		recount(t, s)
		if err := ProtectSources(ctx, s, log, time.Now()); err != nil {
			t.Fatal(err)
		}
		for _, id := range []int64{a, b} {
			st, reason := campaignState(t, s, id)
			if st != models.CampaignPaused {
				t.Errorf("campaign %d from 192.0.2.7: %s, want paused", id, st)
			}
			if want := "2 spam complaints for 600 messages sent from the sending IP 192.0.2.7 by all campaigns in the last 24 hours (0.33%)"; !strings.Contains(reason, want) {
				t.Errorf("reason %q lacks %q", reason, want)
			}
		}
		if st, _ := campaignState(t, s, other); st != models.CampaignRunning {
			t.Errorf("campaign from 192.0.2.8 (1 in 300): %s, want running", st)
		}
		// A day later the IP's messages are out of the window.
		if err := s.ResumeCampaign(ctx, a); err != nil {
			t.Fatal(err)
		}
		recount(t, s)
		if err := ProtectSources(ctx, s, log, time.Now().Add(24*time.Hour)); err != nil {
			t.Fatal(err)
		}
		if st, _ := campaignState(t, s, a); st != models.CampaignRunning {
			t.Errorf("a day later: %s, want running", st)
		}
	})
}

// TestProtectSendingDomains: a sending domain is judged over every
// campaign sent from it in the last day, also for mail handed to a relay
// (no source IP): two campaigns from one domain, each under the sample
// alone, pause together; a campaign from another domain goes on.
func TestProtectSendingDomains(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		log := slog.New(slog.DiscardHandler)
		at := time.Now().Add(-3 * time.Hour)
		from := func(domain string) (int64, []int64) {
			id, ids := runningCampaign(t, s, 300, models.DeliverySent, at)
			if err := s.DB().Exec("UPDATE deliveries SET source_ip = '', sent_at = ? WHERE campaign_id = ?", at, id).Error; err != nil {
				t.Fatal(err)
			}
			if err := s.DB().Exec("UPDATE campaigns SET from_email = ? WHERE id = ?", "News@"+domain, id).Error; err != nil {
				t.Fatal(err)
			}
			return id, ids
		}
		a, aIDs := from("Shop.example")
		b, _ := from("shop.example")
		other, oIDs := from("blog.example")
		for _, d := range []int64{aIDs[0], aIDs[1], oIDs[0]} {
			if _, err := s.RecordComplaint(ctx, models.BounceNotice{DeliveryID: d, Category: "abuse"}); err != nil {
				t.Fatal(err)
			}
		}
		recount(t, s)
		if err := ProtectSources(ctx, s, log, time.Now()); err != nil {
			t.Fatal(err)
		}
		for _, id := range []int64{a, b} {
			st, reason := campaignState(t, s, id)
			if st != models.CampaignPaused {
				t.Errorf("campaign %d from shop.example: %s, want paused", id, st)
			}
			if want := "2 spam complaints for 600 messages sent from the sending domain shop.example by all campaigns in the last 24 hours (0.33%)"; !strings.Contains(reason, want) {
				t.Errorf("reason %q lacks %q", reason, want)
			}
		}
		if st, _ := campaignState(t, s, other); st != models.CampaignRunning {
			t.Errorf("campaign from blog.example (1 in 300): %s, want running", st)
		}
	})
}

// TestProtectDeferralsThroughOutcomes takes the pipeline's own path: a
// campaign to 100 readers is materialised and claimed, and the mailer's
// outcomes are recorded, 60 accepted and 40 answered 421 (deferred). With
// a minimum sample of 50, 40% deferred in the window pauses it.
func TestProtectDeferralsThroughOutcomes(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		p := models.DefaultProtection
		p.MinSent = 50
		if err := s.SaveProtection(ctx, p); err != nil {
			t.Fatal(err)
		}
		list := testdb.Readers(t, s, "Readers", 100, func(k int) testdb.Reader {
			return testdb.Reader{Email: fmt.Sprintf("d%d@yahoo.com", k), Attributes: "{}"}
		})
		c := &models.Campaign{Name: "Deferred", FromEmail: "news@example.com"}
		if err := s.CreateCampaign(ctx, c, []int64{list}); err != nil {
			t.Fatal(err)
		}
		if err := s.StartCampaign(ctx, c.ID); err != nil {
			t.Fatal(err)
		}
		for done := false; !done; {
			var err error
			if done, err = s.MaterializeCampaign(ctx, c.ID, 500); err != nil {
				t.Fatal(err)
			}
		}
		cl, err := s.ClaimDeliveries(ctx, models.ClaimRequest{Node: "t", Lease: time.Minute, Limit: 200, CampaignIDs: []int64{c.ID}})
		if err != nil || len(cl) != 100 {
			t.Fatalf("ClaimDeliveries() = %d rows, %v; want 100", len(cl), err)
		}
		now := time.Now()
		outs := make([]models.Outcome, len(cl))
		for i, d := range cl {
			outs[i] = models.Outcome{ID: d.ID, LeaseGen: d.LeaseGen, CampaignID: c.ID, Status: models.DeliverySent, Attempted: true,
				Code: 250, MessageID: fmt.Sprintf("<d%d@example.com>", d.ID), MXHost: "mta5.am0.yahoodns.net", At: now}
			if i < 40 {
				outs[i].Status, outs[i].Code, outs[i].Text, outs[i].MessageID = models.DeliveryDeferred, 421,
					"4.7.0 [TSS04] Messages temporarily deferred due to unexpected volume", ""
				outs[i].NextAttempt = now.Add(10 * time.Minute)
			}
		}
		if _, err := s.RecordOutcomes(ctx, outs); err != nil {
			t.Fatal(err)
		}
		if err := Protect(ctx, s, slog.New(slog.DiscardHandler), time.Now()); err != nil {
			t.Fatal(err)
		}
		st, reason := campaignState(t, s, c.ID)
		if st != models.CampaignPaused {
			t.Fatalf("40 of 100 attempts deferred: %s, want paused", st)
		}
		if want := "40 of the 100 messages sent by this campaign attempted in the last 60 minutes were deferred (40%)"; !strings.Contains(reason, want) {
			t.Errorf("reason %q lacks %q", reason, want)
		}
	})
}
