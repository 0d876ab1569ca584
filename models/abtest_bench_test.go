package models_test

import (
	"context"
	"testing"
	"time"

	"github.com/herald-mail/herald/internal/testdb"
)

// BenchmarkABMaterialize compares materialising a 20,000-person campaign
// with and without an A/B test (20% share, two variants) on SQLite: the
// test adds holding each batch and, at the end, the draw. It reports µs
// per delivery for each, and the draw's own time.
func BenchmarkABMaterialize(b *testing.B) {
	const n = 20000
	ctx := context.Background()
	var plain, ab, draw time.Duration
	for b.Loop() {
		for _, withAB := range []bool{false, true} {
			b.StopTimer()
			s := testdb.SQLite(b)
			cid := lifecycleCampaign(b, s, n)
			if withAB {
				s.DB().Exec("UPDATE campaigns SET ab_share = 20, ab_metric = 'clicks', ab_wait_seconds = 3600 WHERE id = ?", cid)
				s.DB().Exec("INSERT INTO campaign_variants (campaign_id, idx, label, subject) VALUES (?, 1, 'A', 'a'), (?, 2, 'B', 'b')", cid, cid)
			}
			b.StartTimer()
			t0 := time.Now()
			for done := false; !done; {
				var err error
				t1 := time.Now()
				if done, err = s.MaterializeCampaign(ctx, cid, 5000); err != nil {
					b.Fatal(err)
				}
				if done && withAB {
					draw += time.Since(t1) // the last call draws the test share
				}
			}
			if withAB {
				ab += time.Since(t0)
			} else {
				plain += time.Since(t0)
			}
			b.StopTimer()
			if withAB {
				var test int64
				s.DB().Raw("SELECT COUNT(*) FROM deliveries WHERE campaign_id = ? AND variant IS NOT NULL", cid).Scan(&test)
				if test != n/5 {
					b.Fatalf("test share = %d, want %d", test, n/5)
				}
			}
			s.Close()
			b.StartTimer()
		}
	}
	per := float64(b.N) * n
	b.ReportMetric(float64(plain.Microseconds())/per, "µs/delivery-plain")
	b.ReportMetric(float64(ab.Microseconds())/per, "µs/delivery-ab")
	b.ReportMetric(float64(draw.Milliseconds())/float64(b.N), "ms/draw")
}
