package models

import (
	"context"
	"testing"
)

// The SQLite insert numbers new subscribers itself. When the unique index
// refuses one of them (an address inserted meanwhile), the others still get
// their own ids and the refused one gets none, so it is reported instead
// of being taken for a new subscriber.
func TestInsertSubscribersNumbersRowsAndSkipsRefused(t *testing.T) {
	s := sqliteStore(t)
	ctx := context.Background()
	taken := &Subscriber{Email: "taken@x.test"}
	if err := s.CreateSubscriber(ctx, taken, nil, Evidence{Source: SourceAdmin}); err != nil {
		t.Fatal(err)
	}
	row := func(email string) *importRow {
		r := &importRow{email: email, key: s.emailKey(email)}
		r.json = appendJSONString([]byte("["), email)
		r.json = append(r.json, `,"Name of `+email+`","{}"]`...)
		return r
	}
	for _, emails := range [][]string{{"b@x.test", "a@x.test", "c@x.test"}, {"d@x.test", "taken@x.test", "e@x.test"}} {
		tx, err := s.sql.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		w := &batchWriter{s: s, ctx: ctx, tx: tx, now: dbNow()}
		var fresh []*importRow
		for _, e := range emails {
			fresh = append(fresh, row(e))
		}
		ids, err := w.insertSubscribers(fresh)
		if err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		for _, e := range emails {
			id, ok := ids[e]
			if e == "taken@x.test" {
				if ok {
					t.Errorf("refused address %s got id %d", e, id)
				}
				continue
			}
			var got struct{ Email, Name string }
			if err := s.db.Raw("SELECT email, name FROM subscribers WHERE id = ?", id).Scan(&got).Error; err != nil || got.Email != e || got.Name != "Name of "+e {
				t.Errorf("id %d for %s holds %+v (%v)", id, e, got, err)
			}
		}
	}
	var n int64
	s.db.Raw("SELECT COUNT(*) FROM subscribers").Scan(&n)
	if n != 6 {
		t.Errorf("%d subscribers, want 6", n)
	}
}
