package mailer_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/herald-mail/herald/internal/testdb"
	"github.com/herald-mail/herald/mailer"
	"github.com/herald-mail/herald/models"
)

// With nothing configured, the engine captures into the outbox.
func TestCaptureByDefault(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		if err := s.SetSetting(ctx, models.SettingOrgName, "Acme Ltd"); err != nil {
			t.Fatal(err)
		}
		list := seed(t, s, 3, []string{"example.org"})
		cid := campaign(t, s, list, "news@acme.test", nil, nil)
		e := mailer.New(mailer.Options{Logger: testLogger(t), RootURL: "https://herald.acme.test"}, s)
		runEngine(t, e)
		if err := e.StartCampaign(ctx, cid); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 15*time.Second, "campaign to finish", func() bool { return progress(t, s, cid).Status == models.CampaignFinished })
		if p := progress(t, s, cid); p.Sent != 3 || p.Queued != 0 || p.Sending != 0 {
			t.Fatalf("progress = %+v, want 3 sent and nothing left", p.Counters)
		}
		page, err := s.Outbox(ctx, models.OutboxQuery{CampaignID: cid})
		if err != nil {
			t.Fatal(err)
		}
		if len(page) != 3 {
			t.Fatalf("len(Outbox()) = %d, want 3", len(page))
		}
		m, err := s.OutboxMessage(ctx, page[0].ID)
		if err != nil {
			t.Fatal(err)
		}
		checks := []struct {
			name, got, want string
		}{
			{"subject", m.Subject, "News for User "},
			{"html", m.HTML, "News for City "},
			{"html tracked link", m.HTML, "https://herald.acme.test/t/c/"},
			{"html open pixel", m.HTML, "https://herald.acme.test/t/o/"},
			{"text", m.Text, "One [1]"},
			{"text footnote", m.Text, "[1] https://herald.acme.test/t/c/"},
			{"text org", m.Text, "from Acme Ltd."},
			{"headers", m.Headers, "List-Unsubscribe-Post: List-Unsubscribe=One-Click"},
			{"raw", m.Raw, "Content-Type: multipart/alternative"},
			{"envelope", m.MailFrom, "@acme.test"},
		}
		for _, c := range checks {
			if !strings.Contains(c.got, c.want) {
				t.Errorf("outbox %s = %q, want it to contain %q", c.name, c.got, c.want)
			}
		}
		if strings.Contains(m.HTML, "https://example.com/one") {
			t.Errorf("outbox HTML still holds an untracked link: %q", m.HTML)
		}
	})
}
