package models

import (
	"context"
	"os"
	"strings"
	"sync"
	"testing"

	"gorm.io/gorm"
)

// syncWatch records, for every write the store runs, the value of PRAGMA
// synchronous read on the connection (or transaction) that ran it, and
// which pool that connection belongs to: the queue pool's connections are
// the ones with temp_store=MEMORY (Open).
type syncWatch struct {
	mu     sync.Mutex
	levels map[string][]int // by pool, in order
	writes []string         // "pool: statement", for messages
}

// watch hooks every write callback of db (the store's two handles share
// one gorm configuration, so one set of callbacks).
func (w *syncWatch) watch(t *testing.T, db *gorm.DB) {
	t.Helper()
	read := func(tx *gorm.DB) {
		sql := strings.TrimSpace(tx.Statement.SQL.String())
		if tx.Error != nil || sql == "" || strings.HasPrefix(strings.ToUpper(sql), "SELECT") {
			return
		}
		var level, temp int
		conn := tx.Statement.ConnPool
		if err := conn.QueryRowContext(tx.Statement.Context, "PRAGMA synchronous").Scan(&level); err != nil {
			t.Errorf("PRAGMA synchronous after %q: %v", sql, err)
			return
		}
		if err := conn.QueryRowContext(tx.Statement.Context, "PRAGMA temp_store").Scan(&temp); err != nil {
			t.Errorf("PRAGMA temp_store after %q: %v", sql, err)
			return
		}
		pool := "main"
		if temp == 2 {
			pool = "queue"
		}
		w.mu.Lock()
		w.levels[pool] = append(w.levels[pool], level)
		w.writes = append(w.writes, pool+": "+sql)
		w.mu.Unlock()
	}
	cb := db.Callback()
	for name, err := range map[string]error{
		"create": cb.Create().After("gorm:create").Register("durability:create", read),
		"update": cb.Update().After("gorm:update").Register("durability:update", read),
		"delete": cb.Delete().After("gorm:delete").Register("durability:delete", read),
		"raw":    cb.Raw().After("gorm:raw").Register("durability:raw", read),
	} {
		if err != nil {
			t.Fatalf("register %s callback: %v", name, err)
		}
	}
}

// take returns what was recorded since the last take and forgets it.
func (w *syncWatch) take() (map[string][]int, []string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	l, s := w.levels, w.writes
	w.levels, w.writes = map[string][]int{}, nil
	return l, s
}

// On SQLite, every commit that acknowledges what a person or an admin did
// (a one-click unsubscribe, a preference-centre unsubscribe, a consent
// confirmation, a suppression, a cancel) runs on a connection with
// synchronous=FULL (2), so it survives a power loss; the mailer's own
// writes (materialise, claim) run on the queue pool with NORMAL (1). The
// pragma is read on the connection or transaction that ran each write.
func TestActionsCommitWithSynchronousFull(t *testing.T) {
	ctx := context.Background()
	s := sqliteStore(t)
	w := &syncWatch{levels: map[string][]int{}}
	w.watch(t, s.db)

	l := &List{Name: "News", Optin: OptinDouble, Visibility: ListPublic}
	if err := s.CreateList(ctx, l); err != nil {
		t.Fatal(err)
	}
	ev := Evidence{Source: SourceAdmin, Actor: "test"}
	subs := make([]*Subscriber, 3)
	for i, email := range []string{"ann@example.com", "bob@example.com", "cat@example.com"} {
		subs[i] = &Subscriber{Email: email}
		if err := s.CreateSubscriber(ctx, subs[i], map[int64]string{l.ID: SubConfirmed}, ev); err != nil {
			t.Fatal(err)
		}
	}
	pending := &Subscriber{Email: "dan@example.com"}
	if err := s.CreateSubscriber(ctx, pending, map[int64]string{l.ID: SubUnconfirmed}, ev); err != nil {
		t.Fatal(err)
	}
	tpl := &Template{Kind: TemplateCampaign, Name: "T", Subject: "Hi", HTML: "<p>Hi {{.UnsubscribeURL}}</p>"}
	if err := s.CreateTemplate(ctx, tpl); err != nil {
		t.Fatal(err)
	}
	mk := func(name string) *Campaign {
		c := &Campaign{Name: name, TemplateID: &tpl.ID, FromEmail: "news@example.com"}
		if err := s.CreateCampaign(ctx, c, []int64{l.ID}); err != nil {
			t.Fatal(err)
		}
		return c
	}
	sent, cancelled := mk("Sent"), mk("Cancelled")
	if err := s.StartCampaign(ctx, sent.ID); err != nil {
		t.Fatal(err)
	}
	w.take()

	var err error
	for done := false; !done; {
		if done, err = s.MaterializeCampaign(ctx, sent.ID, 100); err != nil {
			t.Fatalf("MaterializeCampaign: %v", err)
		}
	}
	claimed, err := s.ClaimDeliveries(ctx, ClaimRequest{Node: "n1", Lease: 60e9, Limit: 10, CampaignIDs: []int64{sent.ID}})
	if err != nil || len(claimed) == 0 {
		t.Fatalf("ClaimDeliveries = %d rows, %v", len(claimed), err)
	}
	levels, writes := w.take()
	if len(levels["queue"]) == 0 || len(levels["main"]) != 0 {
		t.Fatalf("the mailer's writes ran on %v, want the queue pool only:\n%s", levels, strings.Join(writes, "\n"))
	}
	for _, lv := range levels["queue"] {
		if lv != 1 {
			t.Errorf("a queue write ran with synchronous=%d, want 1 (NORMAL): the send path pays for a sync per commit", lv)
		}
	}

	pref := Evidence{Source: SourcePreference, Actor: "subscriber"}
	actions := []struct {
		name string
		do   func() error
	}{
		{"one-click unsubscribe", func() error {
			_, err := s.UnsubscribeDelivery(ctx, claimed[0].ID, Evidence{Source: SourceOneClick, Actor: "subscriber"})
			return err
		}},
		{"preference-centre unsubscribe", func() error {
			return s.SetSubscriptions(ctx, subs[1].ID, map[int64]string{l.ID: SubUnsubscribed}, pref)
		}},
		{"consent confirmation", func() error {
			_, err := s.ConfirmSubscription(ctx, pending.ID, l.ID, Evidence{Source: SourceForm, Actor: "subscriber"})
			return err
		}},
		{"suppression", func() error { return s.AddSuppression(ctx, "eve@example.com", SuppressManual, "test") }},
		{"cancel", func() error { return s.CancelCampaign(ctx, cancelled.ID) }},
	}
	for _, a := range actions {
		if err := a.do(); err != nil {
			t.Fatalf("%s: %v", a.name, err)
		}
		levels, writes := w.take()
		if len(levels["main"]) == 0 || len(levels["queue"]) != 0 {
			t.Errorf("%s wrote on %v, want the main pool only:\n%s", a.name, levels, strings.Join(writes, "\n"))
		}
		for _, lv := range levels["main"] {
			if lv != 2 {
				t.Errorf("%s committed with synchronous=%d, want 2 (FULL):\n%s", a.name, lv, strings.Join(writes, "\n"))
				break
			}
		}
	}
}

// On PostgreSQL the same split: the queue pool's commits do not wait for
// the WAL flush (synchronous_commit off), the main pool's do.
func TestPostgresQueueCommitsWithoutFlush(t *testing.T) {
	dsn := os.Getenv("HERALD_TEST_POSTGRES")
	if dsn == "" {
		if os.Getenv("HERALD_REQUIRE_POSTGRES") != "" {
			t.Fatal("HERALD_REQUIRE_POSTGRES is set but HERALD_TEST_POSTGRES is empty")
		}
		t.Skip("HERALD_TEST_POSTGRES is not set")
	}
	ctx := context.Background()
	s, err := Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for pool, want := range map[*Store]string{s: "on", s.hot(): "off"} {
		var got string
		if err := pool.sql.QueryRowContext(ctx, "SHOW synchronous_commit").Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("synchronous_commit = %s on the %s pool, want %s", got, map[bool]string{true: "main", false: "queue"}[pool == s], want)
		}
	}
}
