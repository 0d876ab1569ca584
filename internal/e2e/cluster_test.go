package e2e_test

import (
	"fmt"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/herald-mail/herald/internal/e2e"
	"github.com/herald-mail/herald/internal/testdb"
)

// Two `herald serve` nodes on one PostgreSQL database send one campaign to
// a destination whose rule allows 50 messages a second: the receiver never
// sees more than 55 in any sliding one-second window, neither when the
// second node joins mid-send nor after (each node takes half the rule).
// When one node is SIGKILLed its row stays behind; once its heartbeat
// expires the survivor takes the whole rule back.
func TestTwoNodesShareADestinationRate(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the built binary twice")
	}
	const (
		rate = 50
		n    = 2500
		// The survivor takes the dead node's part back within its expiry
		// (3 heartbeats of 2 s) and one more beat.
		takeBack = 10 * time.Second
	)
	dns := e2e.StartDNS(t)
	port := e2e.FreePort(t)
	rcv := e2e.StartReceiver(t, "127.0.0.2", port, e2e.ReceiverOptions{})
	dns.Provider(t, "mx.fast.test", "127.0.0.2", "fast.test")

	a := e2e.Start(t, e2e.Options{Transport: "direct", DNS: dns, MXPort: port, DatabaseURL: e2e.PostgresURL(t)})
	rule(t, a, url.Values{"name": {"fast"}, "domains": {"fast.test"}, "per_second": {fmt.Sprint(rate)},
		"max_connections": {"4"}, "backoff_min_seconds": {"2"}, "backoff_max_seconds": {"16"}, "position": {"50"}})
	a.SendingDomain(t, dns, "news.example")
	list := testdb.Readers(t, a.Store(t), "Fast readers", n, func(k int) testdb.Reader {
		return testdb.Reader{Email: fmt.Sprintf("reader%d@fast.test", k), Name: fmt.Sprintf("Reader %d", k)}
	})
	id := a.NewCampaign(t, e2e.Campaign{FromEmail: "hello@news.example", Lists: []int64{list}})
	a.StartCampaign(t, id)
	// Node b joins mid-send, while a sends at the whole rule.
	e2e.Eventually(t, 60*time.Second, "a alone to send 200", func() bool { return rcv.Count() >= 200 })
	b := a.Node(t)
	e2e.Eventually(t, 15*time.Second, "both nodes to count two live nodes", func() bool {
		return strings.Contains(a.Logs(), "nodes=2") && strings.Contains(b.Logs(), "nodes=2")
	})

	attempts := func(h *e2e.Herald) int { return strings.Count(h.Logs(), `msg="delivery attempt"`) }
	e2e.Eventually(t, 60*time.Second, "b to send", func() bool { return attempts(b) >= 100 })
	time.Sleep(3 * time.Second)
	b.Kill()
	killed := time.Now()
	t.Logf("killed node b after %d messages at the receiver (a sent %d, b %d)", rcv.Count(), attempts(a), attempts(b))

	e2e.Eventually(t, takeBack+20*time.Second, "the survivor to send 5 s past the take-back", func() bool {
		ms := rcv.Messages()
		return len(ms) > 0 && ms[len(ms)-1].At.After(killed.Add(takeBack+5*time.Second))
	})
	var all, after []time.Time
	for _, m := range rcv.Messages() {
		all = append(all, m.At)
		if at := m.At.Sub(killed); at >= takeBack && at < takeBack+5*time.Second {
			after = append(after, m.At)
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].Before(all[j]) })
	peak := peakIn(all, time.Second)
	t.Logf("%d messages at the receiver over %v: max %d in a sliding 1-second window (rule: %d/s, bound 55)",
		len(all), all[len(all)-1].Sub(all[0]).Round(time.Millisecond), peak, rate)
	if peak > 55 {
		t.Errorf("max = %d messages in a one-second window with two nodes, want <= 55 (rule %d/s)", peak, rate)
	}
	// At half the rule the survivor would send 125 in these 5 s, at the
	// whole rule 250.
	t.Logf("survivor alone, %v to %v after the kill: %d messages (%.1f/s), max %d in a sliding second",
		takeBack, takeBack+5*time.Second, len(after), float64(len(after))/5, peakIn(after, time.Second))
	if len(after) < 5*rate*3/4 {
		t.Errorf("the survivor sent %d messages in the 5 s from %v after the kill, want >= %d (the whole rule back)",
			len(after), takeBack, 5*rate*3/4)
	}
}
