package models

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// TestSearchWindowFallsBack shrinks the search window so that common
// prefixes take the windowed walk, and checks that pages still cover every
// match exactly once, also where the window comes up short.
func TestSearchWindowFallsBack(t *testing.T) {
	oldW := searchWindow
	searchWindow = 6
	t.Cleanup(func() { searchWindow = oldW })
	s := sqliteStore(t)
	id, opts := startImport(t, s, ImportUpdate)
	var b strings.Builder
	b.WriteString("email,name\n")
	for i := range 60 {
		// "a…" addresses are dense among old rows and sparse among new ones.
		prefix := "b"
		if i < 20 || i%9 == 0 {
			prefix = "a"
		}
		fmt.Fprintf(&b, "%s%02d@example.com,N%d\n", prefix, i, i)
	}
	data := b.String()
	if err := s.RunImport(context.Background(), id, strings.NewReader(data), int64(len(data)), opts); err != nil {
		t.Fatal(err)
	}
	for _, q := range []SubscriberQuery{{Search: "a"}, {Search: "b"}, {Search: "n"}, {Search: "a", ListID: opts.ListID}, {Search: "a1"}, {Search: "1@e"}, {Search: "0@e", ListID: opts.ListID}} {
		q.Limit = 4
		var want []int64
		pat := q.Search + "%"
		if len(q.Search) >= MinContains {
			pat = "%" + pat
		}
		if err := s.db.Raw(`SELECT s.id FROM subscribers s WHERE (lower(s.email) LIKE ? OR lower(s.name) LIKE ?)
			AND (? = 0 OR EXISTS (SELECT 1 FROM subscriptions m WHERE m.subscriber_id = s.id AND m.list_id = ?))
			ORDER BY s.id DESC`, pat, pat, q.ListID, q.ListID).Scan(&want).Error; err != nil {
			t.Fatal(err)
		}
		var got []int64
		for {
			page, err := s.SearchSubscribers(context.Background(), q)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range page.Rows {
				got = append(got, r.ID)
			}
			if page.Next == 0 {
				break
			}
			q.Before = page.Next
		}
		if !slices.Equal(got, want) || len(want) == 0 {
			t.Errorf("%q: pages gave %v, want %v", q.Search, got, want)
		}
	}
}
