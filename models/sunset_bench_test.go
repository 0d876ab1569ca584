package models_test

import (
	"context"
	"testing"
	"time"

	"github.com/herald-mail/herald/internal/testdb"
	"github.com/herald-mail/herald/models"
)

// BenchmarkSunsetMatches counts and previews the people a sunset rule
// matches among 50,000 subscribers who each received 8 campaigns, a third
// of whom opened one (a person) last month and a sixth only by a machine.
func BenchmarkSunsetMatches(b *testing.B) {
	const n = 50000
	s := testdb.SQLite(b)
	ctx := context.Background()
	l := &models.List{Name: "All", Optin: models.OptinSingle, Visibility: models.ListPrivate}
	if err := s.CreateList(ctx, l); err != nil {
		b.Fatal(err)
	}
	now := time.Now().UTC()
	old, recent := now.AddDate(-1, 0, 0), now.AddDate(0, -1, 0)
	var campaigns []int64
	for range 8 {
		c := &models.Campaign{Name: "c", FromEmail: "a@b.test"}
		if err := s.CreateCampaign(ctx, c, nil); err != nil {
			b.Fatal(err)
		}
		campaigns = append(campaigns, c.ID)
	}
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{`INSERT INTO subscribers (email, created_at, updated_at)
			WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < ?) SELECT 'p' || i || '@example.com', ?, ? FROM c`, []any{n, old, old}},
		{`INSERT INTO subscriptions (subscriber_id, list_id, status, created_at, updated_at) SELECT id, ?, 'confirmed', ?, ? FROM subscribers`, []any{l.ID, old, old}},
		{`INSERT INTO deliveries (campaign_id, subscriber_id, list_id, domain, status, attempts, next_attempt_at, created_at)
			SELECT c.id, s.id, ?, 'example.com', 'sent', 1, ?, ? FROM subscribers s CROSS JOIN campaigns c`, []any{l.ID, old, old}},
		{`INSERT INTO events (delivery_id, campaign_id, subscriber_id, kind, machine, created_at)
			SELECT 0, ?, id, 'open', id % 6 = 1, ? FROM subscribers WHERE id % 3 = 0 OR id % 6 = 1`, []any{campaigns[0], recent}},
	} {
		if err := s.DB().Exec(q.sql, q.args...).Error; err != nil {
			b.Fatal(err)
		}
	}
	s.DB().Exec("ANALYZE")
	rule := models.DefaultSunsetRule()
	b.ResetTimer()
	for range b.N {
		got, preview, err := s.SunsetMatches(ctx, rule, now, 20)
		if err != nil {
			b.Fatal(err)
		}
		// Everyone but the third who opened as a person.
		if want := int64(n - n/3); got != want || len(preview) != 20 {
			b.Fatalf("SunsetMatches = %d (%d shown), want %d", got, len(preview), want)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/count")
}
