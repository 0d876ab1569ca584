package testdb

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/herald-mail/herald/models"
)

// Reader is one subscriber made by Readers; Attributes is a JSON object.
type Reader struct {
	Email, Name, Attributes string
}

// Readers creates a single opt-in list called name and n active
// subscribers confirmed on it, reader(k) giving the k-th, and returns the
// list's id. It writes in bulk: CreateSubscriber, one transaction each with
// its consent record, is too slow for the thousands a load test needs.
func Readers(t testing.TB, s *models.Store, name string, n int, reader func(k int) Reader) int64 {
	t.Helper()
	ctx := context.Background()
	l := &models.List{Name: name, Optin: models.OptinSingle, Visibility: models.ListPrivate}
	if err := s.CreateList(ctx, l); err != nil {
		t.Fatal(err)
	}
	var before int64
	if err := s.DB().Raw("SELECT COALESCE(MAX(id), 0) FROM subscribers").Scan(&before).Error; err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	for i := 0; i < n; i += 500 {
		var sb strings.Builder
		var args []any
		sb.WriteString("INSERT INTO subscribers (email, name, attributes, status, created_at, updated_at) VALUES ")
		for k := i; k < min(n, i+500); k++ {
			if k > i {
				sb.WriteByte(',')
			}
			sb.WriteString("(?, ?, ?, 'active', ?, ?)")
			r := reader(k)
			if r.Attributes == "" {
				r.Attributes = "{}"
			}
			args = append(args, r.Email, r.Name, r.Attributes, now, now)
		}
		if err := s.DB().Exec(sb.String(), args...).Error; err != nil {
			t.Fatal(fmt.Errorf("insert readers: %w", err))
		}
	}
	if err := s.DB().Exec(`INSERT INTO subscriptions (subscriber_id, list_id, status, created_at, updated_at)
		SELECT id, ?, 'confirmed', ?, ? FROM subscribers WHERE id > ?`, l.ID, now, now, before).Error; err != nil {
		t.Fatal(fmt.Errorf("subscribe readers: %w", err))
	}
	return l.ID
}
