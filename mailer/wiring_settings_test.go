package mailer_test

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/herald-mail/herald/internal/config"
	"github.com/herald-mail/herald/internal/testdb"
	"github.com/herald-mail/herald/mailer"
	"github.com/herald-mail/herald/models"
)

// TestFromConfigUsesSavedDeliverySettings: the one constructor serve runs
// takes the transport and relay saved on Settings → Delivery at start-up
// when the environment sets neither; HERALD_RELAY in the environment wins
// over the saved relay; ReloadTransport puts a later save in place.
func TestFromConfigUsesSavedDeliverySettings(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		secret := strings.Repeat("k", 32)
		parse := func(env map[string]string) *config.Config {
			t.Helper()
			env["HERALD_SECRET"] = secret
			cfg, err := config.Parse("serve", nil, func(k string) string { return env[k] }, io.Discard, nil)
			if err != nil {
				t.Fatal(err)
			}
			return cfg
		}
		saved := models.DeliverySettings{Transport: "relay", Relay: "smtp://db-user:db-pw@db-relay.test:587"}
		if _, err := s.SaveDeliverySettings(ctx, secret, models.DeliverySettings{}, saved, nil); err != nil {
			t.Fatal(err)
		}

		e, err := mailer.FromConfig(parse(map[string]string{}), s, testLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		if d := e.Delivery(); d.Transport != "relay" || d.Relay != saved.Relay {
			t.Errorf("no environment: transport %q relay %q; want the saved ones", d.Transport, d.Relay)
		}
		if e.RelaySigning() != nil {
			t.Error("RelaySigning for a relay without dkim=relay")
		}

		env := parse(map[string]string{"HERALD_RELAY": "smtp://env@env-relay.test:587?dkim=relay"})
		if got := env.Source("relay"); got != "HERALD_RELAY in the environment" {
			t.Errorf("Source(relay) = %q", got)
		}
		e2, err := mailer.FromConfig(env, s, testLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		if d := e2.Delivery(); d.Transport != "relay" || d.Relay != "smtp://env@env-relay.test:587?dkim=relay" {
			t.Errorf("HERALD_RELAY set: transport %q relay %q; want the environment's relay", d.Transport, d.Relay)
		}
		if e2.RelaySigning() == nil {
			t.Error("the environment's relay (dkim=relay) is not the one in use")
		}

		// A save read by ReloadTransport, no restart.
		next := saved
		next.Transport = "capture"
		if _, err := s.SaveDeliverySettings(ctx, secret, saved, next, nil); err != nil {
			t.Fatal(err)
		}
		if err := e.ReloadTransport(ctx); err != nil {
			t.Fatal(err)
		}
		if d := e.Delivery(); d.Transport != "capture" {
			t.Errorf("after ReloadTransport: %q, want capture", d.Transport)
		}
		// The environment's transport wins over a saved one.
		e3, err := mailer.FromConfig(parse(map[string]string{"HERALD_TRANSPORT": "direct"}), s, testLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		if d := e3.Delivery(); d.Transport != "direct" {
			t.Errorf("HERALD_TRANSPORT=direct: %q", d.Transport)
		}
	})
}

// TestReloadTransportWhileSending: the transport is replaced in the
// middle of a campaign (direct to a slow receiver, then capture saved on
// Settings → Delivery): the campaign finishes with every message sent
// once, part by the old transport and the rest by the new one, and the
// race detector finds nothing to say about the swap.
func TestReloadTransportWhileSending(t *testing.T) {
	s := testdb.SQLite(t)
	ctx := context.Background()
	secret := strings.Repeat("s", 32)
	mx := startMX(t, "127.0.0.1:0", false, func(string, int64) *smtp.SMTPError {
		time.Sleep(20 * time.Millisecond)
		return nil
	})
	cfg := &config.Config{Transport: "direct", MXOverride: mx.Addr, NodeID: "t", RootURL: "https://herald.test", Secret: secret}
	e, err := mailer.FromConfig(cfg, s, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	runEngine(t, e)
	const n = 120
	list := seed(t, s, n, []string{"p.test", "q.test"})
	cid := campaign(t, s, list, "news@herald.test", nil, nil)
	if err := e.StartCampaign(ctx, cid); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the first messages over the old transport", func() bool { return mx.count() >= 10 })
	if _, err := s.SaveDeliverySettings(ctx, secret, models.DeliverySettings{}, models.DeliverySettings{Transport: "capture"}, nil); err != nil {
		t.Fatal(err)
	}
	if err := e.ReloadTransport(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "campaign to finish", func() bool { return progress(t, s, cid).Status == models.CampaignFinished })
	var captured int64
	s.DB().Raw("SELECT COUNT(*) FROM outbox").Scan(&captured)
	p := progress(t, s, cid)
	if p.Sent != n || int64(mx.count())+captured != n {
		t.Errorf("sent %d (receiver %d + outbox %d), want %d, each once", p.Sent, mx.count(), captured, n)
	}
	if captured == 0 || mx.count() == n {
		t.Errorf("receiver %d, outbox %d: want the mail after the reload captured", mx.count(), captured)
	}
}
