package mailer

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/herald-mail/herald/mailer/smtpclient"
)

// Timeouts of an SMTP conversation (RFC 5321 4.5.3.2); zero fields take
// the defaults documented on smtpclient.Timeouts.
type Timeouts = smtpclient.Timeouts

// DirectOptions configure delivery straight to recipients' MX hosts.
type DirectOptions struct {
	// Resolver answers MX, A/AAAA and TXT questions (MTA-STS records and
	// policy hosts included); nil means the system's first nameserver.
	Resolver *Resolver
	// Port is the SMTP port of MX hosts; 0 means 25.
	Port int
	// MXOverride ("host:port") sends every connection there instead of the
	// MX hosts (tests, staging: HERALD_MX_OVERRIDE); "" means real MX.
	// There are no MX hosts to check then, so MTA-STS is not applied; a
	// domain rule's RequireTLS is, against the override's host name.
	MXOverride string
	// HELO is the EHLO name when the source address has none; "" means
	// the machine's host name.
	HELO string
	// RootCAs verify MX hosts' certificates and MTA-STS policy hosts';
	// nil means the system roots (SSL_CERT_FILE and SSL_CERT_DIR name
	// others). STARTTLS is used whenever offered; the certificate is
	// checked every time and recorded as verified or not, and required to
	// be valid only where a policy says so (MTA-STS enforce, a domain
	// rule's RequireTLS).
	RootCAs *x509.CertPool
	// MTASTS configures MTA-STS (RFC 8461); the zero value honours it.
	MTASTS MTASTSOptions
	// Logger receives TLS events (a handshake that fell back to plain
	// text, MTA-STS failures); nil means slog.Default().
	Logger *slog.Logger
	// Timeouts of each conversation.
	Timeouts Timeouts
}

// Direct delivers to the recipient domain's MX hosts in preference order,
// falling back to A/AAAA when there is no MX, binding to the route's source
// address and upgrading with STARTTLS when offered, under the TLS policy of
// the destination (MTA-STS, domain rule).
type Direct struct {
	o   DirectOptions
	sts *mtaSTS // nil: MTA-STS disabled
	log *slog.Logger
}

var _ Transport = (*Direct)(nil)

// NewDirect returns a direct transport.
func NewDirect(o DirectOptions) *Direct {
	if o.Resolver == nil {
		o.Resolver = NewResolver("")
	}
	if o.Port == 0 {
		o.Port = 25
	}
	if o.HELO == "" {
		o.HELO, _ = os.Hostname()
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	o.Timeouts = o.Timeouts.WithDefaults()
	d := &Direct{o: o, log: o.Logger}
	if !o.MTASTS.Disabled {
		d.sts = newMTASTS(o.Resolver, o.RootCAs, o.MTASTS, o.Logger)
	}
	return d
}

// Resolver returns the transport's resolver (the engine routes with it).
func (d *Direct) Resolver() *Resolver { return d.o.Resolver }

// UsesMX reports whether routes need MX hosts: not when overridden.
func (d *Direct) UsesMX() bool { return d.o.MXOverride == "" }

// tlsPolicy is what a destination asks of TLS.
type tlsPolicy struct {
	// require names who requires TLS with a valid certificate ("the
	// MTA-STS policy of example.com (mode enforce)"); "" when nobody does.
	require string
	// sts is the recipient domain's MTA-STS policy (enforce or testing);
	// nil when it has none.
	sts    *stsPolicy
	domain string
}

// policyFor returns the TLS policy of mail to domain.
func (d *Direct) policyFor(ctx context.Context, domain string, ruleRequires bool, useSTS bool) tlsPolicy {
	p := tlsPolicy{domain: domain}
	if useSTS && d.sts != nil {
		p.sts = d.sts.policy(ctx, domain)
	}
	switch {
	case p.sts != nil && p.sts.Mode == stsEnforce:
		p.require = fmt.Sprintf("the MTA-STS policy of %s (mode enforce)", domain)
	case ruleRequires:
		p.require = fmt.Sprintf("the domain rule for %s", domain)
	}
	return p
}

// testing reports whether failures are only to be recorded (MTA-STS
// testing mode).
func (p tlsPolicy) testing() bool { return p.require == "" && p.sts != nil && p.sts.Mode == stsTesting }

// mxProblem says why host may not receive the domain's mail under its
// MTA-STS policy; "" when it may.
func (p tlsPolicy) mxProblem(host string) string {
	if p.sts == nil || p.sts.allows(host) {
		return ""
	}
	return fmt.Sprintf("MX host %s is not listed in the MTA-STS policy of %s (mx: %s)", host, p.domain, strings.Join(p.sts.MX, ", "))
}

// Dial connects to the first MX host that answers and that the domain's
// TLS policy allows.
func (d *Direct) Dial(ctx context.Context, r Route) (Conn, error) {
	helo := r.HELO
	if helo == "" {
		helo = d.o.HELO
	}
	plan := dialPlan{source: r.SourceIP, helo: helo, mode: tlsOpportunistic, roots: d.o.RootCAs, t: d.o.Timeouts, log: d.log}
	if d.o.MXOverride != "" {
		plan.policy = d.policyFor(ctx, r.Domain, r.RequireTLS, false)
		plan.addr, plan.host = d.o.MXOverride, "mx-override"
		plan.verifyName, _, _ = net.SplitHostPort(d.o.MXOverride)
		// Not c.direct: with no real MX host, other domains' MTA-STS
		// policies are not applied to its messages either.
		return dialSMTP(ctx, plan)
	}
	hosts := r.MX
	if len(hosts) == 0 {
		var err error
		if hosts, err = d.o.Resolver.LookupMX(ctx, r.Domain); err != nil {
			return nil, &DialError{Permanent: errors.Is(err, ErrNullMX) || errors.Is(err, ErrNoDomain), Err: err}
		}
	}
	plan.policy = d.policyFor(ctx, r.Domain, r.RequireTLS, true)
	var lastErr error = &DialError{Permanent: true, Err: ErrNoAddress}
	src, _ := netip.ParseAddr(r.SourceIP)
	for _, h := range hosts {
		plan.note = ""
		if why := plan.policy.mxProblem(h); why != "" {
			if plan.policy.sts.Mode == stsEnforce {
				// RFC 8461 5.1: in enforce mode, such a host is not a
				// candidate at all.
				lastErr = &DialError{Err: errors.New(why + "; not delivering to it")}
				continue
			}
			plan.note = "MTA-STS (testing): " + why
		}
		addrs, err := d.o.Resolver.LookupHost(ctx, h)
		if err != nil {
			if !errors.Is(err, ErrNoAddress) {
				lastErr = &DialError{Err: err}
			}
			continue
		}
		for _, a := range addrs {
			if src.IsValid() && src.Is4() != a.Is4() {
				continue // cannot reach this family from the bound address
			}
			plan.addr, plan.host, plan.verifyName = net.JoinHostPort(a.String(), strconv.Itoa(d.o.Port)), h, h
			c, err := dialSMTP(ctx, plan)
			if err == nil {
				c.direct, c.domain = d, r.Domain
				return c, nil
			}
			lastErr = err
			var de *DialError
			if errors.As(err, &de) && de.Reply.Code >= 500 {
				return nil, err // the host refused us outright; do not shop around
			}
		}
	}
	return nil, lastErr
}

// checkRecipient applies the TLS policy of a recipient whose domain is
// not the one the connection was opened for (a destination that serves
// several domains through one MX provider): a refusal reply when the
// policy of its domain does not allow this connection.
func (s *smtpConn) checkRecipient(ctx context.Context, to string) (Reply, bool) {
	_, domain, ok := strings.Cut(to, "@")
	if !ok || strings.EqualFold(domain, s.domain) || s.direct.sts == nil {
		return Reply{}, true
	}
	p := s.direct.policyFor(ctx, domain, false, true)
	if p.require == "" {
		return Reply{}, true
	}
	why := p.mxProblem(s.host)
	if why == "" && !s.verified {
		why = fmt.Sprintf("%s requires TLS with a valid certificate, and this connection to %s has %s", p.require, s.host, tlsOrPlain(s.tls))
	}
	if why == "" {
		return Reply{}, true
	}
	return Reply{Code: 451, Enhanced: "4.7.5", Text: why + " (not sent; Herald will retry)", MXHost: s.host, SourceIP: s.source, TLS: s.tls}, false
}

func tlsOrPlain(desc string) string {
	if desc == "" {
		return "plain text"
	}
	return desc
}

// TLS modes of an SMTP connection.
type TLSMode string

const (
	TLSNone     TLSMode = "none"     // plain text
	TLSStartTLS TLSMode = "starttls" // STARTTLS required
	TLSImplicit TLSMode = "tls"      // TLS from the first byte (port 465)

	tlsOpportunistic TLSMode = "opportunistic"
)

// RelayError is a relay's refusal to take mail from Herald at all: at its
// greeting, EHLO, STARTTLS or AUTH (wrong credentials). It is about
// Herald's configuration, never about the recipient, so the message is
// deferred and the relay's lane suspended with backoff, not bounced.
type RelayError struct {
	Host  string
	Stage string // "greeting" (and EHLO, STARTTLS) or "auth"
	Reply Reply
}

func (e *RelayError) Error() string {
	what := "refused the connection"
	if e.Stage == "auth" {
		what = "refused Herald's credentials (check the relay user name and password)"
	}
	return fmt.Sprintf("relay %s %s: %d %s %s", e.Host, what, e.Reply.Code, e.Reply.Enhanced, e.Reply.Text)
}

// Permanent reports whether retrying cannot help until the configuration
// changes (a 5xx answer, such as 535 for wrong credentials).
func (e *RelayError) Permanent() bool { return e.Reply.Code >= 500 }

// relayDialError keeps a relay's SMTP refusal out of DialError.Reply: the
// engine bounces a message whose dial got a 5xx reply, which is right for
// a recipient's MX host and wrong for our own relay.
func relayDialError(host string, err error) error {
	var de *DialError
	if !errors.As(err, &de) || de.Reply.Code == 0 {
		return err
	}
	stage := "greeting"
	var ae *authError
	if errors.As(err, &ae) {
		stage = "auth"
	}
	return &DialError{Err: &RelayError{Host: host, Stage: stage, Reply: de.Reply}}
}

// authError marks a refusal of AUTH in a DialError.
type authError struct{ err error }

func (e *authError) Error() string { return "AUTH: " + e.err.Error() }
func (e *authError) Unwrap() error { return e.err }

// dialPlan is one connection attempt.
type dialPlan struct {
	addr   string // host:port to connect to
	host   string // the name reported as MXHost
	source string // local address to bind; "" lets the OS choose
	helo   string
	mode   TLSMode
	// tlsConfig is the relay's (verifying its host unless configured
	// otherwise); nil for direct delivery, which builds its own.
	tlsConfig *tls.Config
	// Direct delivery: the name the certificate must be valid for, the
	// roots to verify it against (nil: system roots) and the TLS policy.
	verifyName string
	roots      *x509.CertPool
	policy     tlsPolicy
	// note is a policy failure already known that does not stop the mail
	// (MTA-STS testing mode).
	note string
	// fallback is why this is a plain-text retry after a failed handshake.
	fallback   string
	user, pass string
	t          Timeouts
	log        *slog.Logger
}

// dialSMTP opens a session: connect, greeting, EHLO, STARTTLS (and EHLO
// again), AUTH. Under an opportunistic policy a failed handshake is
// retried in plain text on a new connection, which the outcome says; where
// a policy requires TLS with a valid certificate, no plain text at all.
func dialSMTP(ctx context.Context, p dialPlan) (*smtpConn, error) {
	o := smtpclient.Options{LocalAddr: p.source, Timeouts: p.t}
	if p.mode == TLSImplicit {
		o.ImplicitTLS = tlsFor(p.tlsConfig, p.host)
	}
	c, err := smtpclient.Dial(ctx, p.addr, o)
	if err != nil {
		if p.source != "" && net.ParseIP(p.source) == nil {
			return nil, &DialError{Permanent: true, Err: err}
		}
		return nil, &DialError{Err: err}
	}
	conn := &smtpConn{c: c, host: p.host, source: c.LocalIP()}
	fail := func(err error) (*smtpConn, error) {
		c.Close()
		var se *smtpclient.Error
		if errors.As(err, &se) {
			return nil, &DialError{Reply: conn.reply(se.Reply), Err: err}
		}
		return nil, &DialError{Err: err}
	}
	if err := c.Greeting(); err != nil {
		return fail(err)
	}
	if err := c.Hello(p.helo); err != nil {
		return fail(err)
	}
	verified := false
	switch {
	case p.mode != TLSStartTLS && p.mode != tlsOpportunistic:
	case !c.Ext("STARTTLS"):
		switch {
		case p.mode == TLSStartTLS:
			return fail(errors.New("relay does not offer STARTTLS"))
		case p.policy.require != "":
			return fail(fmt.Errorf("%s requires TLS with a valid certificate, and %s does not offer STARTTLS", p.policy.require, p.host))
		case p.policy.testing():
			p.note = joinNote(p.note, fmt.Sprintf("MTA-STS (testing): %s does not offer STARTTLS", p.host))
		}
	default:
		cfg, verr := p.tlsFor(&verified)
		if err := c.StartTLS(cfg); err != nil {
			switch {
			case *verr != nil && p.policy.require != "":
				return fail(fmt.Errorf("%s requires TLS with a valid certificate, and the certificate of %s is not valid: %w",
					p.policy.require, p.host, *verr))
			case errors.Is(err, smtpclient.ErrHandshake) && p.policy.require != "":
				return fail(fmt.Errorf("%s requires TLS, and the TLS handshake with %s failed: %w", p.policy.require, p.host, err))
			case errors.Is(err, smtpclient.ErrHandshake) && p.mode == tlsOpportunistic:
				// A broken TLS stack on the other side must not stop the
				// mail when nothing requires TLS: a new connection in
				// plain text, and the outcome says so.
				c.Close()
				p.log.Warn("STARTTLS handshake failed; retrying in plain text on a new connection", "mx_host", p.host, "error", err)
				p.mode, p.fallback = TLSNone, err.Error()
				return dialSMTP(ctx, p)
			}
			return fail(err)
		}
		if *verr != nil && p.policy.testing() {
			p.note = joinNote(p.note, fmt.Sprintf("MTA-STS (testing): the certificate of %s is not valid: %v", p.host, *verr))
		}
	}
	if st, ok := c.TLS(); ok {
		if p.tlsConfig != nil { // the relay's own configuration verified, or not
			verified = len(st.VerifiedChains) > 0
		}
		conn.tls = tlsVersionName(st.Version) + map[bool]string{true: " verified", false: " unverified"}[verified]
	} else if p.fallback != "" {
		conn.tls = "plain text after a failed STARTTLS handshake (" + p.fallback + ")"
	}
	conn.verified, conn.note = verified, p.note
	if p.note != "" {
		p.log.Warn("TLS policy not met (testing mode: delivering anyway)", "mx_host", p.host, "problem", p.note)
	}
	if p.user != "" {
		if err := c.Auth(p.user, p.pass); err != nil {
			return fail(&authError{err})
		}
	}
	return conn, nil
}

// tlsFor returns the TLS configuration of a STARTTLS upgrade: the relay's
// own, or for direct delivery one that completes the handshake whatever
// the certificate, checks it against the roots and the MX name, records
// the result in *verified, and fails the handshake when the policy
// requires a valid certificate. *verr is the verification failure.
func (p *dialPlan) tlsFor(verified *bool) (*tls.Config, *error) {
	verr := new(error)
	if p.tlsConfig != nil {
		return tlsFor(p.tlsConfig, p.host), verr
	}
	name := strings.TrimSuffix(strings.ToLower(p.verifyName), ".")
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: true}
	if net.ParseIP(name) == nil {
		cfg.ServerName = name
	}
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		*verr = verifyPeer(cs, name, p.roots)
		*verified = *verr == nil
		if *verr != nil && p.policy.require != "" {
			return *verr
		}
		return nil
	}
	return cfg, verr
}

// verifyPeer checks the server's certificate chain against roots (nil:
// the system's) and name.
func verifyPeer(cs tls.ConnectionState, name string, roots *x509.CertPool) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("no certificate")
	}
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{DNSName: name, Roots: roots, Intermediates: inter})
	return err
}

func tlsVersionName(v uint16) string {
	switch v {
	case tls.VersionTLS13:
		return "TLSv1.3"
	case tls.VersionTLS12:
		return "TLSv1.2"
	case tls.VersionTLS11:
		return "TLSv1.1"
	case tls.VersionTLS10:
		return "TLSv1.0"
	}
	return fmt.Sprintf("TLS(0x%04x)", v)
}

func joinNote(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

// tlsFor returns cfg naming host as the server to verify when cfg names
// none.
func tlsFor(cfg *tls.Config, host string) *tls.Config {
	c := cfg.Clone()
	if c.ServerName == "" && net.ParseIP(host) == nil {
		c.ServerName = host
	}
	return c
}

func sleepUntil(ctx context.Context, t time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err()
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
