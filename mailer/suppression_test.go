package mailer_test

import (
	"context"
	"testing"
	"time"

	"github.com/herald-mail/herald/internal/testdb"
	"github.com/herald-mail/herald/mailer"
	"github.com/herald-mail/herald/models"
)

// Address and domain suppressions hold for campaigns (at materialisation)
// and for transactional mail (at claim time): nothing reaches the SMTP
// server for a suppressed recipient, unless a transactional message
// explicitly overrides the suppression (a password reset), which the
// delivery row then records.
func TestSuppressionsHoldForCampaignsAndTransactional(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		mx := startMX(t, "127.0.0.1:0", false, nil)
		list := seed(t, s, 6, []string{"ok.test", "blocked.test"}) // user0,2,4 @ok; user1,3,5 @blocked
		for _, v := range []string{"@blocked.test", "user2@ok.test"} {
			if err := s.AddSuppression(ctx, v, models.SuppressManual, "test"); err != nil {
				t.Fatal(err)
			}
		}
		tpl := &models.Template{Kind: models.TemplateTransactional, Name: "reset", Subject: "Reset", HTML: `<p>Reset.</p>`}
		if err := s.CreateTemplate(ctx, tpl); err != nil {
			t.Fatal(err)
		}
		e := mailer.New(mailer.Options{Logger: testLogger(t), Secrets: []string{"s"},
			Transport: mailer.NewDirect(mailer.DirectOptions{MXOverride: mx.Addr})}, s)
		runEngine(t, e)
		cid := campaign(t, s, list, "news@sender.test", nil, nil)
		if err := e.StartCampaign(ctx, cid); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 20*time.Second, "campaign to finish", func() bool { return progress(t, s, cid).Status == models.CampaignFinished })
		if p := progress(t, s, cid); p.Sent != 2 || p.Suppressed != 4 {
			t.Errorf("campaign counters = %+v, want 2 sent and 4 suppressed", p.Counters)
		}
		var ids []int64
		for _, to := range []string{"user2@ok.test", "someone@blocked.test", "user0@ok.test"} {
			id, err := e.SendTransactional(ctx, mailer.TransactionalRequest{Template: "reset", To: to, From: "hello@sender.test"})
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, id)
		}
		reset, err := e.SendTransactional(ctx, mailer.TransactionalRequest{Template: "reset", To: "user2@ok.test", From: "hello@sender.test",
			OverrideSuppression: true})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, reset)
		want := []string{models.DeliverySuppressed, models.DeliverySuppressed, models.DeliverySent, models.DeliverySent}
		waitFor(t, 20*time.Second, "transactional mail to settle", func() bool {
			for i, id := range ids {
				if d, err := s.Delivery(ctx, id); err != nil || d.Status != want[i] {
					return false
				}
			}
			return true
		})
		got := map[string]int{}
		for _, m := range mx.messages() {
			got[m.To]++
		}
		if got["user2@ok.test"] != 1 || got["someone@blocked.test"] != 0 || got["user1@blocked.test"] != 0 || got["user0@ok.test"] != 2 {
			t.Errorf("SMTP server received %v; suppressed recipients must get nothing but the overriding reset (user2 once), user0 two messages", got)
		}
		for i, id := range ids {
			d, err := s.Delivery(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if d.OverrideSuppression != (id == reset) {
				t.Errorf("delivery %d: override recorded = %v, want %v", i, d.OverrideSuppression, id == reset)
			}
		}
	})
}
