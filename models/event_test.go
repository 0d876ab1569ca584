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

func TestMarkMachineClicks(t *testing.T) {
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
		n, err := s.MarkMachineClicks(ctx, c, 7, t0.Add(time.Second))
		if err != nil || n != 1 {
			t.Fatalf("MarkMachineClicks() = %d, %v; want 1, nil", n, err)
		}
		got, _ := s.CampaignEventStats(ctx, c)
		if want := (models.EventCounts{Total: 3, Human: 2, Unique: 2, UniqueHuman: 2}); got.Clicks != want {
			t.Errorf("clicks = %+v, want %+v", got.Clicks, want)
		}
	})
}

func TestDeliveryRefAndTrackedLink(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		if _, err := s.DeliveryRef(ctx, 424242); !errors.Is(err, models.ErrNotFound) {
			t.Errorf("DeliveryRef(missing) error = %v, want ErrNotFound", err)
		}
		if _, err := s.TrackedLink(ctx, 424242); !errors.Is(err, models.ErrNotFound) {
			t.Errorf("TrackedLink(missing) error = %v, want ErrNotFound", err)
		}
		c, links := eventCampaign(t, s)
		l, err := s.TrackedLink(ctx, links[1])
		if err != nil {
			t.Fatal(err)
		}
		if l.CampaignID != c || l.URL != "https://example.com/b" || l.UTM || l.CampaignName != "Spring" {
			t.Errorf("TrackedLink() = %+v", l)
		}
	})
}
