package mailer

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"os"
	"sort"
	"strconv"
	"sync"
	"time"
)

// RelayHost is one smarthost.
type RelayHost struct {
	Host string
	Port int     // 0: 587, or 465 for TLSImplicit
	TLS  TLSMode // "": starttls
	// Username and Password authenticate with SASL PLAIN; empty: no auth.
	Username, Password string
	// PerSecond caps messages per second through this relay (its quota,
	// such as an SES account's sending rate); 0 unlimited.
	PerSecond float64
	// MaxConnections caps simultaneous connections; 0 means 10.
	MaxConnections int
	// MaxPerConnection closes a connection after this many messages and
	// opens a new one; 0 means no cap.
	MaxPerConnection int
	// Weight is the relay's share of the mail among the relays of its
	// priority; 0 means 1.
	Weight int
	// Priority orders the relays for failover: mail goes to the relays of
	// the lowest priority, and to the next ones only while all of those
	// are paused (after a refused connection or a slow-down reply). 0 is
	// the first.
	Priority int
	// SignsDKIM says the relay signs the mail with DKIM for the sender's
	// domains itself (Amazon SES Easy DKIM, Postmark, Mailgun): the
	// readiness rules then look for its DKIM record in DNS instead of
	// requiring a key in Herald.
	SignsDKIM bool
	// DKIMSelectors are the selectors the relay signs with, where the
	// readiness rules look for the record; empty: common ones only.
	DKIMSelectors []string
	// TLSConfig; nil verifies the host's certificate against Host with
	// the system roots (SSL_CERT_FILE names others).
	TLSConfig *tls.Config
}

// RelayOptions configure sending through smarthosts.
type RelayOptions struct {
	Hosts []RelayHost // at least one
	// HELO is the EHLO name; "" means the machine's host name.
	HELO     string
	Timeouts Timeouts
	// IdleTimeout closes a connection that carried nothing for this long.
	// Zero: 2 seconds.
	IdleTimeout time.Duration
	// Hold is how long a message refused with a slow-down reply (421,
	// 454) keeps waiting for the pool and trying again before it goes
	// back to the engine, deferred. Zero: 1 minute.
	Hold time.Duration
	// Logger receives the pool's pauses; nil means slog.Default().
	Logger *slog.Logger
	// Resolver looks up the DKIM records of relays that sign (the
	// readiness rules ask it); nil means the system's first nameserver.
	Resolver *Resolver
}

// Backoff of a relay pool after a slow-down reply or a failed connection:
// doubling from the first to the last while nothing gets through.
const (
	relayBackoffMin = time.Second
	relayBackoffMax = time.Minute
)

// Relay sends everything through one or more SMTP relays. Each relay's
// connections are one pool shared by every recipient domain: a connection
// carries the next message handed over, whatever its domain, so mail for
// one domain never holds a connection while another's waits. The engine's
// domain rules still pace each provider's mail before it reaches the pool;
// the pool adds the relay's own limits (connections, messages per second
// and per connection) and, when the relay asks to slow down, pauses as a
// whole and tries again by itself.
type Relay struct {
	o     RelayOptions
	log   *slog.Logger
	hosts []*relayHost // by priority, lowest first

	mu      sync.Mutex
	waiters []chan relayGrant // messages waiting for a connection, oldest first
	timer   *time.Timer       // runs dispatch when a pause or a rate slot ends
	timerAt time.Time
	reaping bool // a reap goroutine is running
}

// relayHost is one relay's pool; its fields after RelayHost are guarded by
// Relay.mu.
type relayHost struct {
	RelayHost
	conns   int // this node's part of MaxConnections (ShareAmong)
	open    int // connections open or being dialled
	busy    int // connections carrying a message
	idle    []*pooledConn
	rate    gcra
	paused  time.Time     // no message goes to this relay before
	events  uint64        // pauses so far
	backoff time.Duration // of the latest pause; 0 once a message got through
	credit  int           // weighted round robin: the relay's turn comes when it has the most
}

// pooledConn is one connection of a relay pool.
type pooledConn struct {
	c     *smtpConn
	h     *relayHost
	uses  int
	since time.Time // idle since
}

// relayGrant is a message's turn on a relay: an idle connection, or a
// place to dial one (pc nil, counted in h.open).
type relayGrant struct {
	h    *relayHost
	pc   *pooledConn
	seen uint64 // the relay's pauses when the turn was given
}

var (
	_ Transport  = (*Relay)(nil)
	_ relayDKIMs = (*Relay)(nil)
)

// NewRelay returns a relay transport.
func NewRelay(o RelayOptions) *Relay {
	if o.HELO == "" {
		o.HELO, _ = os.Hostname()
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = 2 * time.Second
	}
	if o.Hold <= 0 {
		o.Hold = time.Minute
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	o.Timeouts = o.Timeouts.WithDefaults()
	r := &Relay{o: o, log: o.Logger}
	for _, h := range o.Hosts {
		if h.TLS == "" {
			h.TLS = TLSStartTLS
		}
		if h.Port == 0 {
			h.Port = 587
			if h.TLS == TLSImplicit {
				h.Port = 465
			}
		}
		if h.MaxConnections <= 0 {
			h.MaxConnections = 10
		}
		if h.Weight <= 0 {
			h.Weight = 1
		}
		if h.TLSConfig == nil {
			h.TLSConfig = &tls.Config{ServerName: h.Host, MinVersion: tls.VersionTLS12}
		}
		r.hosts = append(r.hosts, &relayHost{RelayHost: h, conns: h.MaxConnections,
			rate: newGCRA(time.Second, h.PerSecond, burstFor(h.PerSecond))})
	}
	sort.SliceStable(r.hosts, func(i, j int) bool { return r.hosts[i].Priority < r.hosts[j].Priority })
	return r
}

// ShareAmong makes this node's pool take its part of each relay's limits
// when nodes share them (see Engine.nodes): a relay's quota and its
// connection cap are the account's, whichever node sends. Each node takes
// an equal part of the rate (as of a domain rule) and at least one
// connection. The rate's history is kept, so a change opens no burst.
func (r *Relay) ShareAmong(nodes int) {
	nodes = max(1, nodes)
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, h := range r.hosts {
		h.conns = max(1, h.MaxConnections/nodes)
		part := partPerSecond(h.PerSecond, nodes)
		tat := h.rate.tat
		h.rate = newGCRA(time.Second, part, burstFor(part))
		h.rate.tat = tat
	}
	r.dispatch(time.Now())
}

// Dial returns a handle on the relays' pool: it opens nothing itself, and
// each Send takes the pool's next free connection.
func (r *Relay) Dial(ctx context.Context, rt Route) (Conn, error) {
	if len(r.hosts) == 0 {
		return nil, &DialError{Permanent: true, Err: errors.New("no relay configured")}
	}
	return &relayConn{r: r, route: rt}, nil
}

// relayConn is the engine's handle on the pool.
type relayConn struct {
	r     *Relay
	route Route
}

func (c *relayConn) Close() error { return nil }

// Send carries one message over the pool's next free connection. A
// slow-down reply pauses the relay (every domain's mail waits, the other
// relays take over) and the message tries again once the pool can take it,
// for up to the Hold; a refused connection pauses the relay and comes back
// as the *DialError. Replies come back marked Relayed.
func (c *relayConn) Send(ctx context.Context, env *Envelope) (Reply, error) {
	r := c.r
	hold := time.Now().Add(r.o.Hold)
	for {
		g, err := r.acquire(ctx)
		if err != nil {
			return Reply{}, &DialError{Err: err}
		}
		pc := g.pc
		if pc != nil && pc.c.Stale() {
			pc.c.Close() // its place in h.open is the new connection's
			pc = nil
		}
		if pc == nil {
			sc, err := r.dial(ctx, g.h, c.route)
			if err != nil {
				retry := r.dialFailed(g, err)
				if retry && time.Now().Before(hold) && ctx.Err() == nil {
					continue
				}
				return Reply{}, err
			}
			pc = &pooledConn{c: sc, h: g.h}
		}
		rep, err := pc.c.Send(ctx, env)
		pc.uses++
		rep.Relayed = true
		if isSlowDown(rep) {
			r.pause(g, rep.Text)
			r.release(g, pc, false, false)
			if time.Now().Before(hold) && ctx.Err() == nil {
				continue
			}
			return rep, err
		}
		reuse := err == nil && (g.h.MaxPerConnection <= 0 || pc.uses < g.h.MaxPerConnection)
		r.release(g, pc, reuse, rep.Code >= 200 && rep.Code < 300)
		return rep, err
	}
}

// dial opens a connection to h.
func (r *Relay) dial(ctx context.Context, h *relayHost, rt Route) (*smtpConn, error) {
	helo := rt.HELO
	if helo == "" {
		helo = r.o.HELO
	}
	c, err := dialSMTP(ctx, dialPlan{addr: net.JoinHostPort(h.Host, strconv.Itoa(h.Port)), host: h.Host, source: rt.SourceIP,
		helo: helo, mode: h.TLS, tlsConfig: h.TLSConfig, user: h.Username, pass: h.Password, t: r.o.Timeouts, log: r.log})
	if err != nil {
		return nil, relayDialError(h.Host, err)
	}
	return c, nil
}

// dialFailed gives back the place of a connection that could not be
// opened and pauses its relay, and reports whether the relay asked to slow
// down (a 421 greeting): the message waits and tries again then. Other
// failures (refused, timeout, wrong credentials) go back to the engine.
func (r *Relay) dialFailed(g relayGrant, err error) bool {
	var re *RelayError
	slow := errors.As(err, &re) && isSlowDown(re.Reply)
	r.pause(g, err.Error())
	r.mu.Lock()
	g.h.busy--
	g.h.open--
	r.dispatch(time.Now())
	r.mu.Unlock()
	return slow
}

// pause stops handing messages to g's relay for the backoff, which doubles
// with each event until a message gets through. A refusal of a message
// given its turn before the latest pause is part of that event (the other
// connections' messages were already on the wire).
func (r *Relay) pause(g relayGrant, why string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	h := g.h
	if g.seen < h.events {
		return
	}
	if h.backoff < relayBackoffMin {
		h.backoff = relayBackoffMin
	} else {
		h.backoff = min(2*h.backoff, relayBackoffMax)
	}
	h.events++
	h.paused = time.Now().Add(h.backoff)
	r.log.Warn("relay paused", "relay", h.Host, "until", h.paused, "reason", why)
	r.dispatch(time.Now())
}

// acquire waits for a turn on the pool, oldest waiter first.
func (r *Relay) acquire(ctx context.Context) (relayGrant, error) {
	r.mu.Lock()
	if len(r.waiters) == 0 {
		if g, ok, _ := r.grant(time.Now()); ok {
			r.mu.Unlock()
			return g, nil
		}
	}
	w := make(chan relayGrant, 1)
	r.waiters = append(r.waiters, w)
	r.dispatch(time.Now())
	r.mu.Unlock()
	select {
	case g := <-w:
		return g, nil
	case <-ctx.Done():
	}
	r.mu.Lock()
	for i, x := range r.waiters {
		if x == w {
			r.waiters = append(r.waiters[:i], r.waiters[i+1:]...)
			r.mu.Unlock()
			return relayGrant{}, ctx.Err()
		}
	}
	r.mu.Unlock()
	g := <-w // given a turn meanwhile: give it back
	if g.pc != nil {
		r.release(g, g.pc, true, false)
	} else {
		r.mu.Lock()
		g.h.busy--
		g.h.open--
		r.dispatch(time.Now())
		r.mu.Unlock()
	}
	return relayGrant{}, ctx.Err()
}

// grant gives a turn now, if a relay can take a message: of the first
// priority with a relay not paused, the relays with a connection free (or
// room for one) and a rate slot share the mail by their weights. While
// that priority's relays are only busy, the next ones are not used. wake
// is when a pause or a rate slot ends (zero: when a connection frees).
// Called with r.mu held.
func (r *Relay) grant(now time.Time) (g relayGrant, ok bool, wake time.Time) {
	earliest := func(t time.Time) {
		if wake.IsZero() || t.Before(wake) {
			wake = t
		}
	}
	for i := 0; i < len(r.hosts); {
		j := i
		for j < len(r.hosts) && r.hosts[j].Priority == r.hosts[i].Priority {
			j++
		}
		var best *relayHost
		total, live := 0, false
		for _, h := range r.hosts[i:j] {
			if h.paused.After(now) {
				earliest(h.paused)
				continue
			}
			live = true
			if len(h.idle) == 0 && h.open >= h.conns {
				continue
			}
			if t := h.rate.next(now); t.After(now) {
				earliest(t)
				continue
			}
			// Smooth weighted round robin (as nginx does) among the
			// relays that can take the message now.
			h.credit += h.Weight
			total += h.Weight
			if best == nil || h.credit > best.credit {
				best = h
			}
		}
		if best != nil {
			best.credit -= total
			best.rate.book(now)
			best.busy++
			g = relayGrant{h: best, seen: best.events}
			if n := len(best.idle); n > 0 {
				// The most recently used: the others age and close.
				g.pc, best.idle = best.idle[n-1], best.idle[:n-1]
			} else {
				best.open++
			}
			return g, true, time.Time{}
		}
		if live {
			return relayGrant{}, false, wake
		}
		i = j
	}
	return relayGrant{}, false, wake
}

// dispatch gives turns to waiters while the pool can, and sets the timer
// for when it may again. Called with r.mu held.
func (r *Relay) dispatch(now time.Time) {
	for len(r.waiters) > 0 {
		g, ok, wake := r.grant(now)
		if !ok {
			r.wakeAt(wake)
			return
		}
		w := r.waiters[0]
		r.waiters[0] = nil
		r.waiters = r.waiters[1:]
		w <- g
	}
}

// wakeAt runs dispatch at t unless it runs earlier already.
func (r *Relay) wakeAt(t time.Time) {
	if t.IsZero() || (!r.timerAt.IsZero() && !t.Before(r.timerAt)) {
		return
	}
	if r.timer != nil {
		r.timer.Stop()
	}
	r.timerAt = t
	r.timer = time.AfterFunc(time.Until(t), func() {
		r.mu.Lock()
		r.timerAt = time.Time{}
		r.dispatch(time.Now())
		r.mu.Unlock()
	})
}

// release ends a message's turn: the connection goes back to the pool
// (reuse) or is closed; accepted ends the relay's run of backoffs unless
// the message was given its turn before the latest pause.
func (r *Relay) release(g relayGrant, pc *pooledConn, reuse, accepted bool) {
	h := g.h
	r.mu.Lock()
	h.busy--
	if accepted && g.seen == h.events {
		h.backoff = 0
	}
	if reuse {
		pc.since = time.Now()
		h.idle = append(h.idle, pc)
		if !r.reaping {
			r.reaping = true
			go r.reap()
		}
		r.dispatch(time.Now())
		r.mu.Unlock()
		return
	}
	r.mu.Unlock()
	// The place is free once the connection is gone, not before: a relay
	// counts a connection that is still saying QUIT.
	pc.c.Close()
	r.mu.Lock()
	h.open--
	r.dispatch(time.Now())
	r.mu.Unlock()
}

// reap closes connections idle for the idle timeout, and ends when none
// is left idle.
func (r *Relay) reap() {
	for {
		time.Sleep(r.o.IdleTimeout / 2)
		now := time.Now()
		var old []*pooledConn
		r.mu.Lock()
		left := 0
		for _, h := range r.hosts {
			keep := h.idle[:0]
			for _, pc := range h.idle {
				if now.Sub(pc.since) >= r.o.IdleTimeout {
					old = append(old, pc)
				} else {
					keep = append(keep, pc)
				}
			}
			clear(h.idle[len(keep):])
			h.idle = keep
			left += len(keep)
		}
		done := left == 0
		if done {
			r.reaping = false
		}
		r.mu.Unlock()
		for _, pc := range old {
			pc.c.Close()
			r.mu.Lock()
			pc.h.open--
			r.dispatch(time.Now())
			r.mu.Unlock()
		}
		if done {
			return
		}
	}
}
