package mailer_test

import (
	"context"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/herald-mail/herald/internal/config"
	"github.com/herald-mail/herald/internal/testdb"
	"github.com/herald-mail/herald/mailer"
	"github.com/herald-mail/herald/models"
)

var clusterNodes = regexp.MustCompile(`(?m)^herald_cluster_nodes (\d+)$`)

// nodesSeen is the number of live nodes an engine shares its rules with,
// as its metric reports it.
func nodesSeen(t testing.TB, e *mailer.Engine) int {
	t.Helper()
	rec := httptest.NewRecorder()
	e.MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	m := clusterNodes.FindStringSubmatch(rec.Body.String())
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// Engines as serve builds them, on one database: each counts the other
// once it runs; one that stops cleanly deletes its row, so the other takes
// the whole rules back at its next beat; a node that dies (a row nobody
// beats any more) counts until its heartbeat expires.
func TestNodesShareTheRules(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		engine := func(id string) *mailer.Engine {
			e, err := mailer.FromConfig(&config.Config{NodeID: id, Secret: strings.Repeat("s", 32)}, s, testLogger(t))
			if err != nil {
				t.Fatal(err)
			}
			return e
		}
		a := engine("a")
		runEngine(t, a)
		waitFor(t, 5*time.Second, "a to count itself", func() bool { return nodesSeen(t, a) == 1 })

		b := engine("b")
		bctx, stopB := context.WithCancel(ctx)
		bDone := make(chan error, 1)
		go func() { bDone <- b.Run(bctx) }()
		// a sees b at its next beat (2 s).
		waitFor(t, 5*time.Second, "both to count two nodes", func() bool { return nodesSeen(t, a) == 2 && nodesSeen(t, b) == 2 })

		stopB()
		if err := <-bDone; err != nil {
			t.Fatalf("b.Run() = %v", err)
		}
		live, err := s.LiveNodes(ctx, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		if len(live) != 1 || live[0].ID != "a" {
			t.Fatalf("nodes after b stopped = %+v, want a alone (b deletes its row)", live)
		}
		left := time.Now()
		waitFor(t, 5*time.Second, "a to take the whole rules back", func() bool { return nodesSeen(t, a) == 1 })
		t.Logf("a alone %v after b left", time.Since(left).Round(time.Millisecond))

		// A node that died: its row stays and is not beaten any more.
		if err := s.BeatNode(ctx, "dead", time.Now(), time.Now()); err != nil {
			t.Fatal(err)
		}
		died := time.Now()
		waitFor(t, 5*time.Second, "a to count the dead node while its heartbeat is fresh", func() bool { return nodesSeen(t, a) == 2 })
		waitFor(t, 15*time.Second, "the dead node's heartbeat to expire", func() bool { return nodesSeen(t, a) == 1 })
		// Three heartbeats (6 s) must pass first: one late beat is no death.
		if d := time.Since(died); d < 6*time.Second {
			t.Errorf("a gave the dead node's part back %v after its last beat, want >= 6s (3 heartbeats)", d.Round(time.Millisecond))
		} else {
			t.Logf("a alone %v after the dead node's last beat", d.Round(time.Millisecond))
		}
	})
}
