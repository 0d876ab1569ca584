package mailer_test

import (
	"context"
	"io"
	"strings"
	"testing"

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
