package models_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/herald-mail/herald/internal/testdb"
	"github.com/herald-mail/herald/models"
)

// seedSearch imports n subscribers into list a (every third unconfirmed,
// every fifth unsubscribed), puts every fourth also on list b, and
// blocklists two. Names are "Name <i>", addresses p<i>@example.com.
func seedSearch(t *testing.T, s *models.Store, n int) (a, b *models.List) {
	t.Helper()
	ctx := context.Background()
	a, b = newList(t, s, "A"), newList(t, s, "B")
	var buf strings.Builder
	buf.WriteString("email,name,city\n")
	for i := range n {
		fmt.Fprintf(&buf, "p%d@example.com,Name %d,City %d\n", i, i, i%7)
	}
	if _, err := runImport(t, s, buf.String(), importOpts(a.ID, models.ImportUpdate)); err != nil {
		t.Fatal(err)
	}
	db := s.DB()
	for _, q := range []string{
		"UPDATE subscriptions SET status = 'unconfirmed' WHERE subscriber_id % 3 = 0",
		"UPDATE subscriptions SET status = 'unsubscribed' WHERE subscriber_id % 5 = 0",
	} {
		if err := db.Exec(q).Error; err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Exec("INSERT INTO subscriptions (subscriber_id, list_id, status, created_at, updated_at) SELECT id, ?, 'confirmed', created_at, created_at FROM subscribers WHERE id % 4 = 0", b.ID).Error; err != nil {
		t.Fatal(err)
	}
	for _, id := range []int64{2, 7} {
		if err := s.SetBlocklisted(ctx, id, true, models.Evidence{Source: models.SourceAdmin}); err != nil {
			t.Fatal(err)
		}
	}
	return a, b
}

// expectedIDs answers q by brute force, newest first.
func expectedIDs(t *testing.T, s *models.Store, q models.SubscriberQuery) []int64 {
	t.Helper()
	var subs []struct {
		ID                  int64
		Email, Name, Status string
	}
	if err := s.DB().Raw("SELECT id, email, name, status FROM subscribers").Scan(&subs).Error; err != nil {
		t.Fatal(err)
	}
	member := map[int64]string{}
	if q.ListID != 0 {
		var ms []struct {
			SubscriberID int64
			Status       string
		}
		if err := s.DB().Raw("SELECT subscriber_id, status FROM subscriptions WHERE list_id = ?", q.ListID).Scan(&ms).Error; err != nil {
			t.Fatal(err)
		}
		for _, m := range ms {
			member[m.SubscriberID] = m.Status
		}
	}
	term := strings.ToLower(q.Search)
	var ids []int64
	for _, sub := range subs {
		st, ok := member[sub.ID]
		switch {
		case q.ListID != 0 && !ok:
		case q.ListID != 0 && q.Status != "" && st != q.Status:
		case q.ListID == 0 && q.Status != "" && sub.Status != q.Status:
		case term != "" && !matches(strings.ToLower(sub.Email), term) && !matches(strings.ToLower(sub.Name), term):
		default:
			ids = append(ids, sub.ID)
		}
	}
	slices.Sort(ids)
	slices.Reverse(ids)
	return ids
}

// matches is the search's meaning: a term of three or more characters
// anywhere, a shorter one at the start.
func matches(s, term string) bool {
	if len([]rune(term)) >= models.MinContains {
		return strings.Contains(s, term)
	}
	return strings.HasPrefix(s, term)
}

// walkPages follows the cursor to the end and returns every id seen.
func walkPages(t *testing.T, s *models.Store, q models.SubscriberQuery) []int64 {
	t.Helper()
	var got []int64
	for pages := 0; ; pages++ {
		if pages > 1000 {
			t.Fatalf("%+v: the cursor never ends", q)
		}
		page, err := s.SearchSubscribers(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range page.Rows {
			got = append(got, r.ID)
			if q.ListID != 0 && r.ListStatus == "" {
				t.Errorf("%+v: row %d has no list status", q, r.ID)
			}
		}
		if page.Next == 0 {
			return got
		}
		if len(page.Rows) != q.Limit {
			t.Errorf("%+v: a page before the last has %d rows", q, len(page.Rows))
		}
		q.Before = page.Next
	}
}

func TestSearchPagesCoverEveryRowOnce(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		a, b := seedSearch(t, s, 130)
		for _, q := range []models.SubscriberQuery{
			{},
			{ListID: a.ID},
			{ListID: b.ID},
			{ListID: a.ID, Status: models.SubUnconfirmed},
			{ListID: a.ID, Status: models.SubConfirmed},
			{Status: models.SubscriberBlocklisted},
			{Status: models.SubscriberActive},
			{Search: "P1"},
			{Search: "name 12"},
			{Search: "p"},
			{Search: "nobody"},
			{Search: "p_"}, // LIKE wildcards are literal
			{Search: "e_1"},
			{Search: "ame 1"},  // inside the name
			{Search: "xample"}, // inside every address
			{ListID: a.ID, Search: "p1"},
			{ListID: b.ID, Status: models.SubConfirmed, Search: "name"},
		} {
			q.Limit = 7
			want := expectedIDs(t, s, q)
			got := walkPages(t, s, q)
			if !slices.Equal(got, want) {
				t.Errorf("%+v: pages gave %d ids %v\nwant %d ids %v", q, len(got), got, len(want), want)
			}
		}
	})
}

func TestExportRoundTrip(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		a, _ := seedSearch(t, s, 40)
		p4, err := s.SubscriberByEmail(ctx, "p4@example.com")
		if err != nil {
			t.Fatal(err)
		}
		if err := s.UpdateSubscriber(ctx, &models.Subscriber{ID: p4.ID, Email: "p4@example.com", Name: "=HYPERLINK(\"x\")",
			Attributes: models.Attributes{"city": "Lyon, \"centre\""}}); err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if err := s.ExportSubscribers(ctx, models.SubscriberQuery{ListID: a.ID}, &buf); err != nil {
			t.Fatal(err)
		}
		recs, err := csv.NewReader(bytes.NewReader(buf.Bytes())).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(recs[0], ","); got != "email,name,status,attributes,created_at,list_status" {
			t.Fatalf("header = %s", got)
		}
		want := expectedIDs(t, s, models.SubscriberQuery{ListID: a.ID})
		if len(recs)-1 != len(want) {
			t.Fatalf("export has %d rows, want %d", len(recs)-1, len(want))
		}
		for _, r := range recs[1:] {
			sub, err := s.SubscriberByEmail(ctx, r[0])
			if err != nil {
				t.Fatalf("exported %q: %v", r[0], err)
			}
			var attrs map[string]any
			if err := json.Unmarshal([]byte(r[3]), &attrs); err != nil || fmt.Sprint(attrs) != fmt.Sprint(map[string]any(sub.Attributes)) {
				t.Errorf("%s attributes %q, want %v", r[0], r[3], sub.Attributes)
			}
			wantName := sub.Name
			if strings.HasPrefix(wantName, "=") {
				wantName = "'" + wantName // a spreadsheet must not run it
			}
			if r[1] != wantName || r[2] != sub.Status || r[5] == "" {
				t.Errorf("row %v, want name %q status %s", r, wantName, sub.Status)
			}
		}

		// The export imports back as it is.
		c := newList(t, s, "C")
		opts := importOpts(c.ID, models.ImportUpdate)
		opts.AttributeColumns = nil
		im, err := runImport(t, s, buf.String(), opts)
		if err != nil {
			t.Fatal(err)
		}
		blocked := 0
		for _, id := range want {
			if id == 2 || id == 7 {
				blocked++
			}
		}
		if im.Inserted != 0 || im.Updated != int64(len(want)-blocked) || im.Failed != int64(blocked) {
			t.Errorf("re-import = %+v, want every active member joined to C and the blocklisted refused", im)
		}
		cl, _ := s.List(ctx, c.ID)
		if cl.Confirmed != int64(len(want)-blocked) {
			t.Errorf("list C has %d confirmed, want %d", cl.Confirmed, len(want)-blocked)
		}

		// A search exports only its matches, without the list column.
		buf.Reset()
		if err := s.ExportSubscribers(ctx, models.SubscriberQuery{Search: "p1"}, &buf); err != nil {
			t.Fatal(err)
		}
		recs, _ = csv.NewReader(&buf).ReadAll()
		if len(recs[0]) != 5 || len(recs)-1 != len(expectedIDs(t, s, models.SubscriberQuery{Search: "p1"})) {
			t.Errorf("search export = %d rows of %d columns", len(recs)-1, len(recs[0]))
		}
	})
}

// TestSearchContainsFollowsChanges finds a surname in the middle of a name,
// counts matches, filters on an attribute, and keeps finding people after
// their address changes and forgetting them once deleted (the SQLite
// trigram table is kept in step by triggers).
func TestSearchContainsFollowsChanges(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		a, _ := seedSearch(t, s, 30)
		ids := func(q models.SubscriberQuery) []int64 {
			t.Helper()
			page, err := s.SearchSubscribers(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			var out []int64
			for _, r := range page.Rows {
				out = append(out, r.ID)
			}
			return out
		}
		p4, err := s.SubscriberByEmail(ctx, "p4@example.com")
		if err != nil {
			t.Fatal(err)
		}
		if err := s.UpdateSubscriber(ctx, &models.Subscriber{ID: p4.ID, Email: "ada.k@mail.test", Name: "Ada Mary Lovelace",
			Attributes: models.Attributes{"city": "Lyon"}}); err != nil {
			t.Fatal(err)
		}
		for _, term := range []string{"lovel", "MARY", "a.k@ma"} {
			if got := ids(models.SubscriberQuery{Search: term}); !slices.Equal(got, []int64{p4.ID}) {
				t.Errorf("search %q = %v, want [%d]", term, got, p4.ID)
			}
		}
		if got := ids(models.SubscriberQuery{Search: "p4@example"}); len(got) != 0 {
			t.Errorf("the old address is still found: %v", got)
		}
		if got := ids(models.SubscriberQuery{AttrKey: "city", AttrValue: "Lyon"}); !slices.Equal(got, []int64{p4.ID}) {
			t.Errorf("attribute city=Lyon = %v, want [%d]", got, p4.ID)
		}
		if got := ids(models.SubscriberQuery{AttrKey: "city", AttrValue: "City 3"}); len(got) != 4 { // 3, 10, 17, 24
			t.Errorf("attribute city=City 3 = %v, want 4 ids", got)
		}
		n, more, err := s.CountSubscribers(ctx, models.SubscriberQuery{Search: "xample", ListID: a.ID})
		if err != nil || n != 29 || more {
			t.Errorf("count = %d, %v, %v; want 29 (30 less the renamed one)", n, more, err)
		}
		if err := s.DeleteSubscriber(ctx, p4.ID, models.Evidence{Source: models.SourceAdmin}); err != nil {
			t.Fatal(err)
		}
		if got := ids(models.SubscriberQuery{Search: "lovel"}); len(got) != 0 {
			t.Errorf("a deleted subscriber is still found: %v", got)
		}
	})
}
