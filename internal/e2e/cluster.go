package e2e

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/herald-mail/herald/internal/testdb"
	"github.com/herald-mail/herald/models"
)

// PostgresURL returns a database URL on the test PostgreSQL server whose
// search_path is a schema of the test's own, dropped when it ends. It skips
// the test when no server is configured (HERALD_TEST_POSTGRES), unless
// HERALD_REQUIRE_POSTGRES says one must be.
func PostgresURL(t testing.TB) string {
	t.Helper()
	dsn := testdb.PostgresDSN()
	if dsn == "" {
		if os.Getenv("HERALD_REQUIRE_POSTGRES") != "" {
			t.Fatal("HERALD_REQUIRE_POSTGRES is set but HERALD_TEST_POSTGRES is empty")
		}
		t.Skip("HERALD_TEST_POSTGRES is not set")
	}
	return testdb.PostgresSchema(t, dsn)
}

// NodeID is the node id the process runs under (its lease_node).
func (h *Herald) NodeID() string {
	id := ""
	for _, kv := range h.env {
		if v, ok := strings.CutPrefix(kv, "HERALD_NODE_ID="); ok {
			id = v
		}
	}
	return id
}

// Audience creates a single opt-in list of n confirmed subscribers,
// readerK@ one of domains in turn, written straight into the database: a
// set-up step, so that tests of sending need not spend minutes creating
// thousands of people through the API. It returns the list's id.
func (h *Herald) Audience(t testing.TB, n int, domains ...string) int64 {
	t.Helper()
	ctx := context.Background()
	s := h.Store(t)
	l := &models.List{Name: "Audience " + randomHex(3), Optin: models.OptinSingle, Visibility: models.ListPrivate}
	if err := s.CreateList(ctx, l); err != nil {
		t.Fatalf("e2e: create list: %v", err)
	}
	now := time.Now().UTC()
	tag := randomHex(3)
	for i := 0; i < n; i += 1000 {
		var sb strings.Builder
		var args []any
		sb.WriteString("INSERT INTO subscribers (email, name, attributes, status, created_at, updated_at) VALUES ")
		for k := i; k < min(n, i+1000); k++ {
			if k > i {
				sb.WriteByte(',')
			}
			sb.WriteString("(?, ?, ?, 'active', ?, ?)")
			args = append(args, fmt.Sprintf("r%s-%d@%s", tag, k, domains[k%len(domains)]), fmt.Sprintf("Reader %d", k),
				`{"city":"Paris"}`, now, now)
		}
		if err := s.DB().Exec(sb.String(), args...).Error; err != nil {
			t.Fatalf("e2e: seed subscribers: %v", err)
		}
	}
	err := s.DB().Exec(`INSERT INTO subscriptions (subscriber_id, list_id, status, created_at, updated_at)
		SELECT id, ?, 'confirmed', ?, ? FROM subscribers WHERE email LIKE ?`, l.ID, now, now, "r"+tag+"-%").Error
	if err != nil {
		t.Fatalf("e2e: seed subscriptions: %v", err)
	}
	return l.ID
}
