package models_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/herald-mail/herald/internal/testdb"
	"github.com/herald-mail/herald/models"
)

// TestActivityPagesByCursor: a reader paging the feed with its cursor
// gets every settled event once, in order; a row younger than
// ActivitySettle waits, and the cursor does not pass it.
func TestActivityPagesByCursor(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		campaign, links := eventCampaign(t, s)
		old := time.Now().Add(-time.Minute)
		kinds := []string{models.EventOpen, models.EventClick, models.EventOpen, models.EventUnsubscribe, models.EventClick}
		var evs []models.Event
		for i, k := range kinds {
			e := models.Event{DeliveryID: int64(i + 1), CampaignID: campaign, Kind: k, CreatedAt: old.Add(time.Duration(i) * time.Second)}
			if k == models.EventClick {
				e.LinkID = links[0]
			}
			evs = append(evs, e)
		}
		fresh := models.Event{DeliveryID: 9, CampaignID: campaign, Kind: models.EventOpen, CreatedAt: time.Now()}
		if err := s.InsertEvents(ctx, append(evs, fresh)); err != nil {
			t.Fatal(err)
		}
		var got []string
		var cur models.ActivityCursor
		for range 10 {
			page, next, err := s.Activity(ctx, models.ActivityQuery{After: cur, Limit: 2})
			if err != nil {
				t.Fatal(err)
			}
			if len(page) == 0 {
				if next != cur {
					t.Errorf("an empty page moved the cursor from %+v to %+v", cur, next)
				}
				break
			}
			for _, a := range page {
				got = append(got, a.Kind)
				if a.Kind == models.EventClick && a.URL == "" {
					t.Errorf("click %+v without its link's URL", a)
				}
			}
			cur = next
		}
		if len(got) != len(kinds) {
			t.Fatalf("paged feed = %v, want %v (the fresh open held back)", got, kinds)
		}
		for i := range kinds {
			if got[i] != kinds[i] {
				t.Fatalf("paged feed = %v, want %v", got, kinds)
			}
		}
		opens, _, err := s.Activity(ctx, models.ActivityQuery{Kinds: []string{models.EventOpen}, CampaignID: campaign})
		if err != nil || len(opens) != 2 {
			t.Errorf("opens = %d, %v; want 2", len(opens), err)
		}
		var bk *models.BadKindError
		if _, _, err := s.Activity(ctx, models.ActivityQuery{Kinds: []string{"sent"}}); !errors.As(err, &bk) {
			t.Errorf("unknown kind: %v", err)
		}
	})
}
