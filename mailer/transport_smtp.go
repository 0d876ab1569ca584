package mailer

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/textproto"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Timeouts of an SMTP conversation; zero fields take the defaults below.
type Timeouts struct {
	Connect time.Duration // TCP connect, default 30s
	Command time.Duration // each command's reply (greeting, EHLO, MAIL, RCPT, RSET), default 5m (RFC 5321 4.5.3.2)
	Data    time.Duration // the final reply after DATA's dot, default 10m
}

func (t Timeouts) withDefaults() Timeouts {
	if t.Connect == 0 {
		t.Connect = 30 * time.Second
	}
	if t.Command == 0 {
		t.Command = 5 * time.Minute
	}
	if t.Data == 0 {
		t.Data = 10 * time.Minute
	}
	return t
}

// DirectOptions configure delivery straight to recipients' MX hosts.
type DirectOptions struct {
	// Resolver answers MX and A/AAAA questions; nil means the system's
	// first nameserver.
	Resolver *Resolver
	// Port is the SMTP port of MX hosts; 0 means 25.
	Port int
	// MXOverride ("host:port") sends every connection there instead of the
	// MX hosts (tests, staging: HERALD_MX_OVERRIDE); "" means real MX.
	MXOverride string
	// HELO is the EHLO name when the source address has none; "" means
	// the machine's host name.
	HELO string
	// TLSConfig is used for opportunistic STARTTLS; nil means a config
	// that does not verify certificates (opportunistic TLS protects against
	// passive eavesdropping only, as with every MTA).
	TLSConfig *tls.Config
	// Timeouts of each conversation.
	Timeouts Timeouts
}

// Direct delivers to the recipient domain's MX hosts in preference order,
// falling back to A/AAAA when there is no MX, binding to the route's source
// address and upgrading with STARTTLS when offered.
type Direct struct {
	o DirectOptions
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
	if o.TLSConfig == nil {
		o.TLSConfig = &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}
	}
	o.Timeouts = o.Timeouts.withDefaults()
	return &Direct{o: o}
}

// Resolver returns the transport's resolver (the engine routes with it).
func (d *Direct) Resolver() *Resolver { return d.o.Resolver }

// UsesMX reports whether routes need MX hosts: not when overridden.
func (d *Direct) UsesMX() bool { return d.o.MXOverride == "" }

// Dial connects to the first MX host that answers.
func (d *Direct) Dial(ctx context.Context, r Route) (Conn, error) {
	helo := r.HELO
	if helo == "" {
		helo = d.o.HELO
	}
	if d.o.MXOverride != "" {
		return dialSMTP(ctx, d.o.MXOverride, "mx-override", r.SourceIP, helo, tlsOpportunistic, d.o.TLSConfig, nil, d.o.Timeouts)
	}
	hosts := r.MX
	if len(hosts) == 0 {
		var err error
		if hosts, err = d.o.Resolver.LookupMX(ctx, r.Domain); err != nil {
			return nil, &DialError{Permanent: errors.Is(err, ErrNullMX) || errors.Is(err, ErrNoDomain), Err: err}
		}
	}
	var lastErr error = &DialError{Permanent: true, Err: ErrNoAddress}
	src, _ := netip.ParseAddr(r.SourceIP)
	for _, h := range hosts {
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
			c, err := dialSMTP(ctx, net.JoinHostPort(a.String(), strconv.Itoa(d.o.Port)), h, r.SourceIP, helo,
				tlsOpportunistic, d.o.TLSConfig, nil, d.o.Timeouts)
			if err == nil {
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

// TLS modes of an SMTP connection.
type TLSMode string

const (
	TLSNone     TLSMode = "none"     // plain text
	TLSStartTLS TLSMode = "starttls" // STARTTLS required
	TLSImplicit TLSMode = "tls"      // TLS from the first byte (port 465)

	tlsOpportunistic TLSMode = "opportunistic"
)

// RelayHost is one smarthost.
type RelayHost struct {
	Host string
	Port int     // 0: 587, or 465 for TLSImplicit
	TLS  TLSMode // "": starttls
	// Username and Password authenticate with SASL PLAIN; empty: no auth.
	Username, Password string
	// PerSecond caps messages per second through this relay; 0 unlimited.
	PerSecond float64
	// MaxConnections caps simultaneous connections; 0 means 10.
	MaxConnections int
	// TLSConfig; nil verifies the host's certificate against Host.
	TLSConfig *tls.Config
}

// RelayOptions configure sending through smarthosts.
type RelayOptions struct {
	Hosts []RelayHost // tried round robin; at least one
	// HELO is the EHLO name; "" means the machine's host name.
	HELO     string
	Timeouts Timeouts
}

// Relay sends everything through one or more SMTP relays, each with its own
// rate and connection limits.
type Relay struct {
	o     RelayOptions
	hosts []*relayHost
	mu    sync.Mutex
	next  int
}

type relayHost struct {
	RelayHost
	slots chan struct{}
	mu    sync.Mutex
	rate  gcra
}

var _ Transport = (*Relay)(nil)

// NewRelay returns a relay transport.
func NewRelay(o RelayOptions) *Relay {
	if o.HELO == "" {
		o.HELO, _ = os.Hostname()
	}
	o.Timeouts = o.Timeouts.withDefaults()
	r := &Relay{o: o}
	for _, h := range o.Hosts {
		if h.TLS == "" {
			h.TLS = TLSStartTLS
		}
		if h.Port == 0 {
			h.Port = 587
			if h.TLS == TLSImplicit {
				h.Port = 465
			}
		}
		if h.MaxConnections <= 0 {
			h.MaxConnections = 10
		}
		if h.TLSConfig == nil {
			h.TLSConfig = &tls.Config{ServerName: h.Host, MinVersion: tls.VersionTLS12}
		}
		r.hosts = append(r.hosts, &relayHost{RelayHost: h, slots: make(chan struct{}, h.MaxConnections),
			rate: newGCRA(time.Second, h.PerSecond, burstFor(h.PerSecond))})
	}
	return r
}

// Dial connects to the next relay with a free connection slot, waiting for
// one when all are busy.
func (r *Relay) Dial(ctx context.Context, rt Route) (Conn, error) {
	if len(r.hosts) == 0 {
		return nil, &DialError{Permanent: true, Err: errors.New("no relay configured")}
	}
	r.mu.Lock()
	start := r.next
	r.next = (r.next + 1) % len(r.hosts)
	r.mu.Unlock()
	var h *relayHost
	for i := range r.hosts {
		c := r.hosts[(start+i)%len(r.hosts)]
		select {
		case c.slots <- struct{}{}:
			h = c
		default:
			continue
		}
		break
	}
	if h == nil {
		h = r.hosts[start]
		select {
		case h.slots <- struct{}{}:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	var auth sasl.Client
	if h.Username != "" {
		auth = sasl.NewPlainClient("", h.Username, h.Password)
	}
	helo := rt.HELO
	if helo == "" {
		helo = r.o.HELO
	}
	c, err := dialSMTP(ctx, net.JoinHostPort(h.Host, strconv.Itoa(h.Port)), h.Host, rt.SourceIP, helo, h.TLS, h.TLSConfig, auth, r.o.Timeouts)
	if err != nil {
		<-h.slots
		return nil, relayDialError(h.Host, err)
	}
	c.relay = h
	return c, nil
}

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

// smtpConn is an SMTP client connection shared by Direct and Relay.
type smtpConn struct {
	x      *txWriter // runs the transactions (go-smtp opened the session: EHLO, AUTH)
	host   string
	source string
	relay  *relayHost
	broken bool // a transaction failed: Close skips QUIT
	closed bool
}

func dialSMTP(ctx context.Context, addr, host, source, helo string, mode TLSMode, tlsConfig *tls.Config, auth sasl.Client, t Timeouts) (*smtpConn, error) {
	dialer := net.Dialer{Timeout: t.Connect}
	if source != "" {
		ip := net.ParseIP(source)
		if ip == nil {
			return nil, &DialError{Permanent: true, Err: fmt.Errorf("bad source address %q", source)}
		}
		dialer.LocalAddr = &net.TCPAddr{IP: ip}
	}
	raw, err := dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, &DialError{Err: err}
	}
	source = localIP(raw)
	switch mode {
	case TLSImplicit:
		raw = tls.Client(raw, tlsFor(tlsConfig, host))
	case TLSStartTLS, tlsOpportunistic:
		// go-smtp cannot send our EHLO name before STARTTLS, so the
		// plain-text opening is ours; the client then starts after a
		// replayed greeting and says EHLO again (over TLS when upgraded).
		upgraded, r, err := openPlain(raw, host, helo, t.Command, tlsConfig)
		switch {
		case r != nil:
			raw.Close()
			return nil, &DialError{Reply: *r, Err: fmt.Errorf("%d %s", r.Code, r.Text)}
		case errors.Is(err, errHandshake) && mode == tlsOpportunistic:
			// A broken TLS stack on the other side must not stop the
			// mail: start again in plain text.
			raw.Close()
			return dialSMTP(ctx, addr, host, source, helo, TLSNone, tlsConfig, auth, t)
		case err != nil:
			raw.Close()
			return nil, &DialError{Err: err}
		case upgraded == nil && mode == TLSStartTLS:
			raw.Close()
			return nil, &DialError{Err: errors.New("relay does not offer STARTTLS")}
		case upgraded != nil:
			raw = upgraded
		}
		raw = &replayConn{Conn: raw, pre: []byte("220 ready\r\n")}
	}
	c := smtp.NewClient(raw)
	c.CommandTimeout, c.SubmissionTimeout = t.Command, t.Data
	conn := &smtpConn{host: host, source: source}
	fail := func(err error) (*smtpConn, error) {
		c.Close()
		var se *smtp.SMTPError
		if errors.As(err, &se) {
			return nil, &DialError{Permanent: false, Reply: replyOf(se, host, conn.source), Err: err}
		}
		return nil, &DialError{Err: err}
	}
	if err := c.Hello(helo); err != nil {
		return fail(err)
	}
	if auth != nil {
		if err := c.Auth(auth); err != nil {
			return fail(&authError{err})
		}
	}
	// The server has answered everything go-smtp sent, so nothing is
	// left in its read buffer: the transactions can read raw directly.
	pipelining, _ := c.Extension("PIPELINING")
	chunking, _ := c.Extension("CHUNKING")
	conn.x = newTxWriter(raw, pipelining, chunking, t)
	return conn, nil
}

// openPlain reads the greeting, says EHLO and, when STARTTLS is offered,
// upgrades the connection. It returns the TLS connection (nil when staying
// in plain text) or the server's refusal.
func openPlain(raw net.Conn, host, helo string, timeout time.Duration, cfg *tls.Config) (net.Conn, *Reply, error) {
	raw.SetDeadline(time.Now().Add(timeout))
	defer raw.SetDeadline(time.Time{})
	br := bufio.NewReader(raw)
	tp := textproto.NewReader(br)
	refusal := func(err error) (net.Conn, *Reply, error) {
		var te *textproto.Error
		if errors.As(err, &te) {
			r := replyFrom(smtpReply{code: te.Code, text: te.Msg}, host, localIP(raw))
			return nil, &r, nil
		}
		return nil, nil, err
	}
	if _, _, err := tp.ReadResponse(220); err != nil {
		return refusal(err)
	}
	if _, err := fmt.Fprintf(raw, "EHLO %s\r\n", helo); err != nil {
		return nil, nil, err
	}
	_, ext, err := tp.ReadResponse(250)
	if err != nil {
		return refusal(err)
	}
	offered := false
	for _, line := range strings.Split(ext, "\n") {
		offered = offered || strings.EqualFold(strings.TrimSpace(line), "STARTTLS")
	}
	if !offered {
		return nil, nil, nil
	}
	if _, err := fmt.Fprintf(raw, "STARTTLS\r\n"); err != nil {
		return nil, nil, err
	}
	if _, _, err := tp.ReadResponse(220); err != nil {
		return refusal(err)
	}
	if br.Buffered() > 0 {
		return nil, nil, errors.New("STARTTLS: server sent data before the handshake")
	}
	tc := tls.Client(raw, tlsFor(cfg, host))
	tc.SetDeadline(time.Now().Add(timeout))
	if err := tc.Handshake(); err != nil {
		return nil, nil, fmt.Errorf("%w: %v", errHandshake, err)
	}
	tc.SetDeadline(time.Time{})
	return tc, nil, nil
}

var errHandshake = errors.New("STARTTLS handshake failed")

// tlsFor returns cfg naming host as the server to verify when cfg names
// none.
func tlsFor(cfg *tls.Config, host string) *tls.Config {
	c := cfg.Clone()
	if c.ServerName == "" && net.ParseIP(host) == nil {
		c.ServerName = host
	}
	return c
}

// replayConn replays pre before the connection's own bytes.
type replayConn struct {
	net.Conn
	pre []byte
}

func (c *replayConn) Read(b []byte) (int, error) {
	if len(c.pre) > 0 {
		n := copy(b, c.pre)
		c.pre = c.pre[n:]
		return n, nil
	}
	return c.Conn.Read(b)
}

func localIP(c net.Conn) string {
	if a, ok := c.LocalAddr().(*net.TCPAddr); ok {
		return a.IP.String()
	}
	if tc, ok := c.(*tls.Conn); ok {
		return localIP(tc.NetConn())
	}
	return ""
}

func replyOf(se *smtp.SMTPError, host, source string) Reply {
	r := Reply{Code: se.Code, Text: se.Message, MXHost: host, SourceIP: source}
	if se.EnhancedCode != (smtp.EnhancedCode{}) && se.EnhancedCode != smtp.NoEnhancedCode {
		e := se.EnhancedCode
		r.Enhanced = fmt.Sprintf("%d.%d.%d", e[0], e[1], e[2])
	}
	return r
}

// Send runs one MAIL/RCPT/DATA transaction. After a refused transaction
// the next one starts with RSET.
func (s *smtpConn) Send(ctx context.Context, env *Envelope) (Reply, error) {
	if s.relay != nil {
		s.relay.mu.Lock()
		at := s.relay.rate.next(time.Now())
		s.relay.rate.book(at)
		s.relay.mu.Unlock()
		if err := sleepUntil(ctx, at); err != nil {
			return Reply{}, err
		}
	}
	r, err := s.x.transaction(env.From, env.To, env.Signature, env.Message)
	if err != nil {
		s.broken = true
		if r.code == 0 {
			return Reply{MXHost: s.host, SourceIP: s.source}, err
		}
	}
	return replyFrom(r, s.host, s.source), err
}

// Stale reports whether the server has closed the connection since a
// refusal (see closedByPeer), before anything of the next message is
// rendered or sent.
func (s *smtpConn) Stale() bool { return s.x.dirty && s.x.closedByPeer() }

func (s *smtpConn) Close() error {
	if s.closed {
		return nil
	}
	s.closed = true
	if !s.broken {
		s.x.quit()
	}
	err := s.x.conn.Close()
	if s.relay != nil {
		// The slot is free once the connection is gone, not before: a
		// relay counts a connection that is still saying QUIT.
		<-s.relay.slots
	}
	return err
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
