package e2e_test

import (
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/herald-mail/herald/internal/e2e"
)

// flushBound is how long an accepted message's outcome may wait in memory
// before it is on disk: the engine flushes at least every 250 ms, and the
// write that starts then takes a moment to commit. A crash may repeat what
// the receiver accepted in this window before the kill, and what was on
// the wire (accepted just as the process died).
const flushBound = 500 * time.Millisecond

// sendCluster is a direct-delivery set-up for crash tests: one receiver
// standing in for the MX host of domains, a rule that lets the mail go
// fast over conns connections, and a campaign of n recipients.
type sendCluster struct {
	h       *e2e.Herald
	rcv     *e2e.Receiver
	dns     *e2e.DNS
	port    int
	domains []string
}

func newSendCluster(t *testing.T, dbURL string, conns int, env ...string) *sendCluster {
	t.Helper()
	c := &sendCluster{dns: e2e.StartDNS(t), port: e2e.FreePort(t)}
	for i := range 5 {
		c.domains = append(c.domains, fmt.Sprintf("d%d.crash.test", i))
	}
	c.rcv = e2e.StartReceiver(t, "127.0.0.2", c.port, e2e.ReceiverOptions{})
	c.dns.Provider(t, "mx.crash.test", "127.0.0.2", c.domains...)
	c.h = e2e.Start(t, e2e.Options{Transport: "direct", DNS: c.dns, MXPort: c.port, DatabaseURL: dbURL,
		Env: append([]string{"HERALD_LEASE=10s", "HERALD_LEASE_HEARTBEAT=2s"}, env...)})
	rule(t, c.h, url.Values{"name": {"crash"}, "domains": {strings.Join(c.domains, " ")}, "per_second": {"0"},
		"per_minute": {"0"}, "per_hour": {"0"}, "max_connections": {fmt.Sprint(conns)}, "backoff_min_seconds": {"2"},
		"backoff_max_seconds": {"60"}, "position": {"10"}})
	c.h.SendingDomain(t, c.dns, "news.crash.test")
	return c
}

// campaign creates and starts a campaign to n new recipients.
func (c *sendCluster) campaign(t *testing.T, n int) int64 {
	t.Helper()
	list := c.h.Audience(t, n, c.domains...)
	id := c.h.NewCampaign(t, e2e.Campaign{FromEmail: "hello@news.crash.test", Lists: []int64{list}})
	c.h.StartCampaign(t, id)
	return id
}

// tally reads the receiver's log: how many recipients got the message at
// least once, how many got it more than once (and how many extra copies).
type tally struct{ got, twice, extra int }

func (c *sendCluster) tally() tally {
	seen := map[string]int{}
	for _, m := range c.rcv.Messages() {
		for _, r := range m.To {
			seen[r]++
		}
	}
	var t tally
	for _, k := range seen {
		t.got++
		if k > 1 {
			t.twice++
			t.extra += k - 1
		}
	}
	return t
}

// acceptedAround counts the messages the receiver accepted from at-window
// up to just after at: those a crash at at may repeat.
func (c *sendCluster) acceptedAround(at time.Time, window time.Duration) int {
	n := 0
	for _, m := range c.rcv.Messages() {
		if m.At.After(at.Add(-window)) && m.At.Before(at.Add(100*time.Millisecond)) {
			n += len(m.To)
		}
	}
	return n
}

// killWhen waits until the receiver holds at least k messages, then kills
// h with SIGKILL and returns when.
func (c *sendCluster) killWhen(t *testing.T, h *e2e.Herald, k int) time.Time {
	t.Helper()
	e2e.Eventually(t, 2*time.Minute, fmt.Sprintf("%d messages at the receiver", k), func() bool { return c.rcv.Count() >= k })
	at := time.Now()
	h.Kill()
	return at
}

// A node killed with SIGKILL mid-send and started again finishes the
// campaign: every recipient gets the message, and the only repeats are
// messages the receiver accepted in the last flush interval before the
// kill (their outcome was still in memory) or on the wire.
func TestCrashMidSend(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the built binary")
	}
	for _, db := range []string{"sqlite", "postgres"} {
		t.Run(db, func(t *testing.T) {
			url := ""
			if db == "postgres" {
				url = e2e.PostgresURL(t)
			}
			const n = 6000
			c := newSendCluster(t, url, 10)
			id := c.campaign(t, n)
			killed := c.killWhen(t, c.h, n/3)
			atKill := c.rcv.Count()
			bound := c.acceptedAround(killed, flushBound)
			c.h.Restart()
			st := c.h.WaitCampaign(t, id, 3*time.Minute, "finished")
			got := c.tally()
			t.Logf("%s: killed after %d messages; %d recipients reached of %d, %d got it twice (%d extra copies); bound %d (accepted in the %v before the kill and on the wire); counters %v",
				db, atKill, got.got, n, got.twice, got.extra, bound, flushBound, st.Counters)
			if got.got != n {
				t.Errorf("%d of %d recipients reached, want all", got.got, n)
			}
			if got.extra > bound {
				t.Errorf("%d repeated messages, want at most %d", got.extra, bound)
			}
			if st.Counters["sent"] != n {
				t.Errorf("sent counter = %d, want %d", st.Counters["sent"], n)
			}
		})
	}
}

// Two nodes share a campaign on PostgreSQL; one is killed mid-send. The
// survivor takes over the dead node's rows within 15 s (the default lease
// and heartbeat), every recipient gets the message, and repeats stay
// within what a crash may repeat.
func TestTwoNodesOneKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the built binary")
	}
	const n = 20000
	c := newSendCluster(t, e2e.PostgresURL(t), 10)
	b := c.h.Node(t)
	id := c.campaign(t, n)
	killed := c.killWhen(t, c.h, n/4)
	bound := c.acceptedAround(killed, flushBound)
	s := c.h.Store(t)
	var ids []int64
	if err := s.DB().Raw("SELECT id FROM deliveries WHERE status = 'sending' AND lease_node = ?", c.h.NodeID()).
		Scan(&ids).Error; err != nil {
		t.Fatal(err)
	}
	orphans := len(ids)
	var leasedUntil time.Time
	if err := s.DB().Raw("SELECT MAX(lease_until) FROM deliveries WHERE status = 'sending' AND lease_node = ?", c.h.NodeID()).
		Row().Scan(&leasedUntil); err != nil {
		t.Fatal(err)
	}
	t.Logf("the dead node's last lease ends %v after the kill", leasedUntil.Sub(killed).Round(100*time.Millisecond))
	var takeover time.Duration
	e2e.Eventually(t, time.Minute, "the survivor to take the dead node's rows", func() bool {
		var left int64
		s.DB().Raw("SELECT COUNT(*) FROM deliveries WHERE status = 'sending' AND lease_node = ?", c.h.NodeID()).Scan(&left)
		takeover = time.Since(killed)
		return left == 0
	})
	st := b.WaitCampaign(t, id, 5*time.Minute, "finished")
	got := c.tally()
	var lastSent time.Time
	if err := s.DB().Raw("SELECT MAX(sent_at) FROM deliveries WHERE id IN ?", ids).Row().Scan(&lastSent); err != nil {
		t.Fatal(err)
	}
	sent := lastSent.Sub(killed)
	t.Logf("killed node held %d rows; survivor took them all %v after the kill and had sent them all %v after it; %d of %d reached, %d twice (%d extra copies), bound %d; counters %v",
		orphans, takeover.Round(100*time.Millisecond), sent.Round(100*time.Millisecond), got.got, n, got.twice, got.extra, bound, st.Counters)
	if sent > 15*time.Second {
		t.Errorf("the dead node's rows were all sent %v after the kill, want within 15 s", sent)
	}
	if orphans == 0 {
		t.Error("the killed node held no rows: the kill was not mid-send")
	}
	if takeover > 15*time.Second {
		t.Errorf("takeover took %v, want within 15 s; the survivor's warnings and errors:\n%s", takeover, problems(b.Logs()))
	}
	if got.got != n {
		t.Errorf("%d of %d recipients reached, want all", got.got, n)
	}
	if got.extra > bound {
		t.Errorf("%d repeated messages, want at most %d", got.extra, bound)
	}
}

// problems are the warning and error lines of a log.
func problems(log string) string {
	var out []string
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, "level=WARN") || strings.Contains(l, "level=ERROR") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
