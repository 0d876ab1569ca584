package mailer

import (
	"context"
	"sync"
	"time"

	"github.com/herald-mail/herald/models"
)

// outcomes holds the outcomes not yet in the database and bounds them. A
// delivery worker waits (wait) before it starts a message while twice as
// many outcomes as connections are open are unrecorded, so a crash can
// repeat only what the last writes held and what was on the wire, never a
// backlog; the writer (writeResults) takes them in batches and releases
// the room when its transaction commits.
type outcomes struct {
	mu         sync.Mutex
	room       *sync.Cond // broadcast when unrecorded falls or the engine stops
	pending    []models.Outcome
	unrecorded int // pending plus the batch being written
	closed     bool
	flushNow   chan struct{} // the writer: half the bound is pending, or closing
	// conns counts the open connection workers; the bound is twice that.
	conns int
}

func newOutcomes() *outcomes {
	o := &outcomes{flushNow: make(chan struct{}, 1)}
	o.room = sync.NewCond(&o.mu)
	return o
}

// bound is how many unrecorded outcomes let a worker start a message.
func (q *outcomes) bound() int { return 2 * max(1, q.conns) }

// add queues an outcome for the writer; it never blocks (the claim path
// settles rows too).
func (q *outcomes) add(o models.Outcome) {
	q.mu.Lock()
	q.pending = append(q.pending, o)
	q.unrecorded++
	full := len(q.pending) >= q.bound()/2
	q.mu.Unlock()
	if full {
		signal(q.flushNow)
	}
}

// wait blocks while the unrecorded outcomes reach the bound; false when
// ctx ended meanwhile.
func (q *outcomes) wait(ctx context.Context) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	for q.unrecorded >= q.bound() && ctx.Err() == nil && !q.closed {
		signal(q.flushNow)
		q.room.Wait()
	}
	return ctx.Err() == nil
}

// take hands the writer everything pending (up to max).
func (q *outcomes) take(max int) []models.Outcome {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := min(len(q.pending), max)
	batch := append([]models.Outcome(nil), q.pending[:n]...)
	q.pending = append(q.pending[:0], q.pending[n:]...)
	return batch
}

// recorded releases the room of n outcomes the writer committed.
func (q *outcomes) recorded(n int) {
	q.mu.Lock()
	q.unrecorded -= n
	q.mu.Unlock()
	q.room.Broadcast()
}

// connOpened and connClosed follow the open connection workers.
func (q *outcomes) connOpened() {
	q.mu.Lock()
	q.conns++
	q.mu.Unlock()
}

func (q *outcomes) connClosed() {
	q.mu.Lock()
	q.conns--
	q.mu.Unlock()
	q.room.Broadcast()
}

// close makes the writer write what is left and stop.
func (q *outcomes) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.room.Broadcast()
	signal(q.flushNow)
}

// drained reports whether close was called and nothing is pending.
func (q *outcomes) drained() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.closed && len(q.pending) == 0
}

// wake unblocks waiting workers when the engine stops. It broadcasts
// under the lock: a worker between its look at ctx and its Wait would
// miss a broadcast made outside it.
func (q *outcomes) wake(ctx context.Context) {
	<-ctx.Done()
	q.mu.Lock()
	q.room.Broadcast()
	q.mu.Unlock()
}

// dbLink follows whether the database answers: since when the node has
// been connected without an error, which gates reclaiming other nodes'
// expired leases.
type dbLink struct {
	mu    sync.Mutex
	since time.Time // zero while the last database call failed
}

func (l *dbLink) ok(now time.Time) {
	l.mu.Lock()
	if l.since.IsZero() {
		l.since = now
	}
	l.mu.Unlock()
}

func (l *dbLink) failed() {
	l.mu.Lock()
	l.since = time.Time{}
	l.mu.Unlock()
}

// connectedFor is how long the database has answered without an error.
func (l *dbLink) connectedFor(now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.since.IsZero() {
		return 0
	}
	return now.Sub(l.since)
}

// note books the result of a database call.
func (l *dbLink) note(err error) {
	if err != nil {
		l.failed()
		return
	}
	l.ok(time.Now())
}
