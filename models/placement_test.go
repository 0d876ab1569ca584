package models_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/herald-mail/herald/internal/testdb"
	"github.com/herald-mail/herald/models"
)

// Seeds are stored sealed and read back with the secret; a test keeps
// one result per seed through recording and finishing, and its results
// outlive a deleted seed.
func TestPlacementStore(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		f := models.SeedForm{Address: " Seed@Gmail.Example ", Provider: "Gmail", IMAPURL: "imaps://u:s3cret@imap.example:993"}
		if errs := f.Validate(); len(errs) > 0 {
			t.Fatalf("Validate() = %v", errs)
		}
		a, err := s.CreateSeedMailbox(ctx, "secret-1", f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.CreateSeedMailbox(ctx, "secret-1", f); !errors.Is(err, models.ErrSeedExists) {
			t.Errorf("second seed with the address: %v, want ErrSeedExists", err)
		}
		b, err := s.CreateSeedMailbox(ctx, "secret-1", models.SeedForm{Address: "seed@outlook.example", Provider: "Outlook", IMAPURL: "imap://v:pw@imap.outlook.example"})
		if err != nil {
			t.Fatal(err)
		}
		var stored string
		if err := s.DB().Raw("SELECT imap_url FROM seed_mailboxes WHERE id = ?", a).Scan(&stored).Error; err != nil || strings.Contains(stored, "s3cret") {
			t.Errorf("stored URL %q (%v): want it sealed", stored, err)
		}
		if _, err := s.SeedMailboxes(ctx, []string{"another"}); !errors.Is(err, models.ErrSettingSealed) {
			t.Errorf("seeds with a wrong secret: %v, want ErrSettingSealed", err)
		}
		seeds, err := s.SeedMailboxes(ctx, []string{"another", "secret-1"})
		if err != nil || len(seeds) != 2 || seeds[0].Address != "Seed@gmail.example" || seeds[0].IMAPURL != f.IMAPURL {
			t.Fatalf("seeds = %+v, %v", seeds, err)
		}
		if got := seeds[0].RedactedURL(); got != "imaps://u:xxxxx@imap.example:993" {
			t.Errorf("RedactedURL() = %q", got)
		}

		tpl := &models.Template{Kind: "campaign", Name: "T", Subject: "S", HTML: "<p>x</p>", Text: "x"}
		if err := s.CreateTemplate(ctx, tpl); err != nil {
			t.Fatal(err)
		}
		cp := &models.Campaign{Name: "Spring", FromEmail: "news@example.com", Subject: "S", TemplateID: &tpl.ID}
		if err := s.CreateCampaign(ctx, cp, nil); err != nil {
			t.Fatal(err)
		}
		pt, err := s.StartPlacementTest(ctx, cp.ID, seeds, time.Now().Add(time.Minute), true)
		if err != nil {
			t.Fatal(err)
		}
		running, err := s.RunningPlacementTests(ctx)
		if err != nil || len(running) != 1 || len(running[0].Results) != 2 || running[0].Token != pt.Token || !running[0].Gate {
			t.Fatalf("running = %+v, %v", running, err)
		}
		r := running[0].Results[0]
		ms := int64(1500)
		r.Placement, r.Folder, r.ArrivalMS, r.SPF, r.DKIM, r.DMARC = models.PlacementSpam, "[Gmail]/Spam", &ms, "pass", "fail", "fail"
		if err := s.RecordPlacement(ctx, r); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteSeedMailbox(ctx, b); err != nil {
			t.Fatal(err)
		}
		if err := s.FinishPlacementTest(ctx, pt.ID); err != nil {
			t.Fatal(err)
		}
		got, err := s.PlacementTest(ctx, pt.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Status != models.PlacementDone || got.FinishedAt == nil || got.Campaign != "Spring" {
			t.Errorf("test = %+v, want done with a finish time", got)
		}
		res := map[string]models.PlacementResult{}
		for _, r := range got.Results {
			res[r.Address] = r
		}
		if g := res["Seed@gmail.example"]; g.Placement != "spam" || g.Folder != "[Gmail]/Spam" || g.ArrivalMS == nil || *g.ArrivalMS != 1500 || g.DKIM != "fail" {
			t.Errorf("gmail result = %+v", g)
		}
		if o := res["seed@outlook.example"]; o.Placement != "missing" {
			t.Errorf("outlook result = %+v, want missing", o)
		}
		if got.InboxPercent() != 0 || len(got.ByProvider()) != 2 {
			t.Errorf("InboxPercent() = %d, ByProvider() = %+v", got.InboxPercent(), got.ByProvider())
		}
		if list, err := s.PlacementTests(ctx, cp.ID, 10); err != nil || len(list) != 1 {
			t.Errorf("PlacementTests() = %+v, %v", list, err)
		}
		if _, err := s.PlacementTest(ctx, pt.ID+100); !errors.Is(err, models.ErrNotFound) {
			t.Errorf("missing test: %v, want ErrNotFound", err)
		}
	})
}

func TestSeedFormValidate(t *testing.T) {
	for _, c := range []struct {
		f     models.SeedForm
		field string
	}{
		{models.SeedForm{Address: "nope", Provider: "Gmail", IMAPURL: "imaps://u:p@h:993"}, "address"},
		{models.SeedForm{Address: "a@b.example", Provider: "", IMAPURL: "imaps://u:p@h:993"}, "provider"},
		{models.SeedForm{Address: "a@b.example", Provider: "G", IMAPURL: "https://u:p@h"}, "imap_url"},
		{models.SeedForm{Address: "a@b.example", Provider: "G", IMAPURL: "imaps://h:993"}, "imap_url"},
	} {
		if errs := c.f.Validate(); errs[c.field] == "" || len(errs) != 1 {
			t.Errorf("Validate(%+v) = %v, want one message for %s", c.f, errs, c.field)
		}
	}
}

// A gate waits for its test: at the threshold the paused campaign
// resumes, below it stays paused with the reason; 0 removes the gate.
func TestPlacementGateSettles(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		tpl := &models.Template{Kind: "campaign", Name: "T", Subject: "S", HTML: "<p>x</p>", Text: "x"}
		if err := s.CreateTemplate(ctx, tpl); err != nil {
			t.Fatal(err)
		}
		seedID, err := s.CreateSeedMailbox(ctx, "k", models.SeedForm{Address: "s@a.example", Provider: "A", IMAPURL: "imaps://u:p@h"})
		if err != nil {
			t.Fatal(err)
		}
		seed2, err := s.CreateSeedMailbox(ctx, "k", models.SeedForm{Address: "s@b.example", Provider: "B", IMAPURL: "imaps://u:p@h"})
		if err != nil {
			t.Fatal(err)
		}
		seeds := []models.SeedMailbox{{ID: seedID, Address: "s@a.example", Provider: "A"}, {ID: seed2, Address: "s@b.example", Provider: "B"}}
		run := func(name string, min int) (*models.PlacementGate, string) {
			cp := &models.Campaign{Name: name, FromEmail: "n@example.com", Subject: "S", TemplateID: &tpl.ID}
			if err := s.CreateCampaign(ctx, cp, nil); err != nil {
				t.Fatal(err)
			}
			if err := s.SetPlacementGate(ctx, cp.ID, 10); err != nil {
				t.Fatal(err)
			}
			if err := s.SetPlacementGate(ctx, cp.ID, min); err != nil { // an update
				t.Fatal(err)
			}
			g, err := s.ArmedPlacementGate(ctx, cp.ID)
			if err != nil || g == nil || g.MinInbox != min {
				t.Fatalf("armed gate = %+v, %v", g, err)
			}
			if err := s.StartCampaign(ctx, cp.ID); err != nil {
				t.Fatal(err)
			}
			if err := s.PauseCampaign(ctx, cp.ID); err != nil {
				t.Fatal(err)
			}
			pt, err := s.StartPlacementTest(ctx, cp.ID, seeds, time.Now().Add(time.Minute), true)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.GateTesting(ctx, cp.ID, pt.ID); err != nil {
				t.Fatal(err)
			}
			if g, _ := s.ArmedPlacementGate(ctx, cp.ID); g != nil {
				t.Errorf("gate still armed while testing: %+v", g)
			}
			got, _ := s.PlacementTest(ctx, pt.ID)
			r := got.Results[0]
			r.Placement = models.PlacementInbox
			if err := s.RecordPlacement(ctx, r); err != nil {
				t.Fatal(err)
			}
			if err := s.FinishPlacementTest(ctx, pt.ID); err != nil {
				t.Fatal(err)
			}
			done, _ := s.PlacementTest(ctx, pt.ID)
			g, err = s.SettlePlacementGate(ctx, done)
			if err != nil || g == nil {
				t.Fatalf("settle = %+v, %v", g, err)
			}
			after, err := s.Campaign(ctx, cp.ID)
			if err != nil {
				t.Fatal(err)
			}
			if after.Status == models.CampaignPaused && after.PauseReason != g.Reason {
				t.Errorf("campaign's pause_reason = %q, want the gate's %q", after.PauseReason, g.Reason)
			}
			return g, after.Status
		}
		if g, status := run("Pass", 50); g.State != models.GatePassed || status != models.CampaignRunning {
			t.Errorf("50%% of 50%%: gate %+v, campaign %s; want passed and running", g, status)
		}
		g, status := run("Fail", 51)
		if g.State != models.GateFailed || status != models.CampaignPaused || !strings.Contains(g.Reason, "50% of the seeds") {
			t.Errorf("50%% of 51%%: gate %+v, campaign %s; want failed and paused", g, status)
		}
		gates, err := s.PlacementGates(ctx)
		if err != nil || len(gates) != 2 {
			t.Fatalf("gates = %+v, %v", gates, err)
		}
		if err := s.SetPlacementGate(ctx, g.CampaignID, 0); err != nil {
			t.Fatal(err)
		}
		if gates, _ := s.PlacementGates(ctx); len(gates) != 1 {
			t.Errorf("after removing one, gates = %+v", gates)
		}
	})
}
