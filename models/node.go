package models

import (
	"context"
	"fmt"
	"time"
)

// Node is one engine running on this database (a `herald serve`
// process), as its last heartbeat left it.
type Node struct {
	ID          string
	StartedAt   time.Time
	HeartbeatAt time.Time
}

// nodeForgotten is how long the row of a node that stopped beating without
// leaving (a crash) is kept, for the record, before a beat deletes it.
const nodeForgotten = 24 * time.Hour

// BeatNode records that node id, started at started, is alive at now: it
// adds the node's row or brings its times up to date (a node restarted
// under the same id starts afresh). Rows of nodes silent for a day go.
// Times are the nodes' own clocks: nodes are expected to keep them in step
// (NTP) to well under a heartbeat. It runs on the mailer's connection (see
// Store.queue): on SQLite a write from another connection would empty that
// connection's page cache every heartbeat.
func (s *Store) BeatNode(ctx context.Context, id string, started, now time.Time) error {
	db := s.hot().conn(ctx)
	err := db.Exec(`INSERT INTO nodes (id, started_at, heartbeat_at) VALUES (?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at`,
		id, dbTime(started), dbTime(now)).Error
	if err == nil {
		err = db.Exec(`DELETE FROM nodes WHERE heartbeat_at < ?`, dbTime(now.Add(-nodeForgotten))).Error
	}
	if err != nil {
		return fmt.Errorf("models: node heartbeat: %w", err)
	}
	return nil
}

// LiveNodes returns the nodes that beat at or after since, by id.
func (s *Store) LiveNodes(ctx context.Context, since time.Time) ([]Node, error) {
	var out []Node
	if err := s.hot().conn(ctx).Raw(`SELECT id, started_at, heartbeat_at FROM nodes WHERE heartbeat_at >= ? ORDER BY id`,
		dbTime(since)).Scan(&out).Error; err != nil {
		return nil, fmt.Errorf("models: live nodes: %w", err)
	}
	return out, nil
}

// LeaveNode deletes node id's row: it stopped cleanly, and the others may
// take its share at once rather than after its heartbeat expires.
func (s *Store) LeaveNode(ctx context.Context, id string) error {
	if err := s.hot().conn(ctx).Exec(`DELETE FROM nodes WHERE id = ?`, id).Error; err != nil {
		return fmt.Errorf("models: node leave: %w", err)
	}
	return nil
}
