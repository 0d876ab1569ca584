// Package config reads Herald's settings from flags and HERALD_* environment
// variables into one Config, built once in main and passed down.
package config

import (
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// Config is every setting Herald reads at start-up. Flags win over
// environment variables, which win over the defaults.
type Config struct {
	// DatabaseURL is a postgres:// URL or a SQLite file path.
	DatabaseURL string
	// Listen is the dashboard and public pages' address.
	Listen string
	// RootURL is the public base URL written into emails and links. Empty
	// means http://<Listen>.
	RootURL string
	// Hostname is the name Herald greets receiving servers with (EHLO)
	// when delivering directly. Empty means the root URL's host (an
	// address literal such as [192.0.2.1] when that host is an address).
	Hostname string
	// Secret signs sessions and public links. Empty means: generate one on
	// first start and keep it in the database.
	Secret string
	// InboundListen is the address of the inbound SMTP server for bounces,
	// complaints and mailto unsubscribes. Empty disables it.
	InboundListen string
	// MetricsListen serves /metrics on a separate address when set;
	// otherwise /metrics is served on Listen to signed-in admins.
	MetricsListen string
	// MXOverride sends all direct-delivery traffic to this host:port (tests
	// and staging).
	MXOverride string
	// MXPort is the SMTP port of MX hosts for direct delivery. Empty means
	// 25; tests and staging point it at receivers on another port while MX
	// lookups stay real, so routing, MX grouping and null MX still apply.
	MXPort string
	// DNSServer is the host:port of the DNS server for MX lookups and DNS
	// checks. Empty means the system resolver.
	DNSServer string
	// NodeID names this process in delivery leases. Empty means the host name.
	NodeID string
	// Transport is how mail leaves: capture (into the outbox, the default),
	// direct (to the recipients' MX hosts) or relay.
	Transport string
	// Relay is the relay for Transport relay: smtp://user:pass@host:port
	// (STARTTLS) or smtps://… (implicit TLS), with settings in the query
	// (connections, rate, max_per_conn, weight, priority, dkim,
	// dkim_selectors); several relays are separated by spaces or commas.
	Relay string
	// FeedbackAddress is the inbound address that receives feedback-loop
	// (ARF complaint) reports. Empty: none.
	FeedbackAddress string
	// BounceIMAP is a mailbox to poll for bounces and complaints:
	// imaps://user:pass@host:993/INBOX or imap://… (STARTTLS). Empty: off.
	BounceIMAP string
	// BounceIMAPInterval is the time between two polls (a Go duration).
	BounceIMAPInterval string
	// BounceIMAPMove is the folder handled messages move to; empty deletes them.
	BounceIMAPMove string
	// Webhook secrets of the ESPs; an empty one turns its endpoint off.
	WebhookSESTopics, WebhookSendGridKey, WebhookPostmarkToken, WebhookMailgunKey string
	// SecretFile is a file holding Secret (its first line), for secret
	// stores that mount files. Empty: none.
	SecretFile string
	// TrustedProxies is a comma-separated list of CIDRs (or addresses) of
	// reverse proxies whose X-Forwarded-For header is believed. Empty: none,
	// the client address is the TCP peer's.
	TrustedProxies string
	// ImportMaxMB is the largest subscriber import upload, in megabytes.
	ImportMaxMB string
	// LeaseText is how long a delivery stays leased to a node without
	// renewal (a Go duration); another node takes a dead node's rows
	// over once it passed. LeaseHeartbeatText is how often a node renews
	// what it holds; it must be under half the lease.
	LeaseText, LeaseHeartbeatText string
	// WebhookPollText is how often outgoing webhook events are collected
	// and due deliveries posted (a Go duration). WebhookBackoffText is the
	// comma-separated waits before each retry of a failed delivery.
	WebhookPollText, WebhookBackoffText string
	// BlocklistIntervalText is how often the sending addresses and
	// domains are checked against the DNS blocklists (a Go duration).
	BlocklistIntervalText string
	// PlacementPollText is how often the seed mailboxes of running
	// placement tests are searched (a Go duration).
	PlacementPollText string
	// ResetLinkTTLText and InviteLinkTTLText are how long a password reset
	// link and an invitation link work (Go durations).
	ResetLinkTTLText, InviteLinkTTLText string
	// Spamd is the host:port of SpamAssassin's spamd, which scores each
	// campaign's message in the pre-send checklist. Empty: no scoring.
	Spamd string

	// PreviousSecrets are older secrets whose links (in mail already
	// sent) are still accepted; serve fills it with the database's stored
	// secret when Secret replaces it.
	PreviousSecrets []string
	// Proxies is TrustedProxies parsed.
	Proxies []*net.IPNet
	// ImportMaxBytes is ImportMaxMB in bytes.
	ImportMaxBytes int64
	// Lease and LeaseHeartbeat are LeaseText and LeaseHeartbeatText parsed.
	Lease, LeaseHeartbeat time.Duration
	// WebhookPoll and WebhookBackoff are WebhookPollText and
	// WebhookBackoffText parsed.
	WebhookPoll    time.Duration
	WebhookBackoff []time.Duration
	// BlocklistInterval is BlocklistIntervalText parsed.
	BlocklistInterval time.Duration
	// PlacementPoll is PlacementPollText parsed.
	PlacementPoll time.Duration
	// ResetLinkTTL and InviteLinkTTL are ResetLinkTTLText and
	// InviteLinkTTLText parsed; zero means the default (1h and 7 days).
	ResetLinkTTL, InviteLinkTTL time.Duration
	// SetBy says, for each setting given from outside (by its flag name,
	// e.g. "relay"), where it came from: "the -relay flag" or "HERALD_RELAY
	// in the environment". Settings the dashboard can also change (the
	// transport, relay and bounce mailbox) keep these values then: the
	// environment and flags win over the database.
	SetBy map[string]string
}

// Source returns where the setting named by its flag came from ("" when
// it has its default): see SetBy.
func (c *Config) Source(flag string) string { return c.SetBy[flag] }

// Var describes one setting for help and the README.
type Var struct {
	Flag, Env, Default, Usage string
	dst                       *string
}

// Vars returns the settings of c with their names and defaults.
func (c *Config) Vars() []Var {
	return []Var{
		{"db", "HERALD_DATABASE_URL", "herald.db", "SQLite file path, or postgres://user@host/db URL", &c.DatabaseURL},
		{"listen", "HERALD_LISTEN", "127.0.0.1:8080", "address of the dashboard and public pages", &c.Listen},
		{"root-url", "HERALD_ROOT_URL", "", "public base URL used in emails (default http://<listen>)", &c.RootURL},
		{"hostname", "HERALD_HOSTNAME", "", "EHLO name of direct delivery, a fully qualified name whose address's reverse DNS points back to it (default: the root URL's host)", &c.Hostname},
		{"secret", "HERALD_SECRET", "", "secret for sessions and signed links (default: generated and stored in the database on first start)", &c.Secret},
		{"inbound-listen", "HERALD_INBOUND_LISTEN", "", "address of the inbound SMTP server for bounces and complaints (empty: off)", &c.InboundListen},
		{"metrics-listen", "HERALD_METRICS_LISTEN", "", "separate address for Prometheus /metrics (empty: on the dashboard, admins only)", &c.MetricsListen},
		{"mx-override", "HERALD_MX_OVERRIDE", "", "host:port that receives all direct deliveries (testing, staging)", &c.MXOverride},
		{"mx-port", "HERALD_MX_PORT", "25", "SMTP port of MX hosts for direct delivery (testing, staging; MX lookups stay real)", &c.MXPort},
		{"dns-server", "HERALD_DNS_SERVER", "", "host:port of the DNS server for MX lookups (default: system resolver)", &c.DNSServer},
		{"node-id", "HERALD_NODE_ID", "", "name of this node in delivery leases (default: host name)", &c.NodeID},
		{"transport", "HERALD_TRANSPORT", "capture", "how mail leaves: capture (outbox in the dashboard), direct (MX delivery) or relay", &c.Transport},
		{"relay", "HERALD_RELAY", "", "relay URL(s) for -transport relay: smtp://user:pass@host:587 or smtps://host:465; query: connections=10, rate=0 (msg/s), max_per_conn=0, weight=1, priority=0 (higher: failover), dkim=relay (the relay signs), dkim_selectors=s1,s2; several separated by spaces or commas", &c.Relay},
		{"feedback-address", "HERALD_FEEDBACK_ADDRESS", "", "inbound address for feedback-loop complaint reports", &c.FeedbackAddress},
		{"bounce-imap", "HERALD_BOUNCE_IMAP", "", "mailbox to poll for bounces: imaps://user:pass@host:993/INBOX (empty: off)", &c.BounceIMAP},
		{"bounce-imap-interval", "HERALD_BOUNCE_IMAP_INTERVAL", "1m", "time between two polls of the bounce mailbox", &c.BounceIMAPInterval},
		{"bounce-imap-move", "HERALD_BOUNCE_IMAP_MOVE", "", "folder for handled bounce messages (empty: delete them)", &c.BounceIMAPMove},
		{"webhook-ses-topics", "HERALD_WEBHOOK_SES_TOPICS", "", "comma-separated SNS topic ARNs accepted at /webhooks/ses (empty: off)", &c.WebhookSESTopics},
		{"webhook-sendgrid-key", "HERALD_WEBHOOK_SENDGRID_KEY", "", "SendGrid signed event webhook public key, base64 (empty: off)", &c.WebhookSendGridKey},
		{"webhook-postmark-token", "HERALD_WEBHOOK_POSTMARK_TOKEN", "", "secret in /webhooks/postmark/TOKEN or its basic-auth password (empty: off)", &c.WebhookPostmarkToken},
		{"webhook-mailgun-key", "HERALD_WEBHOOK_MAILGUN_KEY", "", "Mailgun webhook signing key (empty: off)", &c.WebhookMailgunKey},
		{"secret-file", "HERALD_SECRET_FILE", "", "file holding the secret (instead of -secret)", &c.SecretFile},
		{"trusted-proxies", "HERALD_TRUSTED_PROXIES", "", "comma-separated CIDRs of reverse proxies whose X-Forwarded-For is believed (empty: none)", &c.TrustedProxies},
		{"import-max-mb", "HERALD_IMPORT_MAX_MB", "1024", "largest subscriber import upload, in MB", &c.ImportMaxMB},
		{"lease", "HERALD_LEASE", "10s", "how long a node's claim on a delivery holds without renewal; a surviving node takes a dead node's deliveries over after it", &c.LeaseText},
		{"lease-heartbeat", "HERALD_LEASE_HEARTBEAT", "2s", "how often a node renews its claims (under half of -lease)", &c.LeaseHeartbeatText},
		{"placement-poll", "HERALD_PLACEMENT_POLL", "15s", "how often the seed mailboxes of running placement tests are searched", &c.PlacementPollText},
		{"webhook-poll", "HERALD_WEBHOOK_POLL", "5s", "how often outgoing webhook events are collected and due deliveries posted", &c.WebhookPollText},
		{"webhook-backoff", "HERALD_WEBHOOK_BACKOFF", "30s,2m,10m,1h,4h,16h", "waits before each retry of a failed outgoing webhook delivery; it is given up after the last", &c.WebhookBackoffText},
		{"blocklist-interval", "HERALD_BLOCKLIST_INTERVAL", "1h", "how often sending addresses and domains are checked against DNS blocklists (each run taken by one node, with jitter)", &c.BlocklistIntervalText},
		{"reset-link-ttl", "HERALD_RESET_LINK_TTL", "1h", "how long a password reset link works", &c.ResetLinkTTLText},
		{"spamd", "HERALD_SPAMD", "", "host:port of SpamAssassin's spamd: the pre-send checklist shows each campaign's spam score (empty: off)", &c.Spamd},
		{"invite-link-ttl", "HERALD_INVITE_LINK_TTL", "168h", "how long an invitation link works", &c.InviteLinkTTLText},
	}
}

// Parse fills a Config from the environment and then args (flags). Output of
// -h goes to out. extra, when not nil, adds a command's own flags.
func Parse(name string, args []string, getenv func(string) string, out io.Writer, extra func(*flag.FlagSet)) (*Config, error) {
	c := &Config{}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(out)
	if extra != nil {
		extra(fs)
	}
	for _, v := range c.Vars() {
		def := v.Default
		if e := getenv(v.Env); e != "" {
			def = e
		}
		fs.StringVar(v.dst, v.Flag, def, v.Usage+" ($"+v.Env+")")
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	c.SetBy = map[string]string{}
	for _, v := range c.Vars() {
		if getenv(v.Env) != "" {
			c.SetBy[v.Flag] = v.Env + " in the environment"
		}
	}
	fs.Visit(func(f *flag.Flag) {
		if isVar(c, f.Name) {
			c.SetBy[f.Name] = "the -" + f.Name + " flag"
		}
	})
	if err := c.validate(); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *Config) validate() error {
	if err := c.linkTTLs(); err != nil {
		return err
	}
	if err := c.leases(); err != nil {
		return err
	}
	if err := c.webhooks(); err != nil {
		return err
	}
	if d, err := time.ParseDuration(c.BlocklistIntervalText); err != nil || d < time.Second {
		return fmt.Errorf("config: blocklist interval %q must be a duration of at least 1s, e.g. 1h", c.BlocklistIntervalText)
	} else {
		c.BlocklistInterval = d
	}
	if d, err := time.ParseDuration(c.BounceIMAPInterval); c.BounceIMAPInterval != "" && (err != nil || d < time.Second) {
		return fmt.Errorf("config: bounce mailbox poll interval %q must be a duration of at least 1s, e.g. 1m", c.BounceIMAPInterval)
	}
	if h, p, err := net.SplitHostPort(c.Spamd); c.Spamd != "" && (err != nil || h == "" || p == "") {
		return fmt.Errorf("config: spamd address %q must be host:port, e.g. 127.0.0.1:783", c.Spamd)
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("config: listen address %q must be host:port, e.g. 127.0.0.1:8080", c.Listen)
	}
	if c.RootURL == "" {
		host := c.Listen
		if strings.HasPrefix(host, ":") {
			host = "localhost" + host
		}
		c.RootURL = "http://" + host
	}
	u, err := url.Parse(c.RootURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("config: root URL %q must be an absolute http(s) URL, e.g. https://mail.example.com", c.RootURL)
	}
	c.RootURL = strings.TrimRight(c.RootURL, "/")
	if err := c.hostname(u.Hostname()); err != nil {
		return err
	}
	if c.SecretFile != "" {
		if c.Secret != "" {
			return fmt.Errorf("config: set the secret or the secret file, not both")
		}
		b, err := os.ReadFile(c.SecretFile)
		if err != nil {
			return fmt.Errorf("config: secret file: %w", err)
		}
		c.Secret, _, _ = strings.Cut(strings.TrimSpace(string(b)), "\n")
		c.Secret = strings.TrimSpace(c.Secret)
		if c.Secret == "" {
			return fmt.Errorf("config: secret file %s is empty", c.SecretFile)
		}
	}
	if c.Secret != "" && len(c.Secret) < 32 {
		return fmt.Errorf("config: the secret must be at least 32 characters (or leave it empty to have one generated)")
	}
	if p, err := strconv.Atoi(c.MXPort); c.MXPort != "" && (err != nil || p < 1 || p > 65535) {
		return fmt.Errorf("config: MX port %q must be a port number from 1 to 65535", c.MXPort)
	}
	switch c.Transport {
	case "capture", "direct":
	case "relay":
		urls := c.RelayURLs()
		if len(urls) == 0 {
			return fmt.Errorf("config: transport relay needs a relay URL such as smtp://user:pass@smtp.example.com:587")
		}
		for _, r := range urls {
			u, err := url.Parse(r)
			if err != nil || (u.Scheme != "smtp" && u.Scheme != "smtps") || u.Hostname() == "" {
				return fmt.Errorf("config: relay %q is not a URL such as smtp://user:pass@smtp.example.com:587", redactURL(r))
			}
		}
	default:
		return fmt.Errorf("config: transport %q is not one of capture, direct, relay", c.Transport)
	}
	if c.NodeID == "" {
		c.NodeID, _ = os.Hostname()
	}
	c.Proxies = nil
	for _, p := range strings.Split(c.TrustedProxies, ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		if !strings.Contains(p, "/") {
			if ip := net.ParseIP(p); ip != nil && ip.To4() != nil {
				p += "/32"
			} else {
				p += "/128"
			}
		}
		_, n, err := net.ParseCIDR(p)
		if err != nil {
			return fmt.Errorf("config: trusted proxy %q is not an address or CIDR such as 10.0.0.0/8", p)
		}
		c.Proxies = append(c.Proxies, n)
	}
	c.ImportMaxBytes = 1024 << 20
	if c.ImportMaxMB != "" {
		n, err := strconv.ParseInt(c.ImportMaxMB, 10, 64)
		if err != nil || n < 1 || n > 1<<20 {
			return fmt.Errorf("config: import limit %q must be a number of megabytes from 1 to 1048576", c.ImportMaxMB)
		}
		c.ImportMaxBytes = n << 20
	}
	return nil
}

// hostname checks the EHLO name, or makes it from the root URL's host.
func (c *Config) hostname(rootHost string) error {
	h := strings.ToLower(strings.TrimSuffix(strings.TrimSpace(c.Hostname), "."))
	if h == "" {
		h = strings.ToLower(rootHost)
		if ip, err := netip.ParseAddr(h); err == nil {
			// RFC 5321 §4.1.3: an address greets as an address literal.
			if ip.Is6() {
				h = "[IPv6:" + ip.String() + "]"
			} else {
				h = "[" + ip.String() + "]"
			}
		}
		c.Hostname = h
		return nil
	}
	if _, err := netip.ParseAddr(h); err == nil {
		return fmt.Errorf("config: hostname %q is an address; give the fully qualified name whose A record is that address, e.g. mail.example.com", c.Hostname)
	}
	if len(h) > 253 {
		return fmt.Errorf("config: hostname %q is longer than 253 characters", c.Hostname)
	}
	for _, label := range strings.Split(h, ".") {
		ok := label != "" && len(label) <= 63 && label[0] != '-' && label[len(label)-1] != '-'
		for _, r := range label {
			ok = ok && (r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-')
		}
		if !ok {
			return fmt.Errorf("config: hostname %q is not a host name: use letters, digits, hyphens and dots, e.g. mail.example.com", c.Hostname)
		}
	}
	c.Hostname = h
	return nil
}

func isVar(c *Config, name string) bool {
	for _, v := range c.Vars() {
		if v.Flag == name {
			return true
		}
	}
	return false
}

// Help writes the configuration table.
func Help(w io.Writer) {
	var c Config
	for _, v := range c.Vars() {
		def := v.Default
		if def == "" {
			def = "(none)"
		}
		fmt.Fprintf(w, "  -%-15s %-22s default %s\n  %18s %s\n", v.Flag, v.Env, def, "", v.Usage)
	}
}

// Secrets is Secret then PreviousSecrets: the first signs, all verify.
func (c *Config) Secrets() []string {
	return append([]string{c.Secret}, c.PreviousSecrets...)
}

// Production reports whether the root URL is https, which Herald takes to
// mean a public installation.
func (c *Config) Production() bool {
	return strings.HasPrefix(c.RootURL, "https://")
}

// RequireSecret refuses a production installation without a secret from
// outside the database: the generated one is stored in the database
// beside the DKIM keys it seals and the data its links open, so a dump of
// the database would give away all three.
func (c *Config) RequireSecret() error {
	if c.Secret == "" && c.Production() {
		return fmt.Errorf("config: the root URL %s is https (a production installation), which needs a secret kept outside the database: "+
			"set HERALD_SECRET (or -secret-file) to at least 32 random characters, e.g. the output of `openssl rand -hex 32`", c.RootURL)
	}
	return nil
}

// linkTTLs parses the lifetimes of account links.
func (c *Config) linkTTLs() error {
	for _, l := range []struct {
		text string
		dst  *time.Duration
		name string
	}{{c.ResetLinkTTLText, &c.ResetLinkTTL, "reset link TTL"}, {c.InviteLinkTTLText, &c.InviteLinkTTL, "invite link TTL"}} {
		if l.text == "" {
			continue
		}
		d, err := time.ParseDuration(l.text)
		if err != nil || d < time.Second {
			return fmt.Errorf("config: %s %q must be a duration of at least 1s, e.g. 1h", l.name, l.text)
		}
		*l.dst = d
	}
	return nil
}

// leases parses the lease and its heartbeat: a renewal must have a
// second chance to land before the lease runs out.
func (c *Config) leases() error {
	var err error
	if c.Lease, err = time.ParseDuration(c.LeaseText); err != nil || c.Lease < time.Second {
		return fmt.Errorf("config: lease %q must be a duration of at least 1s, e.g. 10s", c.LeaseText)
	}
	if c.LeaseHeartbeat, err = time.ParseDuration(c.LeaseHeartbeatText); err != nil || c.LeaseHeartbeat <= 0 {
		return fmt.Errorf("config: lease heartbeat %q must be a positive duration, e.g. 2s", c.LeaseHeartbeatText)
	}
	if c.LeaseHeartbeat >= c.Lease/2 {
		return fmt.Errorf("config: lease heartbeat %v must be under half the lease %v: lower -lease-heartbeat below %v or raise -lease",
			c.LeaseHeartbeat, c.Lease, c.Lease/2)
	}
	return nil
}

// RelayURLs splits Relay into its relays' URLs: separated by white space,
// or by a comma before the next smtp:// or smtps:// (a comma inside a
// URL, as in dkim_selectors=s1,s2, stays).
func (c *Config) RelayURLs() []string {
	var out []string
	for _, f := range strings.Fields(c.Relay) {
		for f != "" {
			i := nextRelay(f)
			if u := strings.TrimSpace(f[:i]); u != "" {
				out = append(out, u)
			}
			f = strings.TrimPrefix(f[i:], ",")
		}
	}
	return out
}

// nextRelay is where the next relay URL in s begins (a comma followed by
// a scheme), or len(s).
func nextRelay(s string) int {
	for i := 0; i < len(s); i++ {
		if s[i] == ',' && (strings.HasPrefix(s[i+1:], "smtp://") || strings.HasPrefix(s[i+1:], "smtps://") || i == len(s)-1) {
			return i
		}
	}
	return len(s)
}

// redactURL hides a URL's password, for messages.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

func (c *Config) webhooks() error {
	var err error
	if c.PlacementPoll, err = time.ParseDuration(c.PlacementPollText); err != nil || c.PlacementPoll < 100*time.Millisecond {
		return fmt.Errorf("config: placement poll %q must be a duration of at least 100ms, e.g. 15s", c.PlacementPollText)
	}
	if c.WebhookPoll, err = time.ParseDuration(c.WebhookPollText); err != nil || c.WebhookPoll < 100*time.Millisecond {
		return fmt.Errorf("config: webhook poll %q must be a duration of at least 100ms, e.g. 5s", c.WebhookPollText)
	}
	c.WebhookBackoff = nil
	for _, p := range strings.Split(c.WebhookBackoffText, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(p))
		if err != nil || d <= 0 {
			return fmt.Errorf("config: webhook backoff %q must be comma-separated positive durations, e.g. 30s,2m,10m,1h", c.WebhookBackoffText)
		}
		c.WebhookBackoff = append(c.WebhookBackoff, d)
	}
	return nil
}
