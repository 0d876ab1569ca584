package models_test

import (
	"context"
	"testing"
	"time"

	"github.com/herald-mail/herald/internal/testdb"
	"github.com/herald-mail/herald/models"
)

// A refusal during delivery is a bounce like one reported later: recorded
// with its outcome, it writes the bounces row, counts it, and suppresses a
// hard-bounced address at once; a soft one waits for the hygiene rule.
// Outcomes another node's lease no longer allows, and a repeat of the same
// outcome, apply nothing.
func TestRecordOutcomesAppliesBounces(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		cid, got := claimedCampaign(t, s, 5, "a")
		at := time.Now().UTC()
		bounced := func(i int, kind, cat string, code int, enh, text string) models.Outcome {
			return models.Outcome{ID: got[i].ID, LeaseGen: got[i].LeaseGen, CampaignID: cid, Status: models.DeliveryBounced, Attempted: true, At: at,
				Code: code, Enhanced: enh, Text: text, MXHost: "mx.c.test", BounceKind: kind, BounceCategory: cat}
		}
		outs := []models.Outcome{
			{ID: got[0].ID, LeaseGen: got[0].LeaseGen, CampaignID: cid, Status: models.DeliverySent, Attempted: true, Code: 250, At: at},
			bounced(1, models.BounceHard, "user_unknown", 550, "5.1.1", "no such user"),
			bounced(2, models.BounceSoft, "policy_block", 554, "5.7.1", "message refused as spam"),
			bounced(3, models.BounceHard, "user_unknown", 550, "5.1.1", "no such user"),
		}
		// An outcome of an earlier claim of the row changes nothing.
		stale := bounced(4, models.BounceHard, "user_unknown", 550, "5.1.1", "x")
		stale.LeaseGen--
		if n, err := s.RecordOutcomes(ctx, []models.Outcome{stale}); err != nil || n != 0 {
			t.Fatalf("RecordOutcomes(older generation) = %d, %v; want 0, nil", n, err)
		}
		if n, err := s.RecordOutcomes(ctx, outs); err != nil || n != 4 {
			t.Fatalf("RecordOutcomes() = %d, %v; want 4, nil", n, err)
		}
		if n, err := s.RecordOutcomes(ctx, outs[1:2]); err != nil || n != 0 {
			t.Fatalf("RecordOutcomes(again) = %d, %v; want 0, nil", n, err)
		}
		var rows []struct {
			DeliveryID int64
			Kind       string
			Category   string
			Status     string
			Diagnostic string
			RemoteMTA  string `gorm:"column:remote_mta"`
		}
		if err := s.DB().Raw("SELECT delivery_id, kind, category, status, diagnostic, remote_mta FROM bounces ORDER BY delivery_id").
			Scan(&rows).Error; err != nil {
			t.Fatal(err)
		}
		if len(rows) != 3 {
			t.Fatalf("bounces rows = %+v, want 3", rows)
		}
		want := map[int64]string{got[1].ID: "hard user_unknown", got[2].ID: "soft policy_block", got[3].ID: "hard user_unknown"}
		for _, r := range rows {
			if w := want[r.DeliveryID]; r.Kind+" "+r.Category != w || r.RemoteMTA != "mx.c.test" {
				t.Errorf("bounce %+v, want %q from mx.c.test", r, w)
			}
			if r.DeliveryID == got[1].ID && (r.Status != "5.1.1" || r.Diagnostic != "550 no such user") {
				t.Errorf("bounce status, diagnostic = %q, %q; want 5.1.1, \"550 no such user\"", r.Status, r.Diagnostic)
			}
		}
		for i, want := range []bool{false, true, false, true, false} {
			if sup := isSuppressed(t, s, got[i].Email); sup != want {
				t.Errorf("%s suppressed = %v, want %v", got[i].Email, sup, want)
			}
		}
		st, err := s.CampaignBounceStats(ctx, cid)
		if err != nil {
			t.Fatal(err)
		}
		if st.Hard != 2 || st.Soft != 1 {
			t.Errorf("bounce stats = %+v, want 2 hard, 1 soft", st)
		}
		pr, err := s.CampaignProgress(ctx, cid)
		if err != nil {
			t.Fatal(err)
		}
		if pr.Sent != 1 || pr.Bounced != 3 || pr.Sending != 1 {
			t.Errorf("counters = %+v, want 1 sent, 3 bounced, 1 sending", pr.Counters)
		}
		// The DSN that may follow the refusal changes nothing more.
		r, err := s.RecordBounce(ctx, models.BounceNotice{DeliveryID: got[1].ID, Kind: models.BounceHard, Status: "5.1.1"})
		if err != nil || !r.Duplicate {
			t.Errorf("RecordBounce(after the refusal) = %+v, %v; want a duplicate", r, err)
		}
		if st, _ := s.CampaignBounceStats(ctx, cid); st.Hard != 2 {
			t.Errorf("hard bounces after the DSN = %d, want 2", st.Hard)
		}
	})
}

// A refusal classified soft suppresses by the same rule as soft bounces
// reported later: the third within the window.
func TestSyncSoftBouncesFollowHygieneRule(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		_, d := sentCampaigns(t, s, "soft@example.net", 2)
		for _, id := range d {
			if _, err := s.RecordBounce(ctx, models.BounceNotice{DeliveryID: id, Kind: models.BounceSoft, Status: "4.2.2", Category: "mailbox_full"}); err != nil {
				t.Fatal(err)
			}
		}
		if isSuppressed(t, s, "soft@example.net") {
			t.Fatal("suppressed after two soft bounces")
		}
		// A third campaign whose delivery is refused with a soft 5xx.
		cid := materializedCampaignFor(t, s)
		cl, err := s.ClaimDeliveries(ctx, models.ClaimRequest{Node: "t", Lease: time.Minute, Limit: 10, CampaignIDs: []int64{cid}})
		if err != nil || len(cl) != 1 {
			t.Fatalf("ClaimDeliveries() = %d rows, %v; want 1", len(cl), err)
		}
		if _, err := s.RecordOutcomes(ctx, []models.Outcome{{ID: cl[0].ID, LeaseGen: cl[0].LeaseGen, CampaignID: cid, Status: models.DeliveryBounced,
			Attempted: true, Code: 552, Enhanced: "5.2.2", Text: "mailbox full", At: time.Now(),
			BounceKind: models.BounceSoft, BounceCategory: "mailbox_full"}}); err != nil {
			t.Fatal(err)
		}
		if !isSuppressed(t, s, "soft@example.net") {
			t.Error("not suppressed after the third soft bounce, the last one a refusal during delivery")
		}
	})
}

// materializedCampaignFor starts one more campaign to every list and
// materialises it.
func materializedCampaignFor(t *testing.T, s *models.Store) int64 {
	t.Helper()
	ctx := context.Background()
	var lists []int64
	if err := s.DB().Raw("SELECT id FROM lists").Scan(&lists).Error; err != nil {
		t.Fatal(err)
	}
	c := &models.Campaign{Name: "third", FromEmail: "news@example.com"}
	if err := s.CreateCampaign(ctx, c, lists); err != nil {
		t.Fatal(err)
	}
	if err := s.StartCampaign(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	for done := false; !done; {
		var err error
		if done, err = s.MaterializeCampaign(ctx, c.ID, 100); err != nil {
			t.Fatal(err)
		}
	}
	return c.ID
}
