package web

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/herald-mail/herald/mailer/esp"
)

// webhookMaxAge is how old (or how far ahead) a signed webhook timestamp
// may be. A post within it is remembered for as long, so the same post
// cannot be applied twice; older ones are refused by their timestamp.
const webhookMaxAge = 5 * time.Minute

// ReplayStore remembers accepted webhook posts; models.Store keeps them in
// the database, shared by every node.
type ReplayStore interface {
	WebhookSeen(ctx context.Context, key string, now time.Time, window time.Duration) (bool, error)
}

// memoryReplays is the ReplayStore of a single process (tests and a
// Webhooks built without a store): a replay to another node would pass.
type memoryReplays struct {
	mu   sync.Mutex
	seen map[string]time.Time
}

func (m *memoryReplays) WebhookSeen(_ context.Context, key string, now time.Time, window time.Duration) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.seen == nil {
		m.seen = map[string]time.Time{}
	}
	for k, t := range m.seen {
		if t.Before(now.Add(-window)) {
			delete(m.seen, k)
		}
	}
	if _, ok := m.seen[key]; ok {
		return false, nil
	}
	m.seen[key] = now
	return true, nil
}

// checkFresh refuses a signed timestamp (Unix seconds) more than
// webhookMaxAge from now, and a post already accepted under key.
func (w *Webhooks) checkFresh(ctx context.Context, provider, ts, key string) error {
	sec, err := strconv.ParseInt(ts, 10, 64)
	now := w.o.Now()
	if err != nil || now.Sub(time.Unix(sec, 0)).Abs() > webhookMaxAge {
		return fmt.Errorf("%w: %s timestamp is missing or more than %v from now (a delayed or replayed post)", esp.ErrSignature, provider, webhookMaxAge)
	}
	sum := sha256.Sum256([]byte(key))
	fresh, err := w.o.Replays.WebhookSeen(ctx, provider+":"+hex.EncodeToString(sum[:]), now, webhookMaxAge)
	if err != nil {
		return err
	}
	if !fresh {
		return fmt.Errorf("%w: this %s post was already received (a replay)", esp.ErrSignature, provider)
	}
	return nil
}
