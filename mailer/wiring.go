package mailer

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/herald-mail/herald/internal/config"
	"github.com/herald-mail/herald/mailer/spamc"
	"github.com/herald-mail/herald/models"
)

// ServeStore is what the engine `herald serve` runs needs of the database:
// the engine's Store and the staging policy's; *models.Store implements it.
type ServeStore interface {
	Store
	StagingStore
	DeliveryStore
}

// DeliveryStore reads the delivery settings saved on Settings → Delivery;
// *models.Store implements it.
type DeliveryStore interface {
	DeliverySettings(ctx context.Context, secrets []string) (models.DeliverySettings, error)
}

// Effective returns cfg with the delivery settings saved in the dashboard
// (d) in place of those neither a flag nor an environment variable set:
// the environment wins (cfg.Source names it).
func Effective(cfg *config.Config, d models.DeliverySettings) *config.Config {
	c := *cfg
	for _, f := range []struct {
		flag string
		dst  *string
		v    string
	}{
		{"transport", &c.Transport, d.Transport},
		{"relay", &c.Relay, d.Relay},
		{"bounce-imap", &c.BounceIMAP, d.BounceMailbox},
		{"bounce-imap-interval", &c.BounceIMAPInterval, d.BounceInterval},
		{"bounce-imap-move", &c.BounceIMAPMove, d.BounceMove},
	} {
		if f.v != "" && cfg.Source(f.flag) == "" {
			*f.dst = f.v
		}
	}
	return &c
}

// LoadEffective reads the saved delivery settings and applies them to
// cfg (Effective); the stamp is the saved version's.
func LoadEffective(ctx context.Context, cfg *config.Config, store DeliveryStore) (*config.Config, string, error) {
	d, err := store.DeliverySettings(ctx, cfg.Secrets())
	if err != nil {
		return nil, "", err
	}
	return Effective(cfg, d), d.Stamp, nil
}

// FromConfig builds the engine `herald serve` runs: the transport cfg names
// (TransportFromConfig; the settings saved on Settings → Delivery fill
// in what neither the environment nor a flag set, see Effective), wrapped by Staging so that only allow-listed
// recipients get real mail while the staging switch is on, and the engine
// options cfg sets. It is the one wiring: the binary runs it, and tests
// that mean "as deployed" call it (or start the binary) instead of
// assembling an engine. The wrappers keep the real transport's behaviour:
// with direct delivery the engine routes by MX with the transport's
// resolver (null MX and unknown domains bounce before any dial; domains
// whose MX host is the same share a destination and its rule), and a
// failed dial is a failed dial (a refused connection or a 421 greeting
// suspends the destination).
func FromConfig(cfg *config.Config, store ServeStore, log *slog.Logger) (*Engine, error) {
	if log == nil {
		log = slog.Default()
	}
	// The one build of the default transport: at start here, and again
	// when the settings change (Engine.ReloadTransport).
	build := func(ctx context.Context) (DefaultTransport, error) {
		eff, stamp, err := LoadEffective(ctx, cfg, store)
		if err != nil {
			return DefaultTransport{}, err
		}
		t, err := TransportFromConfig(eff, log)
		if err != nil {
			return DefaultTransport{}, err
		}
		if t != nil {
			t = Staging(t, NewCapture(store), StagingPolicy(store, 5*time.Second))
		}
		return DefaultTransport{Transport: t, Config: eff, Stamp: stamp}, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dt, err := build(ctx)
	if err != nil {
		return nil, err
	}
	o := Options{NodeID: cfg.NodeID, Logger: log, RootURL: cfg.RootURL, Transport: dt.Transport, Rebuild: build,
		FeedbackSender: cfg.FeedbackAddress, Lease: cfg.Lease, Heartbeat: cfg.LeaseHeartbeat}
	if cfg.Spamd != "" {
		// The checklist waits for it: a spamd that hangs must not hang
		// the campaign page for long.
		o.Spamd = &spamc.Client{Addr: cfg.Spamd, Timeout: 15 * time.Second}
	}
	if cfg.Secret != "" {
		o.Secrets = cfg.Secrets()
	}
	e := New(o, store)
	e.installDefault(dt, nil)
	return e, nil
}

// TransportFromConfig returns the transport cfg.Transport names: Direct
// (with cfg's DNS server, MX port, override and EHLO name), Relay
// (cfg.Relay: one pool per relay, settings from each URL's query; its DKIM
// records are looked up with cfg's DNS server), or nil for capture, the engine's default. log receives the
// transport's own events (TLS fallbacks, MTA-STS testing failures); nil
// means slog.Default().
func TransportFromConfig(cfg *config.Config, log *slog.Logger) (Transport, error) {
	switch cfg.Transport {
	case "direct":
		port := 0
		if cfg.MXPort != "" {
			p, err := strconv.Atoi(cfg.MXPort)
			if err != nil || p < 1 || p > 65535 {
				return nil, fmt.Errorf("mailer: MX port %q must be a port number from 1 to 65535", cfg.MXPort)
			}
			port = p
		}
		return NewDirect(DirectOptions{Resolver: NewResolver(cfg.DNSServer), MXOverride: cfg.MXOverride, Port: port,
			HELO: cfg.Hostname, Logger: log}), nil
	case "relay":
		hosts, err := ParseRelays(cfg.RelayURLs())
		if err != nil {
			return nil, err
		}
		return NewRelay(RelayOptions{Hosts: hosts, Logger: log, Resolver: NewResolver(cfg.DNSServer)}), nil
	case "", "capture":
		return nil, nil
	}
	return nil, fmt.Errorf("mailer: transport %q is not one of capture, direct, relay", cfg.Transport)
}
