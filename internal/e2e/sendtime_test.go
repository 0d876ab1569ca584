package e2e_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/herald-mail/herald/internal/e2e"
	"github.com/herald-mail/herald/models"
)

// TestSendTimeByZoneEndToEnd runs the built binary on the capture
// transport with a campaign sent at the current UTC minute in each
// subscriber's zone: the UTC reader and the one whose zone is not a zone
// (default UTC) are sent at once; the Tokyo reader, whose hour passed nine
// hours ago, is held until tomorrow and never claimed meanwhile, and the
// progress panel says what it waits for.
func TestSendTimeByZoneEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the built binary")
	}
	h := e2e.Start(t, e2e.Options{})
	list := h.List(t, "Zones", "utc@zones.test", "tokyo@zones.test", "nowhere@zones.test")
	s := h.Store(t)
	ctx := context.Background()
	for email, zone := range map[string]string{"utc@zones.test": "UTC", "tokyo@zones.test": "Asia/Tokyo", "nowhere@zones.test": "Not/A_Zone"} {
		if err := s.DB().Exec("UPDATE subscribers SET attributes = ? WHERE email = ?", fmt.Sprintf(`{"timezone":%q}`, zone), email).Error; err != nil {
			t.Fatal(err)
		}
	}
	id := h.NewCampaign(t, e2e.Campaign{FromEmail: "hello@news.example", Lists: []int64{list}})
	// The local time is this minute in UTC; leave room before the minute ends.
	if sec := time.Now().UTC().Second(); sec > 40 {
		time.Sleep(time.Duration(61-sec) * time.Second)
	}
	at := time.Now().UTC().Format("15:04")
	if err := s.SetCampaignSendTime(ctx, id, models.SendTime{LocalSendAt: at, TZAttribute: "timezone", TZDefault: "UTC"}); err != nil {
		t.Fatal(err)
	}
	h.StartCampaign(t, id)

	sentTo := func() []string {
		var to []string
		if err := s.DB().Raw("SELECT rcpt_to FROM outbox WHERE campaign_id = ? ORDER BY rcpt_to", id).Scan(&to).Error; err != nil {
			t.Fatal(err)
		}
		return to
	}
	e2e.Eventually(t, 30*time.Second, "the UTC share to be sent", func() bool { return len(sentTo()) >= 2 })
	time.Sleep(2 * time.Second) // several claim rounds: the Tokyo row must stay put
	if got := sentTo(); !slices.Equal(got, []string{"nowhere@zones.test", "utc@zones.test"}) {
		t.Fatalf("sent to %v, want the UTC and the invalid-zone readers only", got)
	}
	var held []struct {
		Status        string
		Attempts      int
		NextAttemptAt time.Time
	}
	if err := s.DB().Raw(`SELECT d.status, d.attempts, d.next_attempt_at FROM deliveries d JOIN subscribers b ON b.id = d.subscriber_id
		WHERE d.campaign_id = ? AND b.email = 'tokyo@zones.test'`, id).Scan(&held).Error; err != nil {
		t.Fatal(err)
	}
	tokyo, _ := time.LoadLocation("Asia/Tokyo")
	if len(held) != 1 || held[0].Status != models.DeliveryQueued || held[0].Attempts != 0 {
		t.Fatalf("Tokyo delivery = %+v, want queued and never attempted", held)
	}
	release := held[0].NextAttemptAt
	if local := release.In(tokyo).Format("15:04"); local != at || release.Before(time.Now().Add(14*time.Hour)) || release.After(time.Now().Add(16*time.Hour)) {
		t.Errorf("Tokyo release %s (%s local), want %s local tomorrow, about 15 hours ahead", release.UTC(), local, at)
	}
	c, err := s.Campaign(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if c.Status != models.CampaignRunning || c.TZInvalid != 1 {
		t.Errorf("campaign status %s, invalid zones %d; want running with 1", c.Status, c.TZInvalid)
	}
	d := h.Dashboard(t)
	code, body := d.Get(t, fmt.Sprintf("/campaigns/%d/progress", id))
	want := fmt.Sprintf("Waiting for %s local time in 1 time zone: 1 messages held", at)
	if code != 200 || !strings.Contains(body, want) {
		t.Errorf("progress panel (%d) does not say %q:\n%s", code, want, body)
	}
	if _, page := d.Get(t, fmt.Sprintf("/campaigns/%d", id)); !strings.Contains(page, "1 recipients had an invalid zone") {
		t.Errorf("campaign page does not count the invalid zone")
	}
}
