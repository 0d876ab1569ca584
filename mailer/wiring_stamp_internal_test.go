package mailer

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/herald-mail/herald/internal/config"
	"github.com/herald-mail/herald/internal/testdb"
	"github.com/herald-mail/herald/models"
)

// TestOtherNodeSaveReloadsTransport: an engine whose delivery settings
// were saved by another node (the stamp moved; nothing called
// ReloadTransport here) rebuilds its default transport at its next
// settings refresh, and mail routed after it goes to new destinations.
func TestOtherNodeSaveReloadsTransport(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		secret := strings.Repeat("k", 32)
		cfg, err := config.Parse("serve", nil, func(k string) string { return map[string]string{"HERALD_SECRET": secret}[k] }, io.Discard, nil)
		if err != nil {
			t.Fatal(err)
		}
		e, err := FromConfig(cfg, s, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		if err := e.setup(ctx); err != nil {
			t.Fatal(err)
		}
		before := e.deflt.Load()
		if _, ok := before.t.(*Capture); !ok || e.Delivery().Transport != "capture" {
			t.Fatalf("at start: %T %q, want capture", before.t, e.Delivery().Transport)
		}
		// Another node saves the relay.
		if _, err := s.SaveDeliverySettings(ctx, secret, models.DeliverySettings{},
			models.DeliverySettings{Transport: "relay", Relay: "smtp://u:p@relay.test:587"}, nil); err != nil {
			t.Fatal(err)
		}
		if err := e.refreshOrg(ctx); err != nil {
			t.Fatal(err)
		}
		after := e.deflt.Load()
		if after.gen == before.gen || e.Delivery().Transport != "relay" || isCapture(after.t) {
			t.Fatalf("after the other node's save: gen %d→%d, %q, %T; want the relay", before.gen, after.gen, e.Delivery().Transport, after.t)
		}
		if after.rt.deflt == nil {
			t.Error("the new router has no rules")
		}
		if err := e.refreshOrg(ctx); err != nil || e.deflt.Load() != after {
			t.Errorf("a refresh with the same stamp rebuilt the transport again (%v)", err)
		}
	})
}
