package models_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/herald-mail/herald/internal/testdb"
	"github.com/herald-mail/herald/models"
)

// benchCSV is n rows of email,name,city with addresses that sort in no
// particular order.
func benchCSV(n, offset int) string {
	var b strings.Builder
	b.WriteString("email,name,city\n")
	first := []string{"maria", "john", "wei", "olga", "pierre", "aisha", "lars", "yuki", "carlos", "emma"}
	for i := range n {
		k := (i + offset) * 7919 % 1000003
		f := first[k%len(first)]
		fmt.Fprintf(&b, "%s.%d@example%d.com,%s %d,City %d\n", f, k, k%13, strings.ToUpper(f[:1])+f[1:], k%997, k%50)
	}
	return b.String()
}

// BenchmarkImport imports 20,000 rows per iteration into one growing
// database; rows/s is the figure to watch. For a million rows use
// `herald-bench import`.
func BenchmarkImport(b *testing.B) {
	s := testdb.SQLite(b)
	l := &models.List{Name: "Bench", Optin: models.OptinSingle, Visibility: models.ListPublic}
	if err := s.CreateList(context.Background(), l); err != nil {
		b.Fatal(err)
	}
	const rows = 20000
	var total time.Duration
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		data := benchCSV(rows, i*rows)
		im := &models.Import{Filename: "bench.csv"}
		if err := s.CreateImport(context.Background(), im); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start := time.Now()
		if err := s.RunImport(context.Background(), im.ID, strings.NewReader(data), int64(len(data)), importOpts(l.ID, models.ImportUpdate)); err != nil {
			b.Fatal(err)
		}
		total += time.Since(start)
	}
	b.ReportMetric(float64(b.N*rows)/total.Seconds(), "rows/s")
}

// BenchmarkSearch times each shape of subscriber search on 100,000
// subscribers (a million with `herald-bench import`).
func BenchmarkSearch(b *testing.B) {
	s := testdb.SQLite(b)
	ctx := context.Background()
	l := &models.List{Name: "Bench", Optin: models.OptinSingle, Visibility: models.ListPublic}
	if err := s.CreateList(ctx, l); err != nil {
		b.Fatal(err)
	}
	data := benchCSV(100000, 0)
	im := &models.Import{Filename: "bench.csv"}
	if err := s.CreateImport(ctx, im); err != nil {
		b.Fatal(err)
	}
	if err := s.RunImport(ctx, im.ID, strings.NewReader(data), int64(len(data)), importOpts(l.ID, models.ImportUpdate)); err != nil {
		b.Fatal(err)
	}
	if err := s.DB().Exec("UPDATE subscriptions SET status = 'unconfirmed' WHERE subscriber_id % 10 = 0").Error; err != nil {
		b.Fatal(err)
	}
	for _, sh := range []struct {
		name string
		q    models.SubscriberQuery
	}{
		{"first", models.SubscriberQuery{}},
		{"cursor", models.SubscriberQuery{Before: 50000}},
		{"email_prefix", models.SubscriberQuery{Search: "maria.5"}},
		{"name_prefix", models.SubscriberQuery{Search: "Olga 1"}},
		{"common_prefix", models.SubscriberQuery{Search: "j"}},
		{"list", models.SubscriberQuery{ListID: l.ID}},
		{"list_status", models.SubscriberQuery{ListID: l.ID, Status: models.SubUnconfirmed}},
		{"list_prefix", models.SubscriberQuery{ListID: l.ID, Search: "wei"}},
	} {
		b.Run(sh.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := s.SearchSubscribers(ctx, sh.q); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
