package models_test

import (
	"context"
	"testing"
	"time"

	"github.com/herald-mail/herald/internal/testdb"
	"github.com/herald-mail/herald/models"
)

func TestTLSCode(t *testing.T) {
	tests := []struct {
		in   string
		code int16
		text string
	}{
		{"", models.TLSPlain, "plain text"},
		{"plain text after a failed STARTTLS handshake (remote error: tls: handshake failure)", models.TLSPlain, "plain text"},
		{"TLS(0x0305) verified", 29, "TLS verified"},
		{"TLSv1.3 verified", 23, "TLSv1.3 verified"},
		{"TLSv1.3 unverified", 13, "TLSv1.3 unverified"},
		{"TLSv1.2 verified", 22, "TLSv1.2 verified"},
		{"TLSv1.2 unverified", 12, "TLSv1.2 unverified"},
		{"TLSv1.0 unverified", 10, "TLSv1.0 unverified"},
		{"0x0305 verified", 29, "TLS verified"}, // a version this code does not name is still TLS
	}
	for _, tt := range tests {
		code := models.TLSCode(tt.in)
		if code != tt.code {
			t.Errorf("TLSCode(%q) = %d, want %d", tt.in, code, tt.code)
		}
		if got := models.TLSText(code); got != tt.text {
			t.Errorf("TLSText(%d) = %q, want %q", code, got, tt.text)
		}
	}
	if got := models.TLSText(models.TLSUnknown); got != "" {
		t.Errorf("TLSText(TLSUnknown) = %q, want empty", got)
	}
}

// The TLS state of each attempt lands on its delivery through both ways
// of recording outcomes (SQLite's multi-row statement, and one UPDATE a
// row), and the provider report counts delivered messages over TLS and
// verified among those whose state is known.
func TestRecordOutcomesTLS(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		cid, got := claimedCampaign(t, s, 6, "a")
		at := time.Now().UTC().Truncate(time.Second)
		states := []struct {
			status string
			tls    int16
		}{
			{models.DeliverySent, models.TLSCode("TLSv1.3 verified")},
			{models.DeliverySent, models.TLSCode("TLSv1.3 unverified")},
			{models.DeliverySent, models.TLSPlain},
			{models.DeliverySent, models.TLSUnknown},
			{models.DeliveryBounced, models.TLSCode("TLSv1.2 unverified")}, // not delivered: not in the shares
			{models.DeliverySent, models.TLSCode("TLSv1.2 verified")},
		}
		outs := make([]models.Outcome, len(got))
		for i, g := range got {
			code := 250
			if states[i].status == models.DeliveryBounced {
				code = 550
			}
			outs[i] = models.Outcome{ID: g.ID, LeaseGen: g.LeaseGen, CampaignID: cid, Status: states[i].status, Attempted: true, Code: code,
				Text: "ok", SourceIP: "192.0.2.1", MXHost: "mx.c.test", TLS: states[i].tls, At: at}
		}
		// The first three in one batch; the rest with a delivery named
		// twice, which takes the row-by-row path.
		if n, err := s.RecordOutcomes(ctx, outs[:3]); err != nil || n != 3 {
			t.Fatalf("RecordOutcomes(first 3) = %d, %v; want 3", n, err)
		}
		rest := append(append([]models.Outcome(nil), outs[3:]...), outs[5])
		if n, err := s.RecordOutcomes(ctx, rest); err != nil || n != 3 {
			t.Fatalf("RecordOutcomes(rest, one twice) = %d, %v; want 3", n, err)
		}
		for i, g := range got {
			d, err := s.Delivery(ctx, g.ID)
			if err != nil {
				t.Fatal(err)
			}
			if d.TLS != states[i].tls || d.Status != states[i].status {
				t.Errorf("delivery %d = %s, tls %d (%q); want %s, tls %d", i, d.Status, d.TLS, models.TLSText(d.TLS),
					states[i].status, states[i].tls)
			}
		}
		provs, err := s.ProviderStatsOf(ctx, []int64{cid})
		if err != nil {
			t.Fatal(err)
		}
		var p *models.ProviderStats
		for i := range provs {
			if provs[i].Total > 0 {
				p = &provs[i]
			}
		}
		if p == nil {
			t.Fatalf("ProviderStatsOf() = %+v, want a provider with the campaign's deliveries", provs)
		}
		if p.TLSKnown != 4 || p.OverTLS != 3 || p.VerifiedTLS != 2 {
			t.Errorf("%s: TLS known %d, over TLS %d, verified %d; want 4, 3, 2", p.Provider, p.TLSKnown, p.OverTLS, p.VerifiedTLS)
		}
		if p.TLSPct() != 75 || p.VerifiedTLSPct() != 50 {
			t.Errorf("%s: TLSPct() = %v, VerifiedTLSPct() = %v; want 75, 50", p.Provider, p.TLSPct(), p.VerifiedTLSPct())
		}
	})
}
