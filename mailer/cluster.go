package mailer

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/herald-mail/herald/models"
)

// Several engines (nodes) on one database send to the same destinations,
// and a provider's limit applies to the sender, not to one process. So the
// nodes share every domain rule: each live node takes an equal part of the
// rule's rates and connection cap. A node is live while its heartbeat, in
// the nodes table, is younger than nodeExpiry heartbeats.
//
// The parts change without overshoot: a node that joins while others live
// waits until they have seen it (their next beat) and their last second at
// the larger part has passed before it sends; a node that stops cleanly
// deletes its row once its last message is out, and the others take its
// part at their next beat; a node that dies gives its part back when its
// heartbeat expires. Per-minute and per-hour windows are kept by each node
// for itself, so in the minute (hour) after a node joins the cluster may
// send up to one part more than the rule.
//
// On SQLite there is only ever one node: the same code runs, and it finds
// itself alone.

// ClusterStore is the registry of the nodes running on the database.
type ClusterStore interface {
	BeatNode(ctx context.Context, id string, started, now time.Time) error
	LiveNodes(ctx context.Context, since time.Time) ([]models.Node, error)
	LeaveNode(ctx context.Context, id string) error
}

var _ ClusterStore = (*models.Store)(nil)

// nodeExpiry is how many heartbeats a node may miss before the others take
// its part: one late beat (a slow database) must not let them overshoot.
const nodeExpiry = 3

// cluster is what an engine knows of the nodes it shares the limits with.
type cluster struct {
	started time.Time
	nodes   atomic.Int32 // live nodes, this one included; 0 before the first beat
	ids     []string     // the live nodes at the last change (clusterLoop only)
}

// nodes is the number of live nodes the rules are shared between, at
// least 1.
func (e *Engine) nodes() int { return max(1, int(e.cluster.nodes.Load())) }

// join registers the engine and takes its part of the limits. When other
// nodes are live it returns only once each of them has beaten since (and
// so lowered its part) or expired, and the last second at their old parts
// is over: until then it beats every quarter heartbeat and sends nothing.
func (e *Engine) join(ctx context.Context) error {
	e.cluster.started = time.Now()
	e.metrics.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "herald_cluster_nodes",
		Help: "Live nodes on the database, this one included: each takes an equal part of every domain rule's limits.",
	}, func() float64 { return float64(e.nodes()) }))
	others, err := e.beat(ctx)
	if err != nil {
		return fmt.Errorf("mailer: join the nodes on the database: %w", err)
	}
	if len(others) == 0 {
		return nil
	}
	joined := time.Now() // the row is committed: a beat stamped later reads it
	e.log.Info("waiting for the other nodes to lower their part of the rules", "node", e.o.NodeID, "others", len(others))
	t := time.NewTicker(max(e.o.Heartbeat/4, time.Millisecond))
	defer t.Stop()
	for !beatSince(others, joined) {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		o, err := e.beat(ctx)
		if err != nil {
			if ctx.Err() == nil {
				e.log.Error("node heartbeat", "node", e.o.NodeID, "error", err)
			}
			continue // still waiting for the same nodes
		}
		others = o
	}
	select {
	case <-ctx.Done():
	case <-time.After(time.Second):
	}
	return nil
}

// beatSince reports whether every node beat after t.
func beatSince(nodes []models.Node, t time.Time) bool {
	for _, n := range nodes {
		if !n.HeartbeatAt.After(t) {
			return false
		}
	}
	return true
}

// clusterLoop beats every heartbeat and follows the live nodes. While the
// database does not answer, the node keeps its part.
func (e *Engine) clusterLoop(ctx context.Context) {
	t := time.NewTicker(e.o.Heartbeat)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if _, err := e.beat(ctx); err != nil && ctx.Err() == nil {
			e.log.Error("node heartbeat", "node", e.o.NodeID, "error", err)
		}
	}
}

// beat records the heartbeat, reads the live nodes and, when their number
// changed, retunes every lane to the new part. It returns the other live
// nodes.
func (e *Engine) beat(ctx context.Context) ([]models.Node, error) {
	now := time.Now()
	if err := e.store.BeatNode(ctx, e.o.NodeID, e.cluster.started, now); err != nil {
		return nil, err
	}
	live, err := e.store.LiveNodes(ctx, now.Add(-nodeExpiry*e.o.Heartbeat))
	if err != nil {
		return nil, err
	}
	others := slices.DeleteFunc(live, func(n models.Node) bool { return n.ID == e.o.NodeID })
	ids := []string{e.o.NodeID} // counted even if its row went missing
	for _, n := range others {
		ids = append(ids, n.ID)
	}
	slices.Sort(ids)
	if slices.Equal(ids, e.cluster.ids) {
		return others, nil
	}
	e.cluster.ids = ids
	e.log.Info("live nodes changed: each takes an equal part of every domain rule", "node", e.o.NodeID,
		"nodes", len(ids), "ids", ids)
	if int(e.cluster.nodes.Swap(int32(len(ids)))) != len(ids) {
		e.retuneLanes()
	}
	return others, nil
}

// leave deletes the node's row once it sends no more, so the others take
// its part at their next beat.
func (e *Engine) leave() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := e.store.LeaveNode(ctx, e.o.NodeID); err != nil {
		e.log.Warn("node leave: the others take this node's part when its heartbeat expires", "node", e.o.NodeID, "error", err)
	}
}

// clusterShared is a transport with limits of its own that the nodes
// share (Relay: the account's quota and connections).
type clusterShared interface{ ShareAmong(nodes int) }

// retuneLanes applies the current part to every lane, and to the
// transports' own limits.
func (e *Engine) retuneLanes() {
	n := e.nodes()
	for _, t := range e.transports() {
		if sh, ok := t.(clusterShared); ok {
			sh.ShareAmong(n)
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, d := range e.dests {
		d.mu.Lock()
		for _, l := range d.lanes {
			l.mu.Lock()
			l.lim.retune(&d.rule.DomainRule, n)
			l.mu.Unlock()
		}
		d.mu.Unlock()
	}
}

// partPerSecond is one node's part of a rate of r a second shared by
// nodes: the whole part when it is 1 or more (so the parts never add up
// to more than r), else the fraction, sent one message every nodes/r
// seconds.
func partPerSecond(r float64, nodes int) float64 {
	if nodes <= 1 || r <= 0 {
		return r
	}
	if p := r / float64(nodes); p < 1 {
		return p
	}
	return math.Floor(r / float64(nodes))
}

// partWindow is one node's window of n messages a span shared by nodes:
// the whole part of n a span, else one message every nodes/n spans.
func partWindow(n int, per time.Duration, nodes int) *window {
	switch {
	case nodes <= 1 || n <= 0:
		return newWindow(n, per)
	case n >= nodes:
		return newWindow(n/nodes, per)
	}
	return newWindow(1, per*time.Duration(nodes)/time.Duration(n))
}

// partConns is one node's part of a cap of n connections (0: none), at
// least one.
func partConns(n, nodes int) int {
	if n <= 0 || nodes <= 1 {
		return n
	}
	return max(1, n/nodes)
}
