package models

import (
	"context"
	"fmt"
	"time"
)

// WebhookSeen records key (a provider's signature or token) as seen at
// now, and reports whether it was new: false means a post with the same
// key was accepted within the window, a replay. Keys older than window
// are forgotten (the caller refuses posts that old by their timestamp).
// The table is shared by every node, so a replay to another node is
// caught too.
func (s *Store) WebhookSeen(ctx context.Context, key string, now time.Time, window time.Duration) (bool, error) {
	db := s.conn(ctx)
	if err := db.Exec(`DELETE FROM webhook_seen WHERE seen_at < ?`, now.Add(-window).UTC()).Error; err != nil {
		return false, fmt.Errorf("models: webhook seen: %w", err)
	}
	res := db.Exec(`INSERT INTO webhook_seen (key, seen_at) VALUES (?, ?) ON CONFLICT (key) DO NOTHING`, key, now.UTC())
	if res.Error != nil {
		return false, fmt.Errorf("models: webhook seen: %w", res.Error)
	}
	return res.RowsAffected == 1, nil
}
