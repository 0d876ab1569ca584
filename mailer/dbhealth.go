package mailer

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// StoreError is returned by a Conn's Send when Herald's own database, not
// the destination, failed: the capture transport could not save the
// message, or the staging policy could not read its switch or allow list.
// Nothing was sent, and the failure says nothing about the recipient or
// the destination, so the engine records no outcome for it: it holds the
// job and sends it again once the database answers.
type StoreError struct {
	Err error
}

func (e *StoreError) Error() string { return "database: " + e.Err.Error() }

func (e *StoreError) Unwrap() error { return e.Err }

// Health is what the engine knows of its own state, for readiness checks.
type Health struct {
	// Running: Run has started and not returned.
	Running bool
	// DatabaseReachable is false from the moment the engine found its
	// database not answering until a ping succeeds again; meanwhile it
	// claims nothing and holds the jobs it has.
	DatabaseReachable bool
	// DownSince is when the database stopped answering (zero while it
	// answers); LastError is the error that showed it.
	DownSince time.Time
	LastError string
	// LastClaim is when a claim last succeeded (it may have found nothing
	// due); zero before the first.
	LastClaim time.Time
}

// Health reports the engine's state.
func (e *Engine) Health() Health {
	h := e.db.health()
	h.Running = e.running.Load()
	return h
}

// pingTimeout bounds one probe of the database: a server that does not
// answer within it counts as down.
const pingTimeout = 2 * time.Second

// dbHealth tracks whether the engine's database answers. Whoever meets a
// database error asks it (failed) whether the database is down; while it
// is, workers wait in waitUp and the claim loop probes it (recover) with
// backoff until it answers again.
type dbHealth struct {
	mu        sync.Mutex
	downSince time.Time
	lastErr   string
	lastClaim time.Time
	back      chan struct{} // closed when the database answers again; nil while it does
}

func (h *dbHealth) health() Health {
	h.mu.Lock()
	defer h.mu.Unlock()
	return Health{DatabaseReachable: h.back == nil, DownSince: h.downSince, LastError: h.lastErr, LastClaim: h.lastClaim}
}

// down reports whether the database is known not to answer.
func (h *dbHealth) down() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.back != nil
}

// markDown records that the database does not answer and reports whether
// that is news.
func (h *dbHealth) markDown(err error) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.lastErr = err.Error()
	if h.back != nil {
		return false
	}
	h.downSince, h.back = time.Now(), make(chan struct{})
	return true
}

// markUp records that the database answers again and wakes the waiters; it
// returns how long it was down (zero when it was not).
func (h *dbHealth) markUp() time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.back == nil {
		return 0
	}
	close(h.back)
	d := time.Since(h.downSince)
	h.back, h.downSince = nil, time.Time{}
	return d
}

func (h *dbHealth) claimed(t time.Time) {
	h.mu.Lock()
	h.lastClaim = t
	h.mu.Unlock()
}

// waitUp returns once the database answers, or with ctx's error.
func (h *dbHealth) waitUp(ctx context.Context) error {
	h.mu.Lock()
	back := h.back
	h.mu.Unlock()
	if back == nil {
		return nil
	}
	select {
	case <-back:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// unreachable reports whether err, met while using the database, means the
// database does not answer (a ping fails too). An error with the database
// answering (a bad row, a constraint) is the caller's to handle as before.
func (e *Engine) unreachable(ctx context.Context, err error) bool {
	if e.db.down() {
		return true
	}
	pctx, cancel := context.WithTimeout(ctx, pingTimeout)
	perr := e.store.Ping(pctx)
	cancel()
	if perr == nil || ctx.Err() != nil {
		return false
	}
	if e.db.markDown(perr) {
		e.mu.Lock()
		held := len(e.inflight)
		e.mu.Unlock()
		e.log.Error("database unreachable: claiming stopped, holding the deliveries in memory until it answers",
			"error", err, "ping", perr, "held", held)
	}
	return true
}

// maxStoreRetries is how often a job whose send failed on a database
// error, while the database still answers pings, is tried again before its
// error becomes its outcome.
const maxStoreRetries = 3

// storeFailed handles a job whose send failed with a *StoreError and
// reports whether the job was put back to be sent again (true), or is the
// caller's to settle (false: the database answers, and kept failing for
// this job). While the database is unreachable the worker waits here,
// holding nothing but the job: its place on the lane was given back, no
// attempt is counted and no throttle is touched.
func (d *destination) storeFailed(j *job, err error) bool {
	e := d.e
	if e.unreachable(e.ctx, err) {
		if e.db.waitUp(e.ctx) != nil {
			e.release(j, time.Now())
			return true
		}
		d.requeue(j, time.Now())
		return true
	}
	j.storeRetries++
	if j.storeRetries > maxStoreRetries {
		return false
	}
	e.log.Warn("database error on the send path; trying the message again", "delivery", j.c.ID, "error", err)
	if sleepUntil(e.ctx, time.Now().Add(time.Second)) != nil {
		e.release(j, time.Now())
		return true
	}
	d.requeue(j, time.Now())
	return true
}

// recoverDB probes the database with backoff until it answers, then renews
// the leases of the deliveries held in memory, so that the first claim
// after the outage does not take them back as expired, and lets workers
// and claims go on. It returns at once when the database is not known to
// be down, and with ctx's error when the engine stops.
func (e *Engine) recoverDB(ctx context.Context) error {
	if !e.db.down() {
		return nil
	}
	wait := 250 * time.Millisecond
	for {
		if err := sleepUntil(ctx, time.Now().Add(wait)); err != nil {
			return err
		}
		wait = min(2*wait, 5*time.Second)
		pctx, cancel := context.WithTimeout(ctx, pingTimeout)
		err := e.store.Ping(pctx)
		if err == nil {
			err = e.renewHeld(pctx)
		}
		cancel()
		if err != nil {
			e.db.markDown(err)
			continue
		}
		e.log.Info("database reachable again: claiming resumes", "down_for", e.db.markUp().Round(time.Millisecond))
		return nil
	}
}

// renewHeld renews the leases of every delivery held in memory.
func (e *Engine) renewHeld(ctx context.Context) error {
	leases := e.heldLeases()
	if err := e.store.RenewLeases(ctx, leases, e.o.Lease); err != nil {
		return fmt.Errorf("renew %d leases: %w", len(leases), err)
	}
	return nil
}

// storeErr reports whether err is a *StoreError.
func storeErr(err error) bool {
	var se *StoreError
	return errors.As(err, &se)
}
