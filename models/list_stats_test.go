package models_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/herald-mail/herald/internal/testdb"
	"github.com/herald-mail/herald/models"
)

// The list counters follow statements that change many memberships at
// once (on PostgreSQL they are kept per statement): inserts, status
// updates, deletes cascaded from subscribers, and another list's deletion.
func TestListStatsFollowBulkStatements(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		a, b := newList(t, s, "A"), newList(t, s, "B")
		var data = "email,name,city\n"
		for i := range 300 {
			data += fmt.Sprintf("bulk%03d@example.com,N,Lyon\n", i)
		}
		for _, l := range []*models.List{a, b} {
			if im, err := runImport(t, s, data, importOpts(l.ID, models.ImportUpdate)); err != nil || im.Failed != 0 {
				t.Fatalf("import into %s: %v, %+v", l.Name, err, im)
			}
		}
		check := func(step string) {
			t.Helper()
			var real struct{ Confirmed, Unconfirmed, Unsubscribed int64 }
			if err := s.DB().Raw(`SELECT count(CASE WHEN status = 'confirmed' THEN 1 END) AS confirmed,
				count(CASE WHEN status = 'unconfirmed' THEN 1 END) AS unconfirmed,
				count(CASE WHEN status = 'unsubscribed' THEN 1 END) AS unsubscribed FROM subscriptions WHERE list_id = ?`, b.ID).Scan(&real).Error; err != nil {
				t.Fatal(err)
			}
			l, err := s.List(ctx, b.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got := [3]int64{l.Confirmed, l.Unconfirmed, l.Unsubscribed}; got != [3]int64{real.Confirmed, real.Unconfirmed, real.Unsubscribed} {
				t.Errorf("%s: counters %v, want %+v", step, got, real)
			}
		}
		check("after the imports")
		for _, q := range []string{
			"UPDATE subscriptions SET status = 'unconfirmed' WHERE subscriber_id % 3 = 0",
			"UPDATE subscriptions SET status = 'unsubscribed' WHERE subscriber_id % 7 = 0",
			"DELETE FROM subscribers WHERE id % 11 = 0",
			fmt.Sprintf("DELETE FROM lists WHERE id = %d", a.ID),
		} {
			if err := s.DB().Exec(q).Error; err != nil {
				t.Fatalf("%s: %v", q, err)
			}
			check(q)
		}
	})
}
