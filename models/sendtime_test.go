package models_test

import (
	"context"
	"sort"
	"testing"
	"time"

	"github.com/herald-mail/herald/internal/testdb"
	"github.com/herald-mail/herald/models"
)

// A campaign sent "at 09:00 in each subscriber's time zone", materialised
// and claimed with a clock passed in: each delivery's release time is its
// zone's next 09:00, an invalid zone falls back to the default (and is
// counted), and no claim takes a row before its time.
func TestSendTimeByZone(t *testing.T) {
	utc := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	// Saturday 5 December 2026, 12:00:30 UTC.
	t0 := utc("2026-12-05T12:00:30Z")
	people := []struct {
		email, zone string // zone "" has no attribute
		want        time.Time
	}{
		{"paris@a.test", "Europe/Paris", utc("2026-12-06T08:00:00Z")},         // 13:00 there: tomorrow
		{"newyork@a.test", "America/New_York", utc("2026-12-05T14:00:00Z")},   // 07:00 there: today
		{"tokyo@a.test", "Asia/Tokyo", utc("2026-12-06T00:00:00Z")},           // 21:00 there: tomorrow
		{"saopaulo@a.test", "America/Sao_Paulo", utc("2026-12-05T12:00:00Z")}, // 09:00:30 there: now
		{"invalid@a.test", "Mars/Olympus_Mons", utc("2026-12-06T09:00:00Z")},  // default zone
		{"nozone@a.test", "", utc("2026-12-06T09:00:00Z")},                    // default zone
		{"london@a.test", "Europe/London", utc("2026-12-06T09:00:00Z")},
	}
	for _, batch := range []int{2, 1000} {
		testdb.Each(t, func(t *testing.T, s *models.Store) {
			ctx := context.Background()
			l := &models.List{Name: "Everyone", Optin: models.OptinSingle, Visibility: models.ListPrivate}
			if err := s.CreateList(ctx, l); err != nil {
				t.Fatal(err)
			}
			ev := models.Evidence{Source: models.SourceAdmin, Actor: "test"}
			who := map[int64]int{}
			for i, p := range people {
				sub := &models.Subscriber{Email: p.email}
				if p.zone != "" {
					sub.Attributes = models.Attributes{"timezone": p.zone}
				}
				if err := s.CreateSubscriber(ctx, sub, map[int64]string{l.ID: models.SubConfirmed}, ev); err != nil {
					t.Fatal(err)
				}
				who[sub.ID] = i
			}
			tpl := &models.Template{Kind: models.TemplateCampaign, Name: "t", HTML: "<p>x</p>"}
			if err := s.CreateTemplate(ctx, tpl); err != nil {
				t.Fatal(err)
			}
			c := &models.Campaign{Name: "by zone", TemplateID: &tpl.ID, FromEmail: "a@b.test"}
			if err := s.CreateCampaign(ctx, c, []int64{l.ID}); err != nil {
				t.Fatal(err)
			}
			st := models.SendTime{LocalSendAt: "09:00", TZAttribute: "timezone", TZDefault: "Europe/London"}
			if errs := st.Validate(); len(errs) > 0 {
				t.Fatal(errs)
			}
			if err := s.SetCampaignSendTime(ctx, c.ID, st); err != nil {
				t.Fatal(err)
			}
			if err := s.StartCampaign(ctx, c.ID); err != nil {
				t.Fatal(err)
			}
			for done := false; !done; {
				var err error
				if done, err = s.MaterializeCampaignAt(ctx, c.ID, batch, t0); err != nil {
					t.Fatal(err)
				}
			}
			var rows []struct {
				SubscriberID  int64
				NextAttemptAt time.Time
			}
			if err := s.DB().Raw("SELECT subscriber_id, next_attempt_at FROM deliveries WHERE campaign_id = ?", c.ID).Scan(&rows).Error; err != nil {
				t.Fatal(err)
			}
			if len(rows) != len(people) {
				t.Fatalf("%d deliveries, want %d", len(rows), len(people))
			}
			release := map[int64]time.Time{}
			for _, r := range rows {
				p := people[who[r.SubscriberID]]
				release[r.SubscriberID] = r.NextAttemptAt
				if d := r.NextAttemptAt.Sub(p.want); d < -time.Minute || d > time.Minute {
					t.Errorf("%s (%q): released at %s, want within a minute of %s", p.email, p.zone, r.NextAttemptAt.UTC(), p.want)
				}
				zone := p.zone
				if zone == "" || zone == "Mars/Olympus_Mons" {
					zone = "Europe/London"
				}
				loc, _ := time.LoadLocation(zone)
				if local := r.NextAttemptAt.In(loc); local.Hour() != 9 || local.Minute() != 0 {
					t.Errorf("%s: released at %s local, want 09:00", p.email, local.Format("15:04"))
				}
			}
			got, err := s.Campaign(ctx, c.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.TZInvalid != 1 {
				t.Errorf("TZInvalid = %d, want 1 (Mars/Olympus_Mons)", got.TZInvalid)
			}
			w, err := s.CampaignZoneWait(ctx, c.ID, t0)
			if err != nil {
				t.Fatal(err)
			}
			if w.Waiting != 6 || w.Releases != 4 || w.Next == nil || !w.Next.Equal(utc("2026-12-05T14:00:00Z")) {
				t.Errorf("CampaignZoneWait = %+v (next %v), want 6 waiting in 4 releases, next 14:00 UTC", w, w.Next)
			}

			// Claims through the day: each row is taken at the first
			// step at or after its release time, never before.
			steps := []time.Time{t0, utc("2026-12-05T13:59:00Z"), utc("2026-12-05T14:00:00Z"), utc("2026-12-05T23:59:59Z"),
				utc("2026-12-06T00:00:00Z"), utc("2026-12-06T08:00:00Z"), utc("2026-12-06T08:59:00Z"), utc("2026-12-06T09:00:00Z")}
			claimedAt := map[int64]time.Time{}
			for _, now := range steps {
				cl, err := s.ClaimDeliveries(ctx, models.ClaimRequest{Node: "n1", Lease: time.Hour, Limit: 100,
					CampaignIDs: []int64{c.ID}, Now: now})
				if err != nil {
					t.Fatal(err)
				}
				for _, d := range cl {
					if _, twice := claimedAt[d.SubscriberID]; twice {
						t.Errorf("subscriber %d claimed twice", d.SubscriberID)
					}
					claimedAt[d.SubscriberID] = now
					if now.Before(release[d.SubscriberID]) {
						t.Errorf("%s claimed at %s, before its release at %s", d.Email, now, release[d.SubscriberID])
					}
				}
			}
			var order []string
			for id, at := range claimedAt {
				p := people[who[id]]
				// The first step at or after its release time.
				first := time.Time{}
				for _, st := range steps {
					if !st.Before(release[id]) {
						first = st
						break
					}
				}
				if !at.Equal(first) {
					t.Errorf("%s claimed at %s, want %s", p.email, at, first)
				}
				order = append(order, p.email)
			}
			sort.Strings(order)
			if len(claimedAt) != len(people) {
				t.Errorf("claimed %v, want all %d", order, len(people))
			}
		})
	}
}

// NextLocalTime around a daylight-saving change: 09:00 in New York the
// day after clocks go back is 14:00 UTC, the day before 13:00 UTC.
func TestNextLocalTimeDST(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ now, want string }{
		{"2026-10-31T14:00:00Z", "2026-11-01T14:00:00Z"}, // Saturday 10:00 EDT: Sunday 09:00 EST
		{"2026-10-31T12:00:00Z", "2026-10-31T13:00:00Z"}, // Saturday 08:00 EDT: today
		{"2026-10-31T13:00:59Z", "2026-10-31T13:00:00Z"}, // within the minute: now
		{"2026-10-31T13:01:00Z", "2026-11-01T14:00:00Z"},
	} {
		now, _ := time.Parse(time.RFC3339, c.now)
		want, _ := time.Parse(time.RFC3339, c.want)
		if got := models.NextLocalTime(now, 9, 0, ny); !got.Equal(want) {
			t.Errorf("NextLocalTime(%s) = %s, want %s", c.now, got.UTC(), c.want)
		}
	}
}
