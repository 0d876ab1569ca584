package mailer

import (
	"errors"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/herald-mail/herald/mailer/bounce"
	"github.com/herald-mail/herald/models"
)

// job is one claimed delivery on its way through the engine.
type job struct {
	c    models.Claimed
	camp *campaignState // nil for transactional
	tx   *txState       // nil for campaign mail
	tn   string         // transport name
	// settled: its outcome or release is on its way to the database
	// (guarded by the engine's mu).
	settled bool
	// storeRetries counts sends that failed on a database error while the
	// database answered pings (storeFailed).
	storeRetries int
}

// priority says the job goes ahead of campaign mail: transactional
// messages, and rows taken over from a dead node (they were due first).
func (j *job) priority() bool { return j.c.Priority > 0 || j.c.Reclaimed }

// live reports whether the job may still be sent (its campaign runs and
// its pool is not held by the blocklist rule).
func (j *job) live() bool { return j.camp == nil || j.camp.sending() }

// destination is one receiving side (a rule's provider, an MX host or a
// domain) seen through one IP pool and transport. It owns its ready queues,
// its lanes (one per source address) and its connection workers, so a slow
// or throttling destination holds up nobody else.
type destination struct {
	e         *Engine
	key       string // route key + pool + transport
	routeKey  string
	poolKey   string
	mx        []string
	domain    string
	transport Transport
	strategy  string
	capture   bool // the transport keeps messages in the outbox: no rule's rates apply
	// defaultGen is the generation of the default transport this
	// destination carries (ReloadTransport); -1 for a named transport.
	defaultGen int64

	high, normal chan *job
	lanes        []*lane

	mu        sync.Mutex
	rule      *rule
	workers   int
	idle      int
	rr        int
	domains   map[string]struct{}
	suspended time.Time // all lanes suspended until
	meter     rateMeter
}

func (d *destination) queued() int { return len(d.high) + len(d.normal) }

// retired reports whether the default transport this destination carries
// was replaced: what it still holds goes back to be claimed again and
// routed to the new one.
func (d *destination) retired() bool {
	return d.defaultGen >= 0 && d.defaultGen != d.e.deflt.Load().gen
}

// maxConns is the node's part of the rule's connection cap (see
// cluster.go); without a cap, 20 a node.
func (d *destination) maxConns() int {
	if n := d.rule.MaxConnections; n > 0 {
		return partConns(n, d.e.nodes())
	}
	return 20
}

func (d *destination) backoff() (time.Duration, time.Duration) {
	mn := time.Duration(d.rule.BackoffMinSeconds) * time.Second
	mx := time.Duration(d.rule.BackoffMaxSeconds) * time.Second
	if mn <= 0 {
		mn = time.Minute
	}
	if mx < mn {
		mx = mn
	}
	return mn, mx
}

// push queues a job; when the queue is full the job goes back to the
// database, due again shortly.
func (d *destination) push(j *job) {
	d.mu.Lock()
	d.domains[j.c.Domain] = struct{}{}
	susp := d.suspended
	d.mu.Unlock()
	if now := time.Now(); susp.After(now) {
		d.e.release(j, susp)
		return
	}
	if d.enqueue(j, time.Now().Add(2*time.Second)) {
		d.spawn()
	}
}

// enqueue puts a job on its priority's queue and reports true, or releases
// it to the database (due at until) when that queue is full.
func (d *destination) enqueue(j *job, until time.Time) bool {
	q := d.normal
	if j.priority() {
		q = d.high
	}
	select {
	case q <- j:
		return true
	default:
		d.e.release(j, until)
		return false
	}
}

// spawn starts a connection worker when jobs wait, no worker is idle and a
// lane has room: not suspended, under its warm-up cap and connection limit,
// and not already rate-bound.
func (d *destination) spawn() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.idle > 0 || d.queued() == 0 || d.e.ctx.Err() != nil {
		return
	}
	now := time.Now()
	var best *lane
	bestLoad := 0.0
	for i := range d.lanes {
		l := d.lanes[(d.rr+i)%len(d.lanes)]
		if _, s := l.suspendedUntil(now); s {
			continue
		}
		if c, _ := l.src.capped(now); c {
			continue
		}
		l.mu.Lock()
		conns := l.conns
		l.mu.Unlock()
		if conns >= d.maxConns() || l.rateBound(now) {
			continue
		}
		load := float64(conns) / float64(max(1, l.src.weight))
		if d.strategy != models.PoolWeighted {
			best = l
			break
		}
		if best == nil || load < bestLoad {
			best, bestLoad = l, load
		}
	}
	if best == nil {
		return
	}
	d.rr++
	best.mu.Lock()
	best.conns++
	best.mu.Unlock()
	d.workers++
	d.e.wg.Add(1)
	d.e.out.connOpened()
	go d.worker(best)
}

// take waits for the next job, high priority first; nil when the worker
// has been idle for the engine's idle timeout or the engine stops.
func (d *destination) take(idle *time.Timer) *job {
	select {
	case j := <-d.high:
		return j
	default:
	}
	d.mu.Lock()
	d.idle++
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		d.idle--
		d.mu.Unlock()
	}()
	idle.Reset(d.e.o.IdleTimeout)
	select {
	case j := <-d.high:
		return j
	case j := <-d.normal:
		return j
	case <-idle.C:
		return nil
	case <-d.e.ctx.Done():
		return nil
	}
}

// worker holds one connection of a lane and sends jobs over it.
func (d *destination) worker(l *lane) {
	e := d.e
	var (
		conn Conn
		uses int
	)
	idle := time.NewTimer(time.Hour)
	defer func() {
		idle.Stop()
		if conn != nil {
			conn.Close()
		}
		l.mu.Lock()
		l.conns--
		l.mu.Unlock()
		d.mu.Lock()
		d.workers--
		d.mu.Unlock()
		e.out.connClosed()
		e.wg.Done()
		d.spawn() // jobs may still wait (e.g. we stopped for max-per-connection)
	}()
	var tk ticket
	for {
		if l.surplus(d.maxConns()) {
			return // more nodes share the rule now: this connection is over the lane's part
		}
		j := d.take(idle)
		if j == nil {
			return
		}
		if waited := time.Now(); !e.out.wait(e.ctx) {
			e.release(j, time.Now())
			return
		} else if conn != nil && time.Since(waited) > e.o.IdleTimeout {
			// The outcomes waited for the database (an outage) long
			// enough for the server to have dropped the idle connection:
			// a send over it would fail and defer the message.
			conn.Close()
			conn = nil
		}
		// Wait until the lane's windows have room, with a connection open,
		// then take the message's places and send it at once: the
		// suspension and the caps are checked in the same step that books,
		// so a message begun after another connection's "slow down" was
		// seen is never sent.
		for j != nil {
			if !j.live() || d.retired() {
				e.release(j, time.Now())
				j = nil
				break
			}
			if conn != nil && stale(conn) {
				conn.Close()
				conn = nil
			}
			now := time.Now()
			v, at := l.reserve(now, &tk, conn != nil)
			if v == slotBooked {
				break
			}
			switch v {
			case slotStopped:
				d.requeue(j, at)
				return
			case slotDial:
				seen := l.seen()
				c, err := d.transport.Dial(e.ctx, Route{Domain: d.domain, MX: d.mx, SourceIP: l.src.addr, HELO: l.src.helo, RequireTLS: d.rule.RequireTLS})
				if err != nil {
					if d.dialFailed(j, l, seen, err) {
						return
					}
					j = nil
					break
				}
				conn, uses = c, 0
			case slotWait:
				if conn != nil && time.Until(at) > e.o.IdleTimeout {
					// Servers drop idle connections: open a new one when
					// the window has room rather than keep this one idle.
					conn.Close()
					conn = nil
				}
				if err := sleepUntil(e.ctx, at); err != nil {
					e.release(j, time.Now())
					return
				}
			}
		}
		if j == nil {
			continue
		}
		res := e.attempt(conn, j, d, l, &tk)
		if res.storeErr != nil {
			conn.Close()
			conn = nil
			if !d.storeFailed(j, res.storeErr) {
				e.deferJob(j, d, Reply{Text: res.storeErr.Error(), SourceIP: l.src.addr}, time.Now())
			}
			continue
		}
		if res.stop {
			return
		}
		if res.stopped {
			d.requeue(j, res.until)
			return
		}
		uses++
		if res.broken || res.slowDown || (d.rule.MaxPerConnection > 0 && uses >= d.rule.MaxPerConnection) {
			conn.Close()
			conn = nil
		}
		if res.slowDown {
			d.checkSuspended()
			return
		}
	}
}

// requeue puts a job back in front of the line for another lane, or
// releases it when every lane is suspended.
func (d *destination) requeue(j *job, until time.Time) {
	if d.checkSuspended() {
		d.e.release(j, until)
		return
	}
	d.enqueue(j, until)
}

// checkSuspended suspends the whole destination when no lane can send, and
// sends its queued jobs back to the database until then. The claimer
// excludes its domains meanwhile.
func (d *destination) checkSuspended() bool {
	now := time.Now()
	var resume time.Time
	for _, l := range d.lanes {
		until, s := l.suspendedUntil(now)
		if !s {
			c, day := l.src.capped(now)
			if !c {
				return false
			}
			until = day
		}
		if resume.IsZero() || until.Before(resume) {
			resume = until
		}
	}
	d.mu.Lock()
	d.suspended = resume
	d.mu.Unlock()
	for {
		select {
		case j := <-d.high:
			d.e.release(j, resume)
		case j := <-d.normal:
			d.e.release(j, resume)
		default:
			return true
		}
	}
}

// dialFailed handles a failed connection attempt and reports whether the
// worker should stop.
func (d *destination) dialFailed(j *job, l *lane, seen uint64, err error) bool {
	e := d.e
	var de *DialError
	errors.As(err, &de)
	now := time.Now()
	if de != nil && de.Permanent {
		e.finish(j, d, outcomeFor(j, models.DeliveryBounced, Reply{Code: 550, Enhanced: "5.1.2", Text: err.Error()}, now, time.Time{}), "")
		return false
	}
	if de != nil && de.Reply.Code != 0 {
		r := de.Reply
		if r.Code >= 500 {
			e.finish(j, d, outcomeFor(j, models.DeliveryBounced, r, now, time.Time{}), "")
			return false
		}
		if !isSlowDown(r) {
			e.deferJob(j, d, r, now)
			return false
		}
	}
	// Connection refused, timeouts, 421 at greeting: the host is not
	// taking mail from this address now. Suspend the lane, retry the job
	// when it reopens.
	// One event: connections begun before it that fail as well do not
	// suspend again.
	mn, mx := d.backoff()
	until, fresh := l.slowDown(seen, now, mn, mx)
	r := Reply{Text: err.Error(), SourceIP: l.src.addr}
	if de != nil && de.Reply.Code != 0 {
		r = de.Reply
	}
	e.finish(j, d, outcomeFor(j, models.DeliveryDeferred, r, now, until), "")
	if fresh {
		e.log.Warn("destination suspended", "destination", d.routeKey, "source_ip", l.src.addr, "until", until, "error", err)
		e.metrics.suspensions.WithLabelValues(d.routeKey).Inc()
	}
	d.checkSuspended()
	return true
}

type attemptResult struct {
	broken   bool
	slowDown bool
	stop     bool      // the worker is done: dialFailed has handled it
	stopped  bool      // not sent: the lane was suspended meanwhile, until
	until    time.Time //
	storeErr error     // not sent: Herald's database failed (StoreError)
}

// attempt renders, signs and sends one job over conn and records the
// outcome; tk holds the message's places on the lane, settled here.
func (e *Engine) attempt(conn Conn, j *job, d *destination, l *lane, tk *ticket) attemptResult {
	now := time.Now()
	msg, err := e.render(j, now)
	if err != nil {
		l.cancel(tk)
		e.finish(j, d, outcomeFor(j, models.DeliveryFailed, Reply{Text: "render: " + err.Error()}, now, time.Time{}), "")
		return attemptResult{}
	}
	if now := time.Now(); !l.handOver(tk, now) {
		// Another connection was told to slow down while this message
		// was being signed: it stays here.
		msg.release()
		l.cancel(tk)
		until, _ := l.suspendedUntil(now)
		return attemptResult{stopped: true, until: until}
	}
	to, utf8To := envelopeAddress(j.c.Email)
	env := &Envelope{From: msg.mailFrom, To: to, DeliveryID: j.c.ID, CampaignID: j.c.CampaignID,
		Signature: msg.sig, Message: msg.buf.Bytes(), UTF8: utf8To || msg.utf8}
	reply, err := conn.Send(e.ctx, env)
	msgID := msg.messageID
	msg.release()
	now = time.Now()
	if err != nil && reply.Code == 0 && storeErr(err) {
		// Our database failed, not the destination: nothing went out, the
		// job is no one's outcome yet (storeFailed).
		l.cancel(tk)
		return attemptResult{storeErr: err}
	}
	if de := (*DialError)(nil); err != nil && reply.Code == 0 && errors.As(err, &de) {
		// A transport that dials lazily (Staging) could not open its
		// connection: a failed dial, not a broken transaction, and no
		// message went out.
		seen := tk.seen
		l.cancel(tk)
		return attemptResult{broken: true, stop: d.dialFailed(j, l, seen, err)}
	}
	var ue *SMTPUTF8Error
	if errors.As(err, &ue) {
		// Not the address's fault, and nothing went out: the message fails
		// (no bounce, no suppression), its place on the lane is given
		// back, and the connection carries on.
		l.cancel(tk)
		reply = Reply{Code: 553, Enhanced: "5.6.7", Text: "not sent: " + ue.Error(), MXHost: ue.Host, SourceIP: l.src.addr}
		e.finish(j, d, outcomeFor(j, models.DeliveryFailed, reply, now, time.Time{}), msgID)
		return attemptResult{}
	}
	ok := reply.Code >= 200 && reply.Code < 300
	l.settle(tk, now, ok)
	if reply.SourceIP == "" {
		reply.SourceIP = l.src.addr
	}
	if err != nil && reply.Code == 0 {
		// The connection failed mid-transaction: the message may or may not
		// have arrived; RFC 5321 says treat it as not delivered.
		reply.Text = "connection: " + err.Error()
		e.deferJob(j, d, reply, now, msgID)
		return attemptResult{broken: true}
	}
	// The server answered for the message; with err set, it then hung up
	// or said 421, and the connection is done either way.
	broken := err != nil
	switch {
	case ok:
		d.meter.add(now)
		e.finish(j, d, outcomeFor(j, models.DeliverySent, reply, now, time.Time{}), msgID)
		return attemptResult{broken: broken}
	case isSlowDown(reply) && !reply.Relayed:
		// The lane stops before its other connections' next messages; a
		// refusal of a message begun before the latest suspension is part
		// of that event, not a new one.
		mn, mx := d.backoff()
		until, fresh := l.slowDown(tk.seen, now, mn, mx)
		e.finish(j, d, outcomeFor(j, models.DeliveryDeferred, reply, now, until), msgID)
		if fresh {
			e.log.Warn("destination suspended", "destination", d.routeKey, "source_ip", l.src.addr, "until", until)
			e.metrics.suspensions.WithLabelValues(d.routeKey).Inc()
		}
		return attemptResult{slowDown: true}
	case reply.Code >= 400 && reply.Code < 500:
		e.deferJob(j, d, reply, now, msgID)
		return attemptResult{broken: broken || reply.Code == 421}
	default:
		e.finish(j, d, outcomeFor(j, models.DeliveryBounced, reply, now, time.Time{}), msgID)
		return attemptResult{broken: broken}
	}
}

// deferJob retries a job later with exponential backoff and jitter, or
// fails it once it is older than the maximum age.
func (e *Engine) deferJob(j *job, d *destination, r Reply, now time.Time, msgID ...string) {
	attempts := j.c.Attempts + 1
	delay := e.o.RetryBase << min(attempts-1, 20)
	if delay > e.o.RetryMax || delay <= 0 {
		delay = e.o.RetryMax
	}
	delay = time.Duration(float64(delay) * (0.8 + 0.4*rand.Float64()))
	next := now.Add(delay)
	status := models.DeliveryDeferred
	if next.Sub(j.c.CreatedAt) > e.o.MaxAge {
		status = models.DeliveryFailed
	}
	id := ""
	if len(msgID) > 0 {
		id = msgID[0]
	}
	e.finish(j, d, outcomeFor(j, status, r, now, next), id)
}

func outcomeFor(j *job, status string, r Reply, now, next time.Time) models.Outcome {
	o := models.Outcome{ID: j.c.ID, CampaignID: j.c.CampaignID, Status: status, Attempted: true,
		Code: r.Code, Enhanced: r.Enhanced, Text: r.Text, SourceIP: r.SourceIP, MXHost: r.MXHost, TLS: tlsCode(r),
		At: now, NextAttempt: next}
	if status == models.DeliveryBounced {
		// A refusal is classified like a DSN, by the same precedence
		// table, with the stage we know for certain (a 550 to RCPT TO is
		// about the recipient, one to MAIL FROM about us), and recorded
		// with the outcome as one: its bounce row, counters and
		// suppression.
		v := bounce.ClassifyReplyAt(replyStage(r.Command), r.Code, r.Enhanced, r.Text)
		if v.Kind == bounce.KindHard || v.Kind == bounce.KindSoft {
			o.BounceKind, o.BounceCategory, o.BounceReason = string(v.Kind), string(v.Category), v.Explain()
		}
	}
	return o
}

// replyStage is the classifier's stage of the command a reply answered.
func replyStage(command string) bounce.Stage {
	switch command {
	case "MAIL":
		return bounce.StageMail
	case "RCPT":
		return bounce.StageRcpt
	case "DATA", "BDAT", "end of data":
		return bounce.StageData
	case "greeting", "HELO", "EHLO", "STARTTLS", "AUTH":
		return bounce.StageConnect
	}
	return bounce.StageUnknown
}

// tlsCode is the TLS state to record for r: only a server's answer over a
// connection has one (a reply the engine made up names no host).
func tlsCode(r Reply) int16 {
	if r.Code == 0 || r.MXHost == "" || r.MXHost == captureHost {
		return models.TLSUnknown
	}
	return models.TLSCode(r.TLS)
}

// isSlowDown reports whether a refusal asks us to send more slowly (421,
// rate-limit statuses and the big providers' phrasings, as classified by
// package bounce). Such replies suspend the destination on that source
// address instead of deferring the one message.
func isSlowDown(r Reply) bool {
	if r.Code < 400 || r.Code >= 500 {
		return false
	}
	return bounce.ClassifyReply(r.Code, r.Enhanced, r.Text).SlowDown()
}

// rateMeter counts messages over the last ten seconds.
type rateMeter struct {
	mu     sync.Mutex
	slots  [10]int
	second int64
}

func (m *rateMeter) add(now time.Time) {
	m.mu.Lock()
	m.roll(now)
	m.slots[now.Unix()%10]++
	m.mu.Unlock()
}

func (m *rateMeter) roll(now time.Time) {
	s := now.Unix()
	if s-m.second >= 10 {
		m.slots = [10]int{}
	} else {
		for t := m.second + 1; t <= s; t++ {
			m.slots[t%10] = 0
		}
	}
	m.second = s
}

// rate is messages per second over the last ten full seconds.
func (m *rateMeter) rate(now time.Time) float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.roll(now)
	n := 0
	for i, c := range m.slots {
		if int64(i) != now.Unix()%10 {
			n += c
		}
	}
	return float64(n) / 9
}
