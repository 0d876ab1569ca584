package mailer_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/herald-mail/herald/internal/testdb"
	"github.com/herald-mail/herald/mailer"
	"github.com/herald-mail/herald/models"
)

// heldStore is a real store whose outcome writes wait until the test lets
// them through.
type heldStore struct {
	*models.Store
	open chan struct{} // closed: writes go through
}

func (s *heldStore) RecordOutcomes(ctx context.Context, outs []models.Outcome) (int, error) {
	select {
	case <-s.open:
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	return s.Store.RecordOutcomes(ctx, outs)
}

// While the database takes no outcomes, the workers stop after about
// twice their connections' worth of messages instead of sending on with
// the outcomes piling up in memory; the node keeps every row it holds
// leased meanwhile, for several leases, so it never takes one back and
// sends it again; once writes go through, the campaign completes with
// every row recorded and every recipient served once.
func TestUnrecordedOutcomesBounded(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		const conns, n = 3, 400
		setDefaultRule(t, s, 10000, conns)
		mx := startMX(t, "127.0.0.1:0", true, nil)
		cid := campaign(t, s, seed(t, s, n, []string{"held.test"}), "news@sender.test", nil, nil)
		hs := &heldStore{Store: s, open: make(chan struct{})}
		const lease = 2 * time.Second
		e := mailer.New(mailer.Options{Logger: testLogger(t), Secrets: []string{"s"}, Lease: lease, Heartbeat: 500 * time.Millisecond,
			Transport: mailer.NewDirect(mailer.DirectOptions{MXOverride: mx.Addr})}, hs)
		runEngine(t, e)
		if err := e.StartCampaign(ctx, cid); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 10*time.Second, "the first messages", func() bool { return mx.count() > 0 })
		// The count settles once the workers wait.
		last := -1
		for last != mx.count() {
			last = mx.count()
			time.Sleep(500 * time.Millisecond)
		}
		// 2×conns unrecorded let no worker start; each connection may
		// have begun one more before the last outcome joined them.
		bound := 2*conns + conns
		t.Logf("%d messages received while no outcome could be written (bound %d)", last, bound)
		if last > bound {
			t.Errorf("%d messages went out with their outcomes unwritten; want at most %d", last, bound)
		}
		// Three leases on, the rows are still this node's: nothing was
		// claimed again and sent a second time.
		time.Sleep(3 * lease)
		if got := mx.count(); got != last {
			t.Errorf("%d messages after three leases with the outcomes held, want still %d", got, last)
		}
		close(hs.open)
		waitFor(t, 30*time.Second, "the campaign to finish", func() bool {
			return progress(t, s, cid).Status == models.CampaignFinished
		})
		if p := progress(t, s, cid); p.Sent != n || mx.count() != n {
			t.Errorf("after the writes resumed: %d sent, %d received; want %d", p.Sent, mx.count(), n)
		}
		seen := map[string]bool{}
		for _, m := range mx.messages() {
			if seen[m.To] {
				t.Errorf("%s received the campaign twice", m.To)
			}
			seen[m.To] = true
		}
	})
}

// flakyStore is a real store whose claims fail while down is set, as
// when the database is unreachable, and which notes the reclaim scope of
// each claim.
type flakyStore struct {
	*models.Store
	mu     sync.Mutex
	down   bool
	claims []claimSeen
}

type claimSeen struct {
	at      time.Time
	reclaim models.Reclaim
}

func (s *flakyStore) ClaimDeliveries(ctx context.Context, req models.ClaimRequest) ([]models.Claimed, error) {
	s.mu.Lock()
	down := s.down
	if !down {
		s.claims = append(s.claims, claimSeen{time.Now(), req.Reclaim})
	}
	s.mu.Unlock()
	if down {
		return nil, errors.New("connection refused")
	}
	return s.Store.ClaimDeliveries(ctx, req)
}

func (s *flakyStore) setDown(down bool) {
	s.mu.Lock()
	s.down = down
	s.mu.Unlock()
}

// firstExpired is when the first claim since t asked for other nodes'
// expired leases, and whether a claim since asked for disowned rows.
func (s *flakyStore) firstExpired(since time.Time) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	disowned := false
	for _, c := range s.claims {
		if c.at.Before(since) {
			continue
		}
		if c.reclaim == models.ReclaimExpired {
			return c.at, disowned
		}
		disowned = disowned || c.reclaim == models.ReclaimDisowned
	}
	return time.Time{}, disowned
}

// A node takes over other nodes' expired leases only once the database
// has answered it for a whole lease: at its start and after an outage,
// it reclaims only the rows restarts disowned until then.
func TestReclaimWaitsForSteadyDatabase(t *testing.T) {
	s := testdb.SQLite(t)
	const lease = 2 * time.Second
	fs := &flakyStore{Store: s}
	start := time.Now()
	e := mailer.New(mailer.Options{Logger: quietLogger(), Secrets: []string{"s"}, Lease: lease, Heartbeat: 500 * time.Millisecond,
		PollInterval: 50 * time.Millisecond}, fs)
	runEngine(t, e)
	var first time.Time
	waitFor(t, 3*lease, "a claim reclaiming expired leases", func() bool { first, _ = fs.firstExpired(start); return !first.IsZero() })
	if _, disowned := fs.firstExpired(start); first.Sub(start) < lease || !disowned {
		t.Errorf("first reclaim of expired leases %v after the start (disowned rows reclaimed before: %v); want after the %v lease, disowned ones before",
			first.Sub(start), disowned, lease)
	}
	fs.setDown(true)
	time.Sleep(300 * time.Millisecond)
	back := time.Now()
	fs.setDown(false)
	waitFor(t, 3*lease, "a claim reclaiming expired leases after the outage", func() bool {
		first, _ = fs.firstExpired(back)
		return !first.IsZero()
	})
	if _, disowned := fs.firstExpired(back); first.Sub(back) < lease || !disowned {
		t.Errorf("after the outage, expired leases reclaimed %v after the database came back (disowned before: %v); want after %v",
			first.Sub(back), disowned, lease)
	}
}
