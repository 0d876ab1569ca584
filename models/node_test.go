package models_test

import (
	"context"
	"testing"
	"time"

	"github.com/herald-mail/herald/internal/testdb"
	"github.com/herald-mail/herald/models"
)

// TestNodeRegistry: a node counts as live from its first beat until its
// heartbeat is older than the cut-off or it leaves; a restart under the
// same id is one node with a new start; a row silent for a day is deleted
// by the next beat.
func TestNodeRegistry(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		t0 := time.Now().Truncate(time.Second)
		ids := func(since time.Time) []string {
			t.Helper()
			nodes, err := s.LiveNodes(ctx, since)
			if err != nil {
				t.Fatal(err)
			}
			var out []string
			for _, n := range nodes {
				out = append(out, n.ID)
			}
			return out
		}
		beat := func(id string, started, now time.Time) {
			t.Helper()
			if err := s.BeatNode(ctx, id, started, now); err != nil {
				t.Fatal(err)
			}
		}
		beat("b", t0, t0)
		beat("a", t0, t0.Add(2*time.Second))
		if got := ids(t0.Add(-time.Second)); len(got) != 2 || got[0] != "a" || got[1] != "b" {
			t.Fatalf("live after two beats = %v, want [a b]", got)
		}
		if got := ids(t0.Add(time.Second)); len(got) != 1 || got[0] != "a" {
			t.Errorf("live since b's heartbeat expired = %v, want [a]", got)
		}

		// b restarts under its id: still one row, with the new start.
		restart := t0.Add(5 * time.Second)
		beat("b", restart, restart)
		nodes, err := s.LiveNodes(ctx, t0.Add(-time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if len(nodes) != 2 || nodes[1].ID != "b" || !nodes[1].StartedAt.Equal(restart) || !nodes[1].HeartbeatAt.Equal(restart) {
			t.Errorf("after b's restart: %+v, want b started and beating at %v", nodes, restart)
		}

		if err := s.LeaveNode(ctx, "a"); err != nil {
			t.Fatal(err)
		}
		if got := ids(t0.Add(-time.Second)); len(got) != 1 || got[0] != "b" {
			t.Errorf("live after a left = %v, want [b]", got)
		}

		// A day later, a new node's beat deletes b's forgotten row.
		beat("c", t0.Add(25*time.Hour), t0.Add(25*time.Hour))
		var rows int64
		if err := s.DB().Raw("SELECT COUNT(*) FROM nodes").Scan(&rows).Error; err != nil {
			t.Fatal(err)
		}
		if rows != 1 {
			t.Errorf("%d node rows a day after b's last beat, want 1 (c's)", rows)
		}
	})
}
