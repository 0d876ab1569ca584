package mailer

import (
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/herald-mail/herald/internal/config"
)

// ServeStore is what the engine `herald serve` runs needs of the database:
// the engine's Store and the staging policy's; *models.Store implements it.
type ServeStore interface {
	Store
	StagingStore
}

// FromConfig builds the engine `herald serve` runs: the transport cfg names
// (TransportFromConfig), wrapped by Staging so that only allow-listed
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
	t, err := TransportFromConfig(cfg, log)
	if err != nil {
		return nil, err
	}
	if t != nil {
		t = Staging(t, NewCapture(store), StagingPolicy(store, 5*time.Second))
	}
	o := Options{NodeID: cfg.NodeID, Logger: log, RootURL: cfg.RootURL, Transport: t, FeedbackSender: cfg.FeedbackAddress,
		Lease: cfg.Lease, Heartbeat: cfg.LeaseHeartbeat}
	if cfg.Secret != "" {
		o.Secrets = cfg.Secrets()
	}
	return New(o, store), nil
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
