package models_test

import (
	"context"
	"testing"

	"github.com/herald-mail/herald/internal/testdb"
	"github.com/herald-mail/herald/models"
)

func softBounce(t *testing.T, s *models.Store, id int64) *models.BounceResult {
	t.Helper()
	r, err := s.RecordBounce(context.Background(), models.BounceNotice{DeliveryID: id, Kind: models.BounceSoft, Status: "4.2.2", Category: "mailbox_full"})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestHygieneRuleIsConfigurable(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		if r, _ := s.HygieneRule(ctx); r != models.DefaultHygieneRule || r.Limit != 3 || r.Days != 30 {
			t.Fatalf("HygieneRule() = %+v, want the default 3 in 30 days", r)
		}
		if err := s.SetHygieneRule(ctx, models.HygieneRule{Limit: 0, Days: 30}); err == nil {
			t.Error("SetHygieneRule(limit 0) = nil, want an error")
		}
		if err := s.SetHygieneRule(ctx, models.HygieneRule{Limit: 2, Days: 10}); err != nil {
			t.Fatal(err)
		}
		_, d := sentCampaigns(t, s, "two@example.net", 2)
		if r := softBounce(t, s, d[0]); r.Suppressed {
			t.Fatal("suppressed after one soft bounce with a limit of 2")
		}
		if r := softBounce(t, s, d[1]); !r.Suppressed || !isSuppressed(t, s, "two@example.net") {
			t.Fatalf("not suppressed after two soft bounces with a limit of 2: %+v", r)
		}
	})
}

func TestAllowListedAddressesAreNeverSoftSuppressed(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		if _, err := s.AddAllowEntry(ctx, "not an address", ""); err == nil {
			t.Error("AddAllowEntry(garbage) = nil error")
		}
		e, err := s.AddAllowEntry(ctx, "Example.NET", "our own domain")
		if err != nil || e.Value != "@example.net" || e.Kind != "domain" {
			t.Fatalf("AddAllowEntry(Example.NET) = %+v, %v; want domain @example.net", e, err)
		}
		_, d := sentCampaigns(t, s, "tester@example.net", 4)
		for _, id := range d {
			if r := softBounce(t, s, id); r.Suppressed {
				t.Fatal("an allow-listed address was suppressed for soft bounces")
			}
		}
		if isSuppressed(t, s, "tester@example.net") {
			t.Fatal("allow-listed address on the suppression list")
		}
		if p, _ := s.HygienePreview(ctx, models.DefaultHygieneRule); len(p) != 0 {
			t.Errorf("HygienePreview() = %+v, want nobody (allow-listed)", p)
		}
		// Without the allow entry the same history would suppress.
		if _, err := s.RemoveAllowEntry(ctx, e.ID); err != nil {
			t.Fatal(err)
		}
		if p, _ := s.HygienePreview(ctx, models.DefaultHygieneRule); len(p) != 1 || p[0].Bounces != 4 {
			t.Errorf("HygienePreview() after removing the allow entry = %+v, want tester with 4 bounces", p)
		}
		// A hard bounce is not a soft-bounce rule: allow-listing does not stop it.
		if _, err := s.AddAllowEntry(ctx, "@example.net", ""); err != nil {
			t.Fatal(err)
		}
		if _, err := s.RecordBounce(ctx, models.BounceNotice{DeliveryID: d[0], Kind: models.BounceHard, Status: "5.1.1"}); err != nil {
			t.Fatal(err)
		}
		if !isSuppressed(t, s, "tester@example.net") {
			t.Error("hard bounce of an allow-listed address did not suppress it")
		}
	})
}

func TestHygieneRuleAppliesRetroactively(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		_, d := sentCampaigns(t, s, "flaky@example.net", 2)
		softBounce(t, s, d[0])
		softBounce(t, s, d[1])
		if isSuppressed(t, s, "flaky@example.net") {
			t.Fatal("suppressed after two soft bounces under the default rule")
		}
		strict := models.HygieneRule{Limit: 2, Days: 30}
		p, err := s.HygienePreview(ctx, strict)
		if err != nil || len(p) != 1 || p[0].Email != "flaky@example.net" {
			t.Fatalf("HygienePreview(2 in 30) = %+v, %v; want flaky", p, err)
		}
		if isSuppressed(t, s, "flaky@example.net") {
			t.Fatal("the preview changed something")
		}
		n, err := s.ApplyHygieneRule(ctx, strict)
		if err != nil || n != 1 || !isSuppressed(t, s, "flaky@example.net") {
			t.Fatalf("ApplyHygieneRule() = %d, %v; want 1 suppressed", n, err)
		}
		if p, _ := s.HygienePreview(ctx, strict); len(p) != 0 {
			t.Errorf("preview after applying = %+v, want nobody", p)
		}
	})
}

func TestAGoodDeliveryResetsTheRetroactiveCount(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		_, d := sentCampaigns(t, s, "recovered@example.net", 3)
		softBounce(t, s, d[0])
		softBounce(t, s, d[2]) // d[1] went through in between
		if p, _ := s.HygienePreview(ctx, models.HygieneRule{Limit: 2, Days: 30}); len(p) != 0 {
			t.Errorf("HygienePreview() = %+v, want nobody: a delivery succeeded between the bounces", p)
		}
	})
}
