package models_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/herald-mail/herald/internal/testdb"
	"github.com/herald-mail/herald/models"
)

// eventCampaign makes a campaign with two links and returns their ids.
func eventCampaign(t *testing.T, s *models.Store) (campaign int64, links []int64) {
	t.Helper()
	ctx := context.Background()
	c := &models.Campaign{Name: "Spring", FromEmail: "news@example.com"}
	if err := s.CreateCampaign(ctx, c, nil); err != nil {
		t.Fatal(err)
	}
	links, err := s.EnsureLinks(ctx, c.ID, []string{"https://example.com/a", "https://example.com/b", "https://example.com/unclicked"})
	if err != nil {
		t.Fatal(err)
	}
	return c.ID, links
}

func TestEventStats(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		c, links := eventCampaign(t, s)
		at := time.Now()
		evs := []models.Event{
			// delivery 1: a human open, a machine prefetch, two human clicks on link a
			{DeliveryID: 1, CampaignID: c, Kind: models.EventOpen, UserAgent: "Mail", CreatedAt: at},
			{DeliveryID: 1, CampaignID: c, Kind: models.EventOpen, Machine: true, UserAgent: "Mozilla/5.0", CreatedAt: at},
			{DeliveryID: 1, CampaignID: c, LinkID: links[0], Kind: models.EventClick, CreatedAt: at},
			{DeliveryID: 1, CampaignID: c, LinkID: links[0], Kind: models.EventClick, CreatedAt: at},
			// delivery 2: machine only
			{DeliveryID: 2, CampaignID: c, Kind: models.EventOpen, Machine: true, CreatedAt: at},
			{DeliveryID: 2, CampaignID: c, LinkID: links[1], Kind: models.EventClick, Machine: true, CreatedAt: at},
			{DeliveryID: 2, CampaignID: c, Kind: models.EventUnsubscribe, CreatedAt: at},
			// another campaign's event does not count
			{DeliveryID: 3, CampaignID: c + 100, Kind: models.EventOpen, CreatedAt: at},
		}
		if err := s.InsertEvents(ctx, evs); err != nil {
			t.Fatal(err)
		}
		got, err := s.CampaignEventStats(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		want := models.CampaignEvents{
			Opens:        models.EventCounts{Total: 3, Human: 1, Unique: 2, UniqueHuman: 1},
			Clicks:       models.EventCounts{Total: 3, Human: 2, Unique: 2, UniqueHuman: 1},
			Unsubscribes: models.EventCounts{Total: 1, Human: 1, Unique: 1, UniqueHuman: 1},
		}
		if *got != want {
			t.Errorf("CampaignEventStats() = %+v, want %+v", *got, want)
		}
		ls, err := s.CampaignLinkStats(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		wantLinks := []models.EventCounts{{Total: 2, Human: 2, Unique: 1, UniqueHuman: 1}, {Total: 1, Unique: 1}, {}}
		if len(ls) != len(wantLinks) {
			t.Fatalf("CampaignLinkStats() returned %d links, want %d", len(ls), len(wantLinks))
		}
		for i, l := range ls {
			if l.LinkID != links[i] || l.EventCounts != wantLinks[i] {
				t.Errorf("link %d = %+v, want id %d %+v", i, l, links[i], wantLinks[i])
			}
		}
	})
}

func TestInsertEventsLargeBatchAndDirtyHeaders(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		c, _ := eventCampaign(t, s)
		const n = 1234 // more than one INSERT's worth
		evs := make([]models.Event, n)
		for i := range evs {
			evs[i] = models.Event{DeliveryID: int64(i + 1), CampaignID: c, Kind: models.EventOpen, CreatedAt: time.Now()}
		}
		// Invalid UTF-8, a NUL and an over-long agent must not fail the batch
		// (PostgreSQL rejects the first two).
		long := ""
		for len(long) < 600 {
			long += "é"
		}
		evs[0].UserAgent = "bad \xff\xfe agent\x00"
		evs[1].UserAgent = long
		if err := s.InsertEvents(ctx, evs); err != nil {
			t.Fatalf("InsertEvents() error = %v", err)
		}
		got, err := s.CampaignEventStats(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		if got.Opens.Total != n || got.Opens.Unique != n {
			t.Errorf("opens = %+v, want %d total and unique", got.Opens, n)
		}
	})
}

func TestMachineMarks(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		c, links := eventCampaign(t, s)
		t0 := time.Now().Add(-time.Minute)
		evs := []models.Event{
			{DeliveryID: 7, CampaignID: c, LinkID: links[0], Kind: models.EventClick, CreatedAt: t0},
			{DeliveryID: 7, CampaignID: c, LinkID: links[1], Kind: models.EventClick, CreatedAt: t0.Add(time.Second)},
			{DeliveryID: 8, CampaignID: c, LinkID: links[1], Kind: models.EventClick, CreatedAt: t0.Add(time.Second)},
		}
		if err := s.InsertEvents(ctx, evs); err != nil {
			t.Fatal(err)
		}
		// A later click reveals delivery 7's scanner: its clicks from the
		// mark's time on become machine traffic, delivery 8's stay human.
		later := models.Event{DeliveryID: 7, CampaignID: c, LinkID: links[0], Kind: models.EventClick, Machine: true, CreatedAt: t0.Add(2 * time.Second)}
		if err := s.InsertEventsMarking(ctx, []models.Event{later}, []models.MachineMark{{CampaignID: c, DeliveryID: 7, Since: t0.Add(time.Second)}}); err != nil {
			t.Fatal(err)
		}
		got, _ := s.CampaignEventStats(ctx, c)
		if want := (models.EventCounts{Total: 4, Human: 2, Unique: 2, UniqueHuman: 2}); got.Clicks != want {
			t.Errorf("clicks = %+v, want %+v", got.Clicks, want)
		}
		// A click recorded in aggregate mode (no delivery) counts in the
		// total, not as a reader, in the report and in the campaign list.
		if err := s.InsertEvents(ctx, []models.Event{{CampaignID: c, LinkID: links[0], Kind: models.EventClick, CreatedAt: t0}}); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.CampaignEventStats(ctx, c); got.Clicks.Total != 5 || got.Clicks.Unique != 2 {
			t.Errorf("clicks with an aggregate one = %+v, want 5 total, 2 unique", got.Clicks)
		}
		if err := s.StartCampaign(ctx, c); err != nil {
			t.Fatal(err)
		}
		list, err := s.CampaignRatesList(ctx, models.CampaignRatesQuery{Engagement: true})
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, r := range list {
			if r.ID == c {
				found = true
				if r.Clicks != 2 || r.HumanClicks != 2 {
					t.Errorf("campaign list clicks = %d (%d human), want 2 unique readers as in the report", r.Clicks, r.HumanClicks)
				}
			}
		}
		if !found {
			t.Errorf("campaign %d missing from the campaign list %+v", c, list)
		}
	})
}

func TestDeliveryRefAndTrackedLinks(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		if _, err := s.DeliveryRef(ctx, 424242); !errors.Is(err, models.ErrNotFound) {
			t.Errorf("DeliveryRef(missing) error = %v, want ErrNotFound", err)
		}
		c, links := eventCampaign(t, s)
		ls, err := s.CampaignTrackedLinks(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		var l *models.TrackedLink
		for i := range ls {
			if ls[i].ID == links[1] {
				l = &ls[i]
			}
		}
		if l == nil || l.URL != "https://example.com/b" || l.UTM || l.CampaignName != "Spring" {
			t.Errorf("CampaignTrackedLinks() = %+v, want link %d to https://example.com/b", ls, links[1])
		}
	})
}
