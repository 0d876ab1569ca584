package mailer_test

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/herald-mail/herald/internal/testdb"
	"github.com/herald-mail/herald/internal/token"
	"github.com/herald-mail/herald/mailer"
	"github.com/herald-mail/herald/models"
)

var clickTokenRE = regexp.MustCompile(`/t/c/([A-Za-z0-9_-]+)`)

// The tracking mode setting: in full (and aggregate) mode messages carry
// the pixel and click tokens that name their campaign; once it is off, a
// campaign started afterwards carries neither, and its links go straight
// to their targets.
func TestTrackingModeOff(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		list := seed(t, s, 2, []string{"example.org"})
		e := mailer.New(mailer.Options{Logger: testLogger(t), RootURL: "https://herald.acme.test", Secrets: []string{"mode-secret"}}, s)
		runEngine(t, e)
		send := func() *models.OutboxMessage {
			t.Helper()
			cid := campaign(t, s, list, "news@acme.test", nil, nil)
			if err := e.StartCampaign(ctx, cid); err != nil {
				t.Fatal(err)
			}
			waitFor(t, 15*time.Second, "campaign to finish", func() bool { return progress(t, s, cid).Status == models.CampaignFinished })
			page, err := s.Outbox(ctx, models.OutboxQuery{CampaignID: cid})
			if err != nil || len(page) != 2 {
				t.Fatalf("Outbox() = %d messages, %v; want 2", len(page), err)
			}
			m, err := s.OutboxMessage(ctx, page[0].ID)
			if err != nil {
				t.Fatal(err)
			}
			return m
		}

		tracked := send()
		if !strings.Contains(tracked.HTML, "https://herald.acme.test/t/o/") {
			t.Errorf("full mode: no open pixel in %q", tracked.HTML)
		}
		m := clickTokenRE.FindStringSubmatch(tracked.HTML)
		if m == nil {
			t.Fatalf("full mode: no tracked link in %q", tracked.HTML)
		}
		d, l, c, err := token.NewKeyring("mode-secret").ClickRef(m[1])
		if err != nil || d == 0 || l == 0 || c != tracked.CampaignID {
			t.Errorf("click token = delivery %d, link %d, campaign %d, %v; want the campaign %d", d, l, c, err, tracked.CampaignID)
		}

		if err := s.SetSetting(ctx, models.SettingTrackingMode, models.TrackingOff); err != nil {
			t.Fatal(err)
		}
		plain := send()
		for _, part := range []string{plain.HTML, plain.Text} {
			if strings.Contains(part, "/t/o/") || strings.Contains(part, "/t/c/") {
				t.Errorf("tracking off: message still tracked: %q", part)
			}
		}
		if !strings.Contains(plain.HTML, `href="https://example.com/one"`) || !strings.Contains(plain.Text, "https://example.com/five") {
			t.Errorf("tracking off: links not kept as written: %q / %q", plain.HTML, plain.Text)
		}
		// The unsubscribe link is not tracking and stays.
		if !strings.Contains(plain.HTML, "https://herald.acme.test/u/") {
			t.Errorf("tracking off: unsubscribe link missing: %q", plain.HTML)
		}
	})
}
