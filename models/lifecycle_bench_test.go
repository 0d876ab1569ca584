package models_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/herald-mail/herald/internal/testdb"
	"github.com/herald-mail/herald/models"
)

// BenchmarkDeliveryLifecycle is the database's share of sending one
// campaign message on SQLite: materialise the row, claim it, record its
// outcome, in the batch sizes the engine uses (mailer.Options: ClaimBatch,
// and outcomes written up to 512 at a time). Each phase reports its own
// µs per delivery (`herald-bench send` measures the whole pipeline).
func BenchmarkDeliveryLifecycle(b *testing.B) {
	const n = 20000
	ctx := context.Background()
	var mat, claim, record time.Duration
	var cpuRecord, cpuAll time.Duration
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		s := testdb.SQLite(b)
		cid := lifecycleCampaign(b, s, n)
		b.StartTimer()

		c0 := processCPU()
		t0 := time.Now()
		for done := false; !done; {
			var err error
			if done, err = s.MaterializeCampaign(ctx, cid, 5000); err != nil {
				b.Fatal(err)
			}
		}
		mat += time.Since(t0)

		var claimed []models.Claimed
		t0 = time.Now()
		for len(claimed) < n {
			got, err := s.ClaimDeliveries(ctx, models.ClaimRequest{Node: "n1", Lease: time.Minute, Limit: 1000, CampaignIDs: []int64{cid}})
			if err != nil || len(got) == 0 {
				b.Fatalf("ClaimDeliveries() = %d, %v", len(got), err)
			}
			claimed = append(claimed, got...)
		}
		claim += time.Since(t0)

		outs := make([]models.Outcome, len(claimed))
		at := time.Now().UTC()
		for k, c := range claimed {
			var tag [18]byte
			rand.Read(tag[:])
			outs[k] = models.Outcome{ID: c.ID, LeaseGen: c.LeaseGen, CampaignID: cid, Status: models.DeliverySent, Attempted: true, Code: 250, Enhanced: "2.0.0",
				Text: "2.0.0 Ok: queued", MessageID: "<" + base64.RawURLEncoding.EncodeToString(tag[:]) + "@news.bench.test>",
				SourceIP: "127.0.0.1", MXHost: "mx" + fmt.Sprint(k%5) + ".bench.test", TLS: benchTLS[k%5], At: at}
		}
		c1 := processCPU()
		t0 = time.Now()
		for k := 0; k < len(outs); k += 512 {
			if _, err := s.RecordOutcomes(ctx, outs[k:min(k+512, len(outs))]); err != nil {
				b.Fatal(err)
			}
		}
		record += time.Since(t0)
		cpuRecord += processCPU() - c1
		cpuAll += processCPU() - c0
	}
	per := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(b.N*n) }
	b.ReportMetric(per(mat), "µs/materialise")
	b.ReportMetric(per(claim), "µs/claim")
	b.ReportMetric(per(record), "µs/record")
	b.ReportMetric(per(mat+claim+record), "µs/delivery")
	// CPU time is steadier than wall time on a machine shared with other
	// work (the SQLite driver runs in this process).
	b.ReportMetric(per(cpuRecord), "cpu-µs/record")
	b.ReportMetric(per(cpuAll), "cpu-µs/delivery")
}

// processCPU is this process's user and system CPU time so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchTLS is the TLS state of each of the benchmark's five MX hosts: as
// with real traffic, a batch of outcomes holds a few different ones.
var benchTLS = [5]int16{models.TLSCode("TLSv1.3 unverified"), models.TLSCode("TLSv1.3 unverified"),
	models.TLSCode("TLSv1.3 verified"), models.TLSCode("TLSv1.2 unverified"), models.TLSPlain}

// lifecycleCampaign makes n subscribers on one list and a campaign to it,
// started and not yet materialised.
func lifecycleCampaign(b *testing.B, s *models.Store, n int) int64 {
	ctx := context.Background()
	// Imported just before the send, as in `herald-bench send`.
	list := testdb.Readers(b, s, "L", n, func(k int) testdb.Reader {
		return testdb.Reader{Email: fmt.Sprintf("reader%d@example%d.com", k, k%5), Name: fmt.Sprintf("Reader %d", k),
			Attributes: `{"city":"Lyon","plan":"pro"}`}
	})
	tpl := &models.Template{Kind: models.TemplateCampaign, Name: "t", HTML: "<p>x</p>"}
	if err := s.CreateTemplate(ctx, tpl); err != nil {
		b.Fatal(err)
	}
	c := &models.Campaign{Name: "c", TemplateID: &tpl.ID, FromEmail: "a@b.test"}
	if err := s.CreateCampaign(ctx, c, []int64{list}); err != nil {
		b.Fatal(err)
	}
	if err := s.StartCampaign(ctx, c.ID); err != nil {
		b.Fatal(err)
	}
	return c.ID
}
