package models_test

import (
	"context"
	"testing"
	"time"

	"github.com/herald-mail/herald/internal/testdb"
	"github.com/herald-mail/herald/models"
)

// TestSessionCommitSkipsIdleRenewals: a commit that only pushes the expiry
// on by less than a minute writes nothing; new data, a longer push, or a
// change written by another node in between do write.
func TestSessionCommitSkipsIdleRenewals(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ss := s.Sessions()
		stored := func() (string, float64) {
			var row struct {
				Data   []byte
				Expiry float64
			}
			if err := s.DB().Raw("SELECT data, expiry FROM sessions WHERE token = 'tok'").Scan(&row).Error; err != nil {
				t.Fatal(err)
			}
			return string(row.Data), row.Expiry
		}
		t0 := time.Now().Add(time.Hour).Truncate(time.Second)
		if err := ss.Commit("tok", []byte("a"), t0); err != nil {
			t.Fatal(err)
		}
		if err := ss.Commit("tok", []byte("a"), t0.Add(30*time.Second)); err != nil {
			t.Fatal(err)
		}
		if d, e := stored(); d != "a" || e != float64(t0.Unix()) {
			t.Errorf("after a 30 s renewal: %q expiring %v; want the first write kept (%v)", d, e, t0.Unix())
		}
		if err := ss.Commit("tok", []byte("a"), t0.Add(2*time.Minute)); err != nil {
			t.Fatal(err)
		}
		if _, e := stored(); e != float64(t0.Add(2*time.Minute).Unix()) {
			t.Errorf("after a 2 min renewal the expiry is %v; want it written", e)
		}
		if err := ss.Commit("tok", []byte("b"), t0.Add(2*time.Minute)); err != nil {
			t.Fatal(err)
		}
		if d, _ := stored(); d != "b" {
			t.Errorf("new data not written: %q", d)
		}
		// Another node writes "c"; this one reads it, then writes "b" back.
		if err := s.Sessions().Commit("tok", []byte("c"), t0.Add(2*time.Minute)); err != nil {
			t.Fatal(err)
		}
		if b, ok, err := ss.Find("tok"); err != nil || !ok || string(b) != "c" {
			t.Fatalf("Find() = %q, %v, %v", b, ok, err)
		}
		if err := ss.Commit("tok", []byte("b"), t0.Add(2*time.Minute)); err != nil {
			t.Fatal(err)
		}
		if d, _ := stored(); d != "b" {
			t.Errorf("after another node's write, %q was kept; want this node's new write", d)
		}
		// Once a node's cleanup deleted an expired session, a commit of it
		// is written, not skipped as unchanged.
		past := time.Now().Add(-time.Minute)
		if err := ss.Commit("gone", []byte("x"), past); err != nil {
			t.Fatal(err)
		}
		if _, err := s.DeleteExpiredSessions(context.Background()); err != nil {
			t.Fatal(err)
		}
		if err := ss.Commit("gone", []byte("x"), past.Add(30*time.Second)); err != nil {
			t.Fatal(err)
		}
		var n int64
		if err := s.DB().Raw("SELECT COUNT(*) FROM sessions WHERE token = 'gone'").Scan(&n).Error; err != nil || n != 1 {
			t.Errorf("session committed after DeleteExpiredSessions: %d rows (%v), want 1", n, err)
		}
	})
}

func TestWebhookSeen(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		now := time.Now()
		steps := []struct {
			key  string
			at   time.Time
			want bool
		}{
			{"sig-a", now, true},
			{"sig-a", now.Add(time.Minute), false}, // a replay within the window
			{"sig-b", now.Add(time.Minute), true},
			{"sig-a", now.Add(10 * time.Minute), true}, // forgotten: its timestamp is refused anyway
		}
		for i, st := range steps {
			got, err := s.WebhookSeen(ctx, st.key, st.at, 5*time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			if got != st.want {
				t.Errorf("step %d: WebhookSeen(%q) = %v, want %v", i, st.key, got, st.want)
			}
		}
	})
}
