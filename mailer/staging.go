package mailer

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/herald-mail/herald/models"
)

// StagingStore is what the staging policy reads; *models.Store
// implements it.
type StagingStore interface {
	Setting(ctx context.Context, key string) (string, error)
	AllowListed(ctx context.Context, rcpt string) (bool, error)
}

// Staging wraps a transport for a staging system: recipients for whom
// allowed returns true get real mail through real; everyone else's message
// goes to capture (the outbox) instead. Both connections of a lane are
// dialled only when first needed. When allowed fails, the message goes
// nowhere: Send returns a *StoreError, and the engine sends it again once
// the database answers (a staging system mails nobody it may not; a
// production one captures nothing because of an outage).
//
// The wrapper changes where a message goes, never how the real transport
// reports it: it routes with real's resolver (UsesMX, Resolver), and when
// real cannot be dialled, Send returns real's *DialError, which the engine
// handles as a failed dial (a null MX bounces, a refused connection
// suspends the destination) rather than as a broken transaction.
func Staging(real, capture Transport, allowed func(ctx context.Context, rcpt string) (bool, error)) Transport {
	return &staging{real: real, capture: capture, allowed: allowed}
}

// StagingPolicy is Staging's allowed function over a store: everyone while
// the staging switch is off, only allow-listed recipients while it is on.
// The switch is read at most once per refresh (zero: for every message),
// so a production send with staging off costs no query per message; the
// allow list is looked up per recipient only while staging is on. A
// database error is returned: whether the message may go is not known.
func StagingPolicy(store StagingStore, refresh time.Duration) func(ctx context.Context, rcpt string) (bool, error) {
	var (
		mu     sync.Mutex
		on     bool
		readAt time.Time
	)
	stagingOn := func(ctx context.Context) (bool, error) {
		mu.Lock()
		defer mu.Unlock()
		if refresh > 0 && !readAt.IsZero() && time.Since(readAt) < refresh {
			return on, nil
		}
		v, err := store.Setting(ctx, models.SettingStaging)
		if err != nil {
			return false, err
		}
		on, readAt = v == "on", time.Now()
		return on, nil
	}
	return func(ctx context.Context, rcpt string) (bool, error) {
		on, err := stagingOn(ctx)
		if err != nil {
			return false, fmt.Errorf("staging switch: %w", err)
		}
		if !on {
			return true, nil
		}
		ok, err := store.AllowListed(ctx, rcpt)
		if err != nil {
			return false, fmt.Errorf("staging allow list: %w", err)
		}
		return ok, nil
	}
}

type staging struct {
	real, capture Transport
	allowed       func(ctx context.Context, rcpt string) (bool, error)
}

var (
	_ Transport   = (*staging)(nil)
	_ mxTransport = (*staging)(nil)
)

// UsesMX reports whether the real transport routes by MX hosts.
func (s *staging) UsesMX() bool {
	mt, ok := s.real.(mxTransport)
	return ok && mt.UsesMX()
}

// Resolver returns the real transport's resolver, if it has one.
func (s *staging) Resolver() *Resolver {
	if mt, ok := s.real.(mxTransport); ok {
		return mt.Resolver()
	}
	return nil
}

// ShareAmong passes the cluster's node count to the real transport, when
// it has limits of its own to share (a relay's quota).
func (s *staging) ShareAmong(nodes int) {
	if sh, ok := s.real.(clusterShared); ok {
		sh.ShareAmong(nodes)
	}
}

// RelayDKIM is how the real transport's relays sign, if they do.
func (s *staging) RelayDKIM() *RelayDKIM { return RelaySigning(s.real) }

func (s *staging) Dial(ctx context.Context, r Route) (Conn, error) {
	return &stagingConn{t: s, route: r}, nil
}

type stagingConn struct {
	t             *staging
	route         Route
	real, capture Conn
}

func (c *stagingConn) Send(ctx context.Context, env *Envelope) (Reply, error) {
	allowed, err := c.t.allowed(ctx, env.To)
	if err != nil {
		return Reply{}, &StoreError{Err: err}
	}
	if allowed {
		if c.real != nil && stale(c.real) {
			c.real.Close()
			c.real = nil
		}
		if c.real == nil {
			conn, err := c.t.real.Dial(ctx, c.route)
			if err != nil {
				var de *DialError
				if !errors.As(err, &de) {
					err = &DialError{Err: err}
				}
				return Reply{}, err
			}
			c.real = conn
		}
		rep, err := c.real.Send(ctx, env)
		if err != nil {
			c.real.Close()
			c.real = nil
		}
		return rep, err
	}
	if c.capture == nil {
		conn, err := c.t.capture.Dial(ctx, c.route)
		if err != nil {
			return Reply{}, err
		}
		c.capture = conn
	}
	rep, err := c.capture.Send(ctx, env)
	if err == nil {
		rep.Text = "staging: " + rep.Text
	}
	return rep, err
}

func (c *stagingConn) Close() error {
	var errs []error
	for _, conn := range []Conn{c.real, c.capture} {
		if conn != nil {
			errs = append(errs, conn.Close())
		}
	}
	return errors.Join(errs...)
}
