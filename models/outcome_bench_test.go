package models_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/herald-mail/herald/internal/testdb"
	"github.com/herald-mail/herald/models"
)

// BenchmarkRecordOutcomes writes a batch of 512 sent outcomes, the way
// the engine's result writer does. "row by row" repeats one delivery in
// the batch, which makes RecordOutcomes take the one-UPDATE-a-row path
// (the only path before the multi-row statement). Each runs on SQLite and
// on PostgreSQL (when HERALD_TEST_POSTGRES is set), with 512 outcomes and
// with 16, the batch of a few connections under the unrecorded bound.
func BenchmarkRecordOutcomes(b *testing.B) {
	for _, db := range []struct {
		name string
		open func(testing.TB) *models.Store
	}{{"sqlite", testdb.SQLite}, {"postgres", testdb.Postgres}} {
		for _, n := range []int{16, 512} {
			for _, mode := range []string{"batched", "row by row"} {
				b.Run(fmt.Sprintf("%s/%d/%s", db.name, n, mode), func(b *testing.B) {
					benchRecordOutcomes(b, db.open(b), n, mode)
				})
			}
		}
	}
}

func benchRecordOutcomes(b *testing.B, s *models.Store, n int, mode string) {
	ctx := context.Background()
	cid, got := claimedCampaignB(b, s, n, "a")
	at := time.Now().UTC()
	outs := make([]models.Outcome, 0, n+1)
	for i, g := range got {
		outs = append(outs, models.Outcome{ID: g.ID, LeaseGen: g.LeaseGen, CampaignID: cid, Status: models.DeliverySent, Attempted: true, Code: 250,
			Enhanced: "2.0.0", Text: "queued as " + fmt.Sprint(i), MessageID: fmt.Sprintf("<%d@bench.test>", i), SourceIP: "192.0.2.1", MXHost: "mx.bench.test", TLS: benchTLS[i%5], At: at})
	}
	if mode == "row by row" {
		outs = append(outs, outs[0])
	}
	b.ResetTimer()
	var cpu time.Duration
	for range b.N {
		b.StopTimer()
		if err := s.DB().Exec("UPDATE deliveries SET status = 'sending', lease_node = 'a', sent_at = NULL WHERE campaign_id = ?", cid).Error; err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		c0 := processCPU()
		if k, err := s.RecordOutcomes(ctx, outs); err != nil || k != n {
			b.Fatalf("RecordOutcomes() = %d, %v; want %d", k, err, n)
		}
		cpu += processCPU() - c0
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*n), "µs/outcome")
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N*n), "cpu-µs/outcome")
}
