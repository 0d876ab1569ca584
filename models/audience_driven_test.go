package models_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/herald-mail/herald/internal/testdb"
	"github.com/herald-mail/herald/models"
)

// TestMaterializeDrivenAudiences: audiences whose segments all require a
// list are materialised by walking that list (the driven path), the
// others by every eligible subscription; both give exactly the people
// the live count counts, each attributed to the list the rule says:
// the first of the campaign's lists they are eligible on, else the list
// the segment walked when eligible on it, else the first they are
// eligible on at all.
func TestMaterializeDrivenAudiences(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		lists := map[string]int64{}
		for _, l := range []struct{ name, optin string }{{"A", models.OptinSingle}, {"B", models.OptinDouble}, {"C", models.OptinSingle}} {
			list := &models.List{Name: l.name, Optin: l.optin, Visibility: models.ListPrivate}
			if err := s.CreateList(ctx, list); err != nil {
				t.Fatal(err)
			}
			lists[l.name] = list.ID
		}
		A, B, C := lists["A"], lists["B"], lists["C"]
		ev := models.Evidence{Source: models.SourceAdmin, Actor: "test"}
		for _, p := range []struct {
			name, city string
			subs       map[int64]string
		}{
			{"p1", "Oslo", map[int64]string{A: models.SubConfirmed}},
			// Live on B but not eligible there (double opt-in): eligible on A.
			{"p2", "Paris", map[int64]string{A: models.SubConfirmed, B: models.SubUnconfirmed}},
			{"p3", "Paris", map[int64]string{B: models.SubUnconfirmed}}, // eligible nowhere
			{"p4", "Paris", map[int64]string{B: models.SubConfirmed}},
			{"p5", "Oslo", map[int64]string{A: models.SubConfirmed, B: models.SubConfirmed}},
			{"p6", "Paris", map[int64]string{A: models.SubConfirmed, C: models.SubConfirmed}},
			{"p7", "Paris", map[int64]string{C: models.SubUnconfirmed}}, // single opt-in: eligible
		} {
			a, err := models.ParseAttributes(`{"city":"` + p.city + `"}`)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.CreateSubscriber(ctx, &models.Subscriber{Email: p.name + "@example.com", Attributes: a}, p.subs, ev); err != nil {
				t.Fatal(err)
			}
		}
		in := func(l int64) models.Condition { return models.Condition{Field: models.FieldList, Op: "in", ListID: l} }
		paris := models.Condition{Field: models.FieldAttribute, Key: "city", Op: "equals", Value: "Paris"}
		segment := func(match string, cs ...models.Condition) int64 {
			seg := &models.Segment{Name: fmt.Sprint(len(cs), match, cs), Conditions: models.Conditions{Groups: []models.ConditionGroup{{Match: match, Conditions: cs}}}}
			if err := s.CreateSegment(ctx, seg); err != nil {
				t.Fatal(err)
			}
			return seg.ID
		}
		onB, onA, onAParis := segment("all", in(B)), segment("all", in(A)), segment("all", in(A), paris)
		onBParis, onAandC, onAorC := segment("all", in(B), paris), segment("all", in(A), in(C)), segment("any", in(A), in(C))
		confirmedB := segment("all", models.Condition{Field: models.FieldList, Op: "in", ListID: B, Status: models.SubConfirmed})
		onC := segment("all", in(C))
		for _, tc := range []struct {
			name string
			a    models.Audience
			want string // person:list, in order
		}{
			{"segment of a double opt-in list", models.Audience{Segments: []int64{onB}}, "p2:A p4:B p5:B"},
			{"segment of its confirmed members", models.Audience{Segments: []int64{confirmedB}}, "p4:B p5:B"},
			{"the list and a segment of it", models.Audience{Lists: []int64{B}, Segments: []int64{onBParis}}, "p2:A p4:B p5:B"},
			{"all of two lists", models.Audience{Segments: []int64{onAandC}}, "p6:A"},
			{"any of two lists (no list in common)", models.Audience{Segments: []int64{onAorC}}, "p1:A p2:A p5:A p6:A p7:C"},
			{"a list minus an excluded list", models.Audience{Lists: []int64{A}, ExcludeLists: []int64{C}}, "p1:A p2:A p5:A"},
			{"a segment minus an excluded segment", models.Audience{Segments: []int64{onA}, ExcludeSegments: []int64{onC}}, "p1:A p2:A p5:A"},
			{"two segments of one list", models.Audience{Segments: []int64{onA, onAParis}}, "p1:A p2:A p5:A p6:A"},
			{"segments of two lists", models.Audience{Segments: []int64{onB, onC}}, "p2:A p4:B p5:A p6:A p7:C"},
			{"a list and a segment of another", models.Audience{Lists: []int64{C}, Segments: []int64{onAParis}}, "p2:A p6:C p7:C"},
			{"two lists minus a segment", models.Audience{Lists: []int64{A, C}, ExcludeSegments: []int64{onB}}, "p1:A p6:A p7:C"},
		} {
			c := audienceCampaign(t, s, &models.Campaign{Name: tc.name, FromEmail: "news@example.com"}, tc.a)
			n, err := s.CountCampaignAudience(ctx, c.ID)
			if err != nil {
				t.Fatal(err)
			}
			startAndMaterialize(t, s, c.ID, 2) // tiny batches
			var rows []struct {
				Email  string
				ListID int64
			}
			if err := s.DB().Raw(`SELECT s.email, d.list_id FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id
				WHERE d.campaign_id = ? ORDER BY s.email`, c.ID).Scan(&rows).Error; err != nil {
				t.Fatal(err)
			}
			name := map[int64]string{A: "A", B: "B", C: "C"}
			var got []string
			for _, r := range rows {
				got = append(got, strings.TrimSuffix(r.Email, "@example.com")+":"+name[r.ListID])
			}
			if strings.Join(got, " ") != tc.want {
				t.Errorf("%s: materialised %v, want %s", tc.name, got, tc.want)
			}
			if n != int64(len(rows)) {
				t.Errorf("%s: live count %d, materialised %d", tc.name, n, len(rows))
			}
		}
	})
}

// TestMaterializeTwoNodes: two stores (two nodes) materialise the same
// campaigns at once, a segment's and a list's; everyone is written once.
// Before the campaign row was locked, the second node's batch found the
// first's rows already written, took it for the end of the audience and
// moved the cursor past everyone left.
func TestMaterializeTwoNodes(t *testing.T) {
	eachTwoStores(t, materializeTwoNodes)
}

func materializeTwoNodes(t *testing.T, a, b *models.Store) {
	ctx := context.Background()
	list := &models.List{Name: "Everyone", Optin: models.OptinSingle, Visibility: models.ListPublic}
	if err := a.CreateList(ctx, list); err != nil {
		t.Fatal(err)
	}
	const n = 3000
	now := time.Now().UTC()
	if err := a.DB().Exec(`WITH RECURSIVE g(i) AS (SELECT CAST(1 AS integer) UNION ALL SELECT i + 1 FROM g WHERE i < CAST(? AS integer))
		INSERT INTO subscribers (email, name, attributes, status, created_at, updated_at)
		SELECT 'p' || i || '@example.com', '', '{"n":' || i || '}', 'active', ?, ? FROM g`, n, now, now).Error; err != nil {
		t.Fatal(err)
	}
	if err := a.DB().Exec(`INSERT INTO subscriptions (subscriber_id, list_id, status, created_at, updated_at)
		SELECT id, ?, 'confirmed', ?, ? FROM subscribers`, list.ID, now, now).Error; err != nil {
		t.Fatal(err)
	}
	odd := &models.Segment{Name: "Every other", Conditions: models.Conditions{Groups: []models.ConditionGroup{{Conditions: []models.Condition{
		{Field: models.FieldAttribute, Key: "n", Op: "greater_than", Value: "0"},
	}}}}}
	if err := a.CreateSegment(ctx, odd); err != nil {
		t.Fatal(err)
	}
	for _, aud := range []models.Audience{{Segments: []int64{odd.ID}}, {Lists: []int64{list.ID}}} {
		c := audienceCampaign(t, a, &models.Campaign{Name: fmt.Sprint(aud), FromEmail: "news@example.com"}, aud)
		if err := a.StartCampaign(ctx, c.ID); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i, s := range []*models.Store{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for done := false; !done && errs[i] == nil; {
					done, errs[i] = s.MaterializeCampaign(ctx, c.ID, 100)
				}
			}()
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatal(err)
		}
		var got []int64
		if err := a.DB().Raw("SELECT COUNT(*) FROM deliveries WHERE campaign_id = ?", c.ID).Scan(&got).Error; err != nil {
			t.Fatal(err)
		}
		p, err := a.CampaignProgress(ctx, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got[0] != n || p.Total() != n {
			t.Errorf("%v: %d deliveries, progress total %d, want %d", aud, got[0], p.Total(), n)
		}
	}
}

// audienceCampaign creates the draft c with the audience a.
func audienceCampaign(t *testing.T, s *models.Store, c *models.Campaign, a models.Audience) *models.Campaign {
	t.Helper()
	ctx := context.Background()
	if err := s.CreateCampaign(ctx, c, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.SetCampaignAudience(ctx, c.ID, a); err != nil {
		t.Fatal(err)
	}
	return c
}

// startAndMaterialize starts campaign id and writes its deliveries, batch
// rows at a time.
func startAndMaterialize(t *testing.T, s *models.Store, id int64, batch int) {
	t.Helper()
	ctx := context.Background()
	if err := s.StartCampaign(ctx, id); err != nil {
		t.Fatal(err)
	}
	for done := false; !done; {
		var err error
		if done, err = s.MaterializeCampaign(ctx, id, batch); err != nil {
			t.Fatal(err)
		}
	}
}
