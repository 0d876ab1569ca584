package models_test

import (
	"context"
	"testing"
	"time"

	"github.com/herald-mail/herald/internal/testdb"
	"github.com/herald-mail/herald/models"
)

func TestBlocklistMeaning(t *testing.T) {
	zen := models.Blocklist{Name: "Spamhaus ZEN", Codes: "127.0.0.2 SBL listing\n127.0.0.1 !refused here"}
	cases := []struct {
		answer, want string
		refusal      bool
	}{
		{"127.0.0.2", "SBL listing", false},
		{"127.0.0.1", "refused here", true},
		{"127.0.0.9", "listed (code 127.0.0.9)", false},
		{"127.255.255.254", "queries through a public or open resolver are refused", true},
		{"127.255.255.255", "the query limit of this resolver is exceeded", true},
		{"127.255.255.252", "the query was malformed (a typo in the zone)", true},
		{"192.0.2.1", "the answer 192.0.2.1 is not a blocklist code: the resolver may rewrite answers", true},
	}
	for _, c := range cases {
		got, refusal := zen.Meaning(c.answer)
		if got != c.want || refusal != c.refusal {
			t.Errorf("Meaning(%q) = %q, %t, want %q, %t", c.answer, got, refusal, c.want, c.refusal)
		}
	}
}

func TestBlocklistValidate(t *testing.T) {
	b := models.Blocklist{Name: " X ", Zone: "Zen.Spamhaus.org.", Kind: "ip", Codes: "127.0.0.2   spam\r\n\n", DelistURL: "https://example.org/"}
	if errs := b.Validate(); len(errs) != 0 || b.Zone != "zen.spamhaus.org" || b.Codes != "127.0.0.2 spam" || b.Name != "X" {
		t.Errorf("Validate() = %v, list %+v", errs, b)
	}
	bad := models.Blocklist{Name: "", Zone: "nodot", Kind: "both", Codes: "127.0.0.2", DelistURL: "javascript:alert(1)"}
	errs := bad.Validate()
	for _, f := range []string{"name", "zone", "kind", "codes", "delist_url"} {
		if errs[f] == "" {
			t.Errorf("Validate() of a bad list has no message for %s: %v", f, errs)
		}
	}
}

// A result repeated moves the period on, a change begins a new one; only
// the change to listed is a new listing. The pool pause shows in the
// campaign statuses the engine reads.
func TestBlocklistResultsAndPoolPause(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		lists, err := s.Blocklists(ctx)
		if err != nil || len(lists) < 7 {
			t.Fatalf("default lists = %d, %v", len(lists), err)
		}
		t0 := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
		rec := func(status, answer string, at time.Time) bool {
			t.Helper()
			isNew, err := s.RecordBlocklistResult(ctx, models.BlocklistResult{Target: "192.0.2.1", TargetKind: "ip", Source: "pool a",
				Zone: "zen.spamhaus.org", Status: status, Answer: answer, LastSeen: at})
			if err != nil {
				t.Fatal(err)
			}
			return isNew
		}
		steps := []struct {
			status, answer string
			isNew          bool
		}{
			{models.ListingClean, "", false},
			{models.ListingListed, "127.0.0.2", true},
			{models.ListingListed, "127.0.0.2", false},
			{models.ListingUnavailable, "127.255.255.254", false},
			{models.ListingListed, "127.0.0.2", true},
		}
		for i, st := range steps {
			if got := rec(st.status, st.answer, t0.Add(time.Duration(i)*time.Hour)); got != st.isNew {
				t.Errorf("step %d (%s): new listing = %t, want %t", i, st.status, got, st.isNew)
			}
		}
		cur, err := s.CurrentBlocklistResults(ctx)
		if err != nil || len(cur) != 1 {
			t.Fatalf("current = %+v, %v", cur, err)
		}
		if cur[0].Status != models.ListingListed || !cur[0].FirstSeen.Equal(t0.Add(4*time.Hour)) {
			t.Errorf("current = %s since %v, want listed since %v", cur[0].Status, cur[0].FirstSeen, t0.Add(4*time.Hour))
		}
		hist, err := s.BlocklistHistory(ctx, 10)
		if err != nil || len(hist) != 4 {
			t.Fatalf("history = %d rows, %v; want 4 periods", len(hist), err)
		}
		if !hist[2].LastSeen.Equal(t0.Add(2 * time.Hour)) {
			t.Errorf("the repeated listing's period ends %v, want %v", hist[2].LastSeen, t0.Add(2*time.Hour))
		}

		pool := &models.IPPool{Name: "a"}
		if err := s.CreateIPPool(ctx, pool); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateCampaign(ctx, &models.Campaign{Name: "c", FromEmail: "a@example.com", Subject: "s", IPPoolID: &pool.ID}, nil); err != nil {
			t.Fatal(err)
		}
		cps, err := s.Campaigns(ctx, 0, 10)
		if err != nil || len(cps) != 1 {
			t.Fatalf("campaigns %v %v", cps, err)
		}
		poolPaused := func() string {
			t.Helper()
			sts, err := s.CampaignStatuses(ctx, []int64{cps[0].ID})
			if err != nil || len(sts) != 1 {
				t.Fatalf("statuses %v %v", sts, err)
			}
			return sts[0].PoolPaused
		}
		if changed, err := s.SetPoolPause(ctx, pool.ID, "listed on ZEN"); err != nil || !changed {
			t.Fatalf("pause = %t, %v", changed, err)
		}
		if changed, _ := s.SetPoolPause(ctx, pool.ID, "listed on ZEN"); changed {
			t.Errorf("pausing a paused pool again reports a change")
		}
		if got := poolPaused(); got != "listed on ZEN" {
			t.Errorf("PoolPaused = %q", got)
		}
		if changed, err := s.SetPoolPause(ctx, pool.ID, ""); err != nil || !changed {
			t.Fatalf("free = %t, %v", changed, err)
		}
		if got := poolPaused(); got != "" {
			t.Errorf("PoolPaused after freeing = %q", got)
		}
	})
}
