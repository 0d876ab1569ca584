package models_test

import (
	"context"
	"testing"
	"time"

	"github.com/herald-mail/herald/internal/testdb"
	"github.com/herald-mail/herald/models"
)

// expireLeases makes every lease of a campaign look expired, as a stopped
// clock or a long database outage would.
func expireLeases(t *testing.T, s *models.Store, cid int64) {
	t.Helper()
	if err := s.DB().Exec("UPDATE deliveries SET lease_until = ? WHERE campaign_id = ? AND status = 'sending'",
		time.Now().Add(-time.Minute).UTC(), cid).Error; err != nil {
		t.Fatal(err)
	}
}

func reclaim(t *testing.T, s *models.Store, node string, cid int64, r models.Reclaim) []models.Claimed {
	t.Helper()
	got, err := s.ClaimDeliveries(context.Background(), models.ClaimRequest{Node: node, Lease: time.Minute, Limit: 100,
		CampaignIDs: []int64{cid}, Reclaim: r})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// A row another node took over after its lease expired: the first
// node's late outcome (older generation) changes nothing, the new
// holder's is recorded, and the counters count the row once.
func TestStaleOutcomeAfterReclaim(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		cid, got := claimedCampaign(t, s, 1, "a")
		expireLeases(t, s, cid)
		again := reclaim(t, s, "b", cid, models.ReclaimExpired)
		if len(again) != 1 || again[0].LeaseGen != got[0].LeaseGen+1 {
			t.Fatalf("node b reclaimed %+v; want the row at generation %d", again, got[0].LeaseGen+1)
		}
		at := time.Now()
		sent := models.Outcome{ID: again[0].ID, LeaseGen: again[0].LeaseGen, CampaignID: cid, Status: models.DeliverySent, Attempted: true, Code: 250, At: at}
		if n, err := s.RecordOutcomes(ctx, []models.Outcome{sent}); err != nil || n != 1 {
			t.Fatalf("RecordOutcomes(new holder) = %d, %v; want 1", n, err)
		}
		stale := models.Outcome{ID: got[0].ID, LeaseGen: got[0].LeaseGen, CampaignID: cid, Status: models.DeliveryDeferred, Attempted: true,
			Code: 451, Text: "late", At: at, NextAttempt: at.Add(time.Hour)}
		if n, err := s.RecordOutcomes(ctx, []models.Outcome{stale}); err != nil || n != 0 {
			t.Fatalf("RecordOutcomes(stale generation) = %d, %v; want 0", n, err)
		}
		d, err := s.Delivery(ctx, got[0].ID)
		if err != nil || d.Status != models.DeliverySent || d.Attempts != 1 || d.LastCode != 250 {
			t.Fatalf("row after the stale outcome = %+v, %v; want sent once with 250", d, err)
		}
		p, err := s.CampaignProgress(ctx, cid)
		if err != nil || p.Sent != 1 || p.Deferred != 0 || p.Sending != 0 {
			t.Fatalf("counters = %+v, %v; want 1 sent", p, err)
		}
	})
}

// An expired lease that no node took over still records its outcome, and
// renewing it works too: the generation, not the clock, fences.
func TestOutcomeOfExpiredLease(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		cid, got := claimedCampaign(t, s, 2, "a")
		expireLeases(t, s, cid)
		if err := s.RenewLeases(ctx, []models.Lease{{ID: got[1].ID, Gen: got[1].LeaseGen}}, time.Minute); err != nil {
			t.Fatal(err)
		}
		if d, _ := s.Delivery(ctx, got[1].ID); d.LeaseUntil == nil || !d.LeaseUntil.After(time.Now()) {
			t.Fatalf("renewed lease until %v; want in the future", d.LeaseUntil)
		}
		o := models.Outcome{ID: got[0].ID, LeaseGen: got[0].LeaseGen, CampaignID: cid, Status: models.DeliverySent, Attempted: true, Code: 250, At: time.Now()}
		if n, err := s.RecordOutcomes(ctx, []models.Outcome{o}); err != nil || n != 1 {
			t.Fatalf("RecordOutcomes(expired lease) = %d, %v; want 1", n, err)
		}
		// A renewal with an old generation does not extend a lease.
		expireLeases(t, s, cid)
		if err := s.RenewLeases(ctx, []models.Lease{{ID: got[1].ID, Gen: got[1].LeaseGen - 1}}, time.Minute); err != nil {
			t.Fatal(err)
		}
		if d, _ := s.Delivery(ctx, got[1].ID); d.LeaseUntil == nil || d.LeaseUntil.After(time.Now()) {
			t.Fatalf("lease after a stale renewal until %v; want still expired", d.LeaseUntil)
		}
	})
}

// ReclaimDisowned takes only rows a restart gave up; ReclaimExpired every
// expired lease. Rows a restart disowned are anyone's at once, the
// restarted node's own claims included, at the next generation.
func TestReclaimScopes(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		cid, got := claimedCampaign(t, s, 3, "a")
		expireLeases(t, s, cid)
		if again := reclaim(t, s, "b", cid, models.ReclaimDisowned); len(again) != 0 {
			t.Fatalf("node b took %d rows of a live lease holder with ReclaimDisowned; want none", len(again))
		}
		if n, err := s.ExpireNodeLeases(ctx, "a"); err != nil || n != int64(len(got)) {
			t.Fatalf("ExpireNodeLeases(a) = %d, %v; want %d", n, err, len(got))
		}
		again := reclaim(t, s, "a", cid, models.ReclaimDisowned)
		if len(again) != len(got) {
			t.Fatalf("restarted node a reclaimed %d rows; want %d", len(again), len(got))
		}
		for _, c := range again {
			if c.LeaseGen != got[0].LeaseGen+1 {
				t.Errorf("reclaimed row %d at generation %d; want %d", c.ID, c.LeaseGen, got[0].LeaseGen+1)
			}
		}
		p, err := s.CampaignProgress(ctx, cid)
		if err != nil || p.Sending != int64(len(got)) || p.Queued != 0 {
			t.Fatalf("counters after reclaiming = %+v, %v; want %d sending", p, err, len(got))
		}
	})
}

// ReclaimExpired takes an expired lease whoever held it.
func TestReclaimExpired(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		cid, got := claimedCampaign(t, s, 2, "a")
		if again := reclaim(t, s, "b", cid, models.ReclaimExpired); len(again) != 0 {
			t.Fatalf("node b took %d rows whose lease runs; want none", len(again))
		}
		expireLeases(t, s, cid)
		if again := reclaim(t, s, "b", cid, models.ReclaimExpired); len(again) != len(got) {
			t.Fatalf("node b reclaimed %d expired rows; want %d", len(again), len(got))
		}
	})
}

// A dead node's expired leases are taken even for a domain the claimer
// excludes (its destination queue is full): the takeover must not wait
// for room. The rows say they were reclaimed; queued rows of that domain
// stay queued.
func TestReclaimIgnoresExcludedDomains(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		emails := []string{"u0@c.test", "u1@c.test", "u2@c.test", "u3@c.test"}
		cid := materializedCampaign(t, s, emails, nil)
		dead, err := s.ClaimDeliveries(ctx, models.ClaimRequest{Node: "a", Lease: time.Minute, Limit: 2, CampaignIDs: []int64{cid}})
		if err != nil || len(dead) != 2 {
			t.Fatalf("node a claimed %d, %v; want 2", len(dead), err)
		}
		expireLeases(t, s, cid)
		got, err := s.ClaimDeliveries(ctx, models.ClaimRequest{Node: "b", Lease: time.Minute, Limit: 10,
			CampaignIDs: []int64{cid}, Reclaim: models.ReclaimExpired, ExcludeDomains: []string{"c.test"}})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 {
			t.Fatalf("node b took %d rows; want the 2 expired ones only (the 2 queued are for an excluded domain)", len(got))
		}
		for _, c := range got {
			if !c.Reclaimed {
				t.Errorf("delivery %d taken from an expired lease is not marked Reclaimed", c.ID)
			}
		}
		fresh, err := s.ClaimDeliveries(ctx, models.ClaimRequest{Node: "b", Lease: time.Minute, Limit: 10, CampaignIDs: []int64{cid}})
		if err != nil || len(fresh) != 2 || fresh[0].Reclaimed || fresh[1].Reclaimed {
			t.Fatalf("queued claim = %+v, %v; want 2 rows not marked Reclaimed", fresh, err)
		}
	})
}
