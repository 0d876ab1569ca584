package mailer

import (
	"context"
	"errors"
	"sort"
	"strconv"
	"time"

	"github.com/herald-mail/herald/models"
)

// claimLoop leases due deliveries whenever there is room in memory, and
// routes them to their destinations. Transactional deliveries come first.
func (e *Engine) claimLoop(ctx context.Context) {
	t := time.NewTicker(e.o.PollInterval)
	defer t.Stop()
	woken := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-e.wake:
			woken = true
		}
		if e.recoverDB(ctx) != nil {
			return
		}
		for ctx.Err() == nil {
			n, full := e.claimOnce(ctx, woken)
			woken = false
			if !full || n == 0 {
				break
			}
		}
	}
}

// claimOnce claims one batch and reports how many it got and whether the
// batch was full (more may be due). Unless woken (a transactional message
// is waiting), it claims nothing while fewer than half a batch of rows
// would fit: a claim's cost is mostly per transaction, and topping up the
// in-flight set a few rows at a time made claiming a third of the mailer's
// CPU.
func (e *Engine) claimOnce(ctx context.Context, woken bool) (int, bool) {
	e.mu.Lock()
	limit := min(e.o.MaxInFlight-len(e.inflight), e.o.ClaimBatch)
	if limit <= 0 || (!woken && limit < min(e.o.ClaimBatch, e.o.MaxInFlight)/2) {
		e.mu.Unlock()
		return 0, false
	}
	var ids []int64
	for id, cs := range e.campaigns {
		if cs.sending() {
			ids = append(ids, id)
		}
	}
	now := time.Now()
	var exclude []string
	for _, d := range e.dests {
		d.mu.Lock()
		if d.suspended.After(now) || d.queued() >= cap(d.normal)*3/4 {
			for dom := range d.domains {
				exclude = append(exclude, dom)
			}
		}
		d.mu.Unlock()
	}
	e.mu.Unlock()
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	reclaim := e.reclaimScope(now)
	claimed, err := e.store.ClaimDeliveries(ctx, models.ClaimRequest{Node: e.o.NodeID, Lease: e.o.Lease, Limit: limit,
		Transactional: true, CampaignIDs: ids, ExcludeDomains: exclude, Reclaim: reclaim})
	e.steady.note(err)
	if reclaim != models.ReclaimNone && err == nil && len(claimed) < limit {
		// A full batch may have left expired leases behind (a restart
		// after a crash holds thousands): keep reclaiming until one is not.
		e.lastReclaim = now
	}
	if err != nil {
		if ctx.Err() == nil && !e.unreachable(ctx, err) {
			e.log.Error("claim deliveries", "error", err)
		}
		return 0, false
	}
	e.db.claimed(now)
	for i := range claimed {
		e.intake(ctx, &claimed[i])
	}
	return len(claimed), len(claimed) == limit
}

// reclaimScope is which expired leases a claim at now takes: none if
// the last scan was under a second ago; other nodes' only once the
// database has answered for a whole lease, so that a node back from a
// database outage first writes the outcomes it holds (and renews its
// leases) rather than have another resend them.
func (e *Engine) reclaimScope(now time.Time) models.Reclaim {
	switch {
	case now.Sub(e.lastReclaim) < time.Second:
		return models.ReclaimNone
	case e.steady.connectedFor(now) < e.o.Lease:
		return models.ReclaimDisowned
	}
	return models.ReclaimExpired
}

// intake turns a claimed row into a job and routes it.
func (e *Engine) intake(ctx context.Context, c *models.Claimed) {
	j := &job{c: *c}
	e.mu.Lock()
	e.inflight[c.ID] = j
	if c.CampaignID != 0 {
		j.camp = e.campaigns[c.CampaignID]
	}
	e.mu.Unlock()
	now := time.Now()
	switch {
	case c.Ineligible != "":
		o := models.Outcome{ID: c.ID, CampaignID: c.CampaignID, Status: models.DeliverySuppressed, Text: c.Ineligible, At: now}
		e.finish(j, nil, o, "")
		return
	case c.CampaignID != 0 && j.camp == nil:
		e.release(j, now.Add(time.Second))
		return
	case c.CampaignID != 0:
		j.tn = j.camp.tname
	default:
		tx, err := e.txFor(ctx, c)
		if err != nil && e.unreachable(ctx, err) {
			e.release(j, now) // not the message's fault: it goes again
			return
		}
		if err != nil {
			e.finish(j, nil, outcomeFor(j, models.DeliveryFailed, Reply{Text: err.Error()}, now, time.Time{}), "")
			return
		}
		j.tx = tx
	}
	rt := e.router(j.tn)
	if ri := rt.cachedRoute(c.Domain); ri != nil || rt.resolver == nil {
		if ri == nil {
			ri = rt.route(ctx, c.Domain)
		}
		e.dispatch(j, ri)
		return
	}
	// Resolve each new domain once, off the claim path, so a slow DNS
	// answer delays only that domain.
	e.mu.Lock()
	pending, busy := e.resolving[c.Domain]
	e.resolving[c.Domain] = append(pending, j)
	e.mu.Unlock()
	if busy {
		return
	}
	go func(domain string) {
		rctx, cancel := context.WithTimeout(e.ctx, 30*time.Second)
		ri := rt.route(rctx, domain)
		cancel()
		e.mu.Lock()
		jobs := e.resolving[domain]
		delete(e.resolving, domain)
		e.mu.Unlock()
		for _, j := range jobs {
			e.dispatch(j, ri)
		}
	}(c.Domain)
}

// dispatch sends a routed job to its destination, or settles it when the
// route says the domain takes no mail.
func (e *Engine) dispatch(j *job, ri *routeInfo) {
	now := time.Now()
	switch {
	case ri.err != nil:
		enh := "5.1.2"
		if ri.err == ErrNullMX {
			enh = "5.1.10"
		}
		e.finish(j, nil, outcomeFor(j, models.DeliveryBounced, Reply{Code: 550, Enhanced: enh, Text: ri.err.Error()}, now, time.Time{}), "")
		return
	case ri.tempErr != nil:
		e.deferJob(j, nil, Reply{Text: ri.tempErr.Error()}, now)
		return
	}
	e.destination(j, ri).push(j)
}

// destination returns (creating it on first use) the destination for a
// route, pool and transport.
func (e *Engine) destination(j *job, ri *routeInfo) *destination {
	dr := e.deflt.Load()
	pool, strategy, poolKey, transport := e.defaultPool(), models.PoolRoundRobin, "default", dr.t
	if j.camp != nil {
		pool, strategy, poolKey = j.camp.pool, j.camp.strategy, j.camp.poolKey
		if j.tn != "" {
			transport = j.camp.transport
		}
	}
	key, gen := ri.key+"|"+poolKey+"|"+j.tn, int64(-1)
	if j.tn == "" {
		// The default transport's generation: after ReloadTransport, new
		// destinations use the new transport (and the old ones hand back
		// what they hold, destination.retired).
		gen = dr.gen
		key += "|" + strconv.FormatInt(gen, 10)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if d, ok := e.dests[key]; ok {
		return d
	}
	d := &destination{
		e: e, key: key, routeKey: ri.key, poolKey: poolKey, mx: ri.mx, domain: j.c.Domain, transport: transport, strategy: strategy,
		defaultGen: gen, rule: ri.rule, domains: map[string]struct{}{}, capture: isCapture(transport),
		high: make(chan *job, e.o.DestinationQueue), normal: make(chan *job, e.o.DestinationQueue),
	}
	if d.capture {
		d.rule = &rule{DomainRule: unthrottled(ri.rule.DomainRule)}
	}
	for _, s := range pool {
		d.lanes = append(d.lanes, &lane{src: s, lim: newLimits(&d.rule.DomainRule, e.nodes())})
	}
	e.dests[key] = d
	return d
}

func (e *Engine) defaultPool() []*sourceIP {
	e.mu.Lock()
	s, ok := e.sources[""]
	e.mu.Unlock()
	if ok {
		return []*sourceIP{s}
	}
	return []*sourceIP{e.source("", "", 1, nil, 0)}
}

// outcomeWriters is how many batches of outcomes may be written at once.
const outcomeWriters = 2

// writeResults writes outcomes in batches: one transaction per batch keeps
// the per-message cost of the state write small. A batch goes when half
// the unrecorded bound is pending (see outcomes) and at least every
// FlushInterval, which bounds the window in which a sent message's 250 is
// not yet on disk. outcomeWriters of them run: while one batch commits,
// the next can be on its way, so a database that answers slowly (a
// server's round trips and commits, not SQLite's) holds the workers less
// at the bound.
func (e *Engine) writeResults() {
	defer e.resultsWG.Done()
	const maxBatch = 512
	t := time.NewTicker(e.o.FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-e.out.flushNow:
		case <-t.C:
		}
		for {
			batch := e.out.take(maxBatch)
			if len(batch) == 0 {
				break
			}
			e.record(batch)
		}
		if e.out.drained() {
			return
		}
	}
}

// record writes one batch until it is written, then lets its jobs go:
// their rows are no longer leased, and their room is free for new work.
func (e *Engine) record(batch []models.Outcome) {
	for {
		// Use a context of our own: outcomes must be written even while
		// the engine shuts down.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		_, err := e.store.RecordOutcomes(ctx, batch)
		cancel()
		e.steady.note(err)
		if err == nil {
			break
		}
		e.log.Error("record outcomes", "error", err, "count", len(batch))
		time.Sleep(time.Second)
	}
	e.mu.Lock()
	for _, o := range batch {
		if j := e.inflight[o.ID]; j != nil && j.c.LeaseGen == o.LeaseGen {
			delete(e.inflight, o.ID)
		}
	}
	e.mu.Unlock()
	e.out.recorded(len(batch))
}

// materializeLoop writes the deliveries of running campaigns batch by
// batch, letting claims interleave.
func (e *Engine) materializeLoop(ctx context.Context) {
	t := time.NewTicker(e.o.PollInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-e.materializeNow:
		}
		if e.db.down() {
			continue // the claim loop probes it
		}
		e.mu.Lock()
		var todo []*campaignState
		for _, cs := range e.campaigns {
			if cs.running() && !cs.matDone.Load() {
				todo = append(todo, cs)
			}
		}
		e.mu.Unlock()
		for _, cs := range todo {
			for ctx.Err() == nil && cs.running() {
				done, err := e.store.MaterializeCampaign(ctx, cs.id, e.o.MaterializeBatch)
				if err != nil {
					if ctx.Err() == nil {
						e.log.Error("materialize campaign", "campaign", cs.id, "error", err)
					}
					break
				}
				e.kick()
				if done {
					cs.matDone.Store(true)
					e.log.Info("campaign materialized", "campaign", cs.id)
					break
				}
			}
		}
	}
}

// leaseLoop renews the leases of everything held in memory, outcomes not
// yet recorded included, every heartbeat.
func (e *Engine) leaseLoop(ctx context.Context) {
	t := time.NewTicker(e.o.Heartbeat)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := e.store.RenewLeases(ctx, e.heldLeases(), e.o.Lease)
		if ctx.Err() != nil {
			return
		}
		if e.steady.note(err); err != nil {
			e.log.Error("renew leases", "error", err)
		}
	}
}

// heldLeases are the leases of every delivery held in memory.
func (e *Engine) heldLeases() []models.Lease {
	e.mu.Lock()
	defer e.mu.Unlock()
	leases := make([]models.Lease, 0, len(e.inflight))
	for id, j := range e.inflight {
		leases = append(leases, models.Lease{ID: id, Gen: j.c.LeaseGen})
	}
	return leases
}

// controlLoop follows campaign statuses (changes made by other processes
// included), starts scheduled campaigns, finishes completed ones, restarts
// idle destinations and reloads the rules.
func (e *Engine) controlLoop(ctx context.Context) {
	tick := min(e.o.PollInterval, 250*time.Millisecond)
	t := time.NewTicker(tick)
	defer t.Stop()
	lastRules, lastFinish := time.Now(), time.Time{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-e.refreshNow:
		}
		if e.db.down() {
			continue // the claim loop probes it
		}
		e.refreshCampaigns(ctx)
		now := time.Now()
		if now.Sub(lastFinish) >= time.Second {
			lastFinish = now
			e.finishCampaigns(ctx)
			if ids, err := e.store.DueScheduledCampaigns(ctx); err == nil {
				for _, id := range ids {
					f, err := e.blockingRule(ctx, id)
					if err != nil {
						e.log.Error("readiness of a scheduled campaign; trying again", "campaign", id, "err", err)
						continue
					}
					if f != nil {
						// The campaign or its template changed since it was
						// scheduled: hold it where the user will see it.
						if err := e.store.PauseCampaign(ctx, id); err == nil {
							e.log.Warn("scheduled campaign paused: a sending rule blocks it", "campaign", id, "rule", f.ID, "detail", f.Detail)
						}
						continue
					}
					// The same start as Send now's: through the
					// campaign's placement gate when it has one.
					// A state error: another node started it, or it was
					// paused or cancelled meanwhile.
					var se *models.CampaignStateError
					if err := e.startScheduled(ctx, id); err != nil && !errors.As(err, &se) {
						e.log.Error("start a scheduled campaign; trying again", "campaign", id, "err", err)
					}
				}
			}
		}
		if now.Sub(lastRules) >= e.o.RuleRefresh {
			lastRules = now
			if err := e.refreshOrg(ctx); err != nil && ctx.Err() == nil {
				e.log.Error("reload settings", "err", err)
			}
			if err := e.loadRules(ctx); err != nil && ctx.Err() == nil {
				e.log.Error("reload domain rules", "error", err)
			}
		}
		e.mu.Lock()
		dests := make([]*destination, 0, len(e.dests))
		for _, d := range e.dests {
			dests = append(dests, d)
		}
		e.mu.Unlock()
		for _, d := range dests {
			if d.queued() > 0 {
				if !d.checkSuspendedIfAll() {
					d.spawn()
				}
			}
			e.metrics.queueDepth.WithLabelValues(d.routeKey).Set(float64(d.queued()))
			e.metrics.rate.WithLabelValues(d.routeKey).Set(d.meter.rate(now))
		}
	}
}

// checkSuspendedIfAll drains a destination whose lanes are all suspended.
func (d *destination) checkSuspendedIfAll() bool {
	now := time.Now()
	for _, l := range d.lanes {
		if _, s := l.suspendedUntil(now); !s {
			if c, _ := l.src.capped(now); !c {
				return false
			}
		}
	}
	return d.checkSuspended()
}

func (e *Engine) refreshCampaigns(ctx context.Context) {
	e.mu.Lock()
	known := make([]int64, 0, len(e.campaigns))
	for id := range e.campaigns {
		known = append(known, id)
	}
	e.mu.Unlock()
	sts, err := e.store.CampaignStatuses(ctx, known)
	if err != nil {
		if ctx.Err() == nil {
			e.log.Error("campaign statuses", "error", err)
		}
		return
	}
	for _, st := range sts {
		e.mu.Lock()
		cs := e.campaigns[st.ID]
		e.mu.Unlock()
		if cs != nil && cs.poolHeld.Swap(st.PoolPaused != "") != (st.PoolPaused != "") {
			if st.PoolPaused != "" {
				e.log.Warn("campaign held: its IP pool is paused", "campaign", st.ID, "reason", st.PoolPaused)
			} else {
				e.log.Info("campaign's IP pool sends again", "campaign", st.ID)
				e.kick()
			}
		}
		switch {
		case cs != nil:
			if cs.status.Load() != st.Status {
				cs.status.Store(st.Status)
				if st.Status == models.CampaignRunning {
					e.kick()
					signal(e.materializeNow)
				}
			}
			if st.Status != models.CampaignRunning && st.Status != models.CampaignPaused {
				e.mu.Lock()
				delete(e.campaigns, st.ID)
				e.mu.Unlock()
			}
		case st.Status == models.CampaignRunning:
			cs, err := e.prepareCampaign(ctx, st.ID)
			if err != nil && e.unreachable(ctx, err) {
				continue // not the campaign's fault: prepared again when the database answers
			}
			if err != nil {
				e.log.Error("campaign cannot be sent; pausing it", "campaign", st.ID, "error", err)
				if perr := e.store.PauseCampaign(ctx, st.ID); perr != nil {
					e.log.Error("pause campaign", "campaign", st.ID, "error", perr)
				}
				continue
			}
			cs.poolHeld.Store(st.PoolPaused != "")
			e.mu.Lock()
			e.campaigns[st.ID] = cs
			e.mu.Unlock()
			e.log.Info("campaign running", "campaign", st.ID)
			e.kick()
			signal(e.materializeNow)
		}
	}
}

// finishCampaigns marks finished the running campaigns with nothing left.
func (e *Engine) finishCampaigns(ctx context.Context) {
	e.mu.Lock()
	busy := map[int64]bool{}
	for _, j := range e.inflight {
		busy[j.c.CampaignID] = true
	}
	var cand []int64
	for id, cs := range e.campaigns {
		if cs.running() && cs.matDone.Load() && !busy[id] {
			cand = append(cand, id)
		}
	}
	e.mu.Unlock()
	for _, id := range cand {
		if ok, err := e.store.FinishCampaignIfDone(ctx, id); err != nil {
			if ctx.Err() == nil {
				e.log.Error("finish campaign", "campaign", id, "error", err)
			}
		} else if ok {
			e.log.Info("campaign finished", "campaign", id)
			e.setStatus(id, models.CampaignFinished)
		}
	}
}
