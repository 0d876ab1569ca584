package mailer

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"
	"golang.org/x/time/rate"

	"github.com/herald-mail/herald/internal/token"
	"github.com/herald-mail/herald/mailer/authreport"
	"github.com/herald-mail/herald/models"
)

// InboundStore is what the inbound server records through; *models.Store
// implements it.
type InboundStore interface {
	// DeliveryWithMessageID returns delivery id when its message had the
	// given Message-ID, and models.ErrNotFound otherwise.
	DeliveryWithMessageID(ctx context.Context, id int64, messageID string) (*models.Delivery, error)
	// RecordBounce records a hard or soft bounce of a delivery, looking the
	// delivery up itself; models.ErrNotFound when it does not exist.
	RecordBounce(ctx context.Context, n models.BounceNotice) (*models.BounceResult, error)
	// RecordComplaint records a spam complaint about a delivery or address.
	RecordComplaint(ctx context.Context, n models.BounceNotice) (*models.BounceResult, error)
	// UnsubscribeDelivery unsubscribes a delivery's recipient from the
	// campaign's lists.
	UnsubscribeDelivery(ctx context.Context, deliveryID int64, ev models.Evidence) (int, error)
	// DeliveryByRecipient finds the latest delivery to an address (ESP
	// events that carry no Message-ID of ours); models.ErrNotFound when none.
	DeliveryByRecipient(ctx context.Context, email string) (*models.Delivery, error)
	// AddSuppression suppresses an address an ESP reports as hard-bouncing
	// although Herald has no delivery to it.
	AddSuppression(ctx context.Context, value, reason, note string) error
}

var _ InboundStore = (*models.Store)(nil)

// InboundOptions configure an InboundServer. Every zero value means the
// documented default.
type InboundOptions struct {
	// Addr is the TCP address ListenAndServe listens on. Zero: ":25".
	Addr string
	// Hostname is the name the server greets with. Zero: the host name.
	Hostname string
	// Keys verify the tokens of VERP and unsubscribe addresses; they must
	// include the key the engine signs with. Required.
	Keys *token.Keyring
	// BounceDomains are the domains of VERP (b-TOKEN@) and mailto
	// unsubscribe (u-TOKEN@) addresses: the sending domains' return-path
	// domains. Zero: any domain, since the signed token alone identifies
	// a delivery; other addresses are still refused.
	BounceDomains []string
	// FeedbackAddress receives feedback-loop (ARF) reports, which are
	// matched to deliveries by the original Message-ID. Zero: none.
	FeedbackAddress string
	// MaxMessageBytes is the largest message accepted; larger ones get 552.
	// Zero: 10 MB.
	MaxMessageBytes int64
	// MaxRecipients caps RCPT commands per message. Zero: 50.
	MaxRecipients int
	// TLSConfig, when set, enables STARTTLS. Zero: no STARTTLS.
	TLSConfig *tls.Config
	// MaxConnsPerIP caps concurrent connections from one address; the
	// excess get 421 and are closed. Zero: 20.
	MaxConnsPerIP int
	// RatePerIP is how many new connections per second one address may
	// open, with bursts of RateBurst; the excess get 421. Zero: 5 per
	// second, bursts of 50.
	RatePerIP float64
	RateBurst int
	// MaxConns caps concurrent connections in all. Zero: 1000.
	MaxConns int
	// ReadTimeout and WriteTimeout bound each command and reply. Zero: 2
	// minutes each.
	ReadTimeout, WriteTimeout time.Duration
	// MessageTimeout bounds one message from MAIL to the end of its data.
	// Zero: 5 minutes.
	MessageTimeout time.Duration
	// SessionTimeout bounds a whole connection. Zero: 15 minutes.
	SessionTimeout time.Duration
	// RecordTimeout bounds the database work for one message; when it
	// fails the sender gets a temporary error and retries. Zero: 30s.
	RecordTimeout time.Duration
	// Resolver looks up the reverse names of the sources in DMARC
	// reports. Zero: none are looked up.
	Resolver *Resolver
	// ReportLimits bound the reading of DMARC and TLS reports. Zero: the
	// authreport defaults.
	ReportLimits authreport.Limits
	// Logger receives one line per message and per refused connection.
	// Zero: slog.Default().
	Logger *slog.Logger
}

func (o InboundOptions) withDefaults() InboundOptions {
	if o.Addr == "" {
		o.Addr = ":25"
	}
	if o.Hostname == "" {
		o.Hostname, _ = os.Hostname()
		if o.Hostname == "" {
			o.Hostname = "localhost"
		}
	}
	if o.MaxMessageBytes <= 0 {
		o.MaxMessageBytes = 10 << 20
	}
	if o.MaxRecipients <= 0 {
		o.MaxRecipients = 50
	}
	if o.MaxConnsPerIP <= 0 {
		o.MaxConnsPerIP = 20
	}
	if o.RatePerIP <= 0 {
		o.RatePerIP = 5
	}
	if o.RateBurst <= 0 {
		o.RateBurst = 50
	}
	if o.MaxConns <= 0 {
		o.MaxConns = 1000
	}
	if o.ReadTimeout <= 0 {
		o.ReadTimeout = 2 * time.Minute
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 2 * time.Minute
	}
	if o.RecordTimeout <= 0 {
		o.RecordTimeout = 30 * time.Second
	}
	if o.MessageTimeout <= 0 {
		o.MessageTimeout = 5 * time.Minute
	}
	if o.SessionTimeout <= 0 {
		o.SessionTimeout = 15 * time.Minute
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// InboundServer is Herald's inbound SMTP server. It accepts mail only for
// the addresses Herald itself hands out: VERP return paths
// (b-TOKEN@bounce-domain), the mailto unsubscribe addresses of
// List-Unsubscribe (u-TOKEN@bounce-domain), the feedback-loop address and
// the DMARC and TLS report addresses (dmarc@ and tlsrpt@ a sending domain
// or its return-path domain).
// Everything else is refused at RCPT, so it is no relay and sends no
// backscatter. Bounces suppress addresses, complaints unsubscribe and
// suppress, and unsubscribe mail unsubscribes.
type InboundServer struct {
	rec    *Recorder
	opts   InboundOptions
	log    *slog.Logger
	smtp   *smtp.Server
	limits *connLimiter
}

// NewInboundServer returns a server recording into store. Start it with
// ListenAndServe or Serve.
func NewInboundServer(store InboundStore, o InboundOptions) (*InboundServer, error) {
	rec, err := NewRecorder(store, o)
	if err != nil {
		return nil, err
	}
	o = o.withDefaults()
	s := &InboundServer{rec: rec, opts: o, log: o.Logger}
	s.limits = &connLimiter{perIP: o.MaxConnsPerIP, total: o.MaxConns, rate: rate.Limit(o.RatePerIP), burst: o.RateBurst,
		ips: map[string]*ipState{}, hostname: o.Hostname, log: o.Logger}

	srv := smtp.NewServer(smtp.BackendFunc(s.newSession))
	srv.Addr = o.Addr
	srv.Domain = o.Hostname
	srv.MaxMessageBytes = o.MaxMessageBytes
	srv.MaxRecipients = o.MaxRecipients
	srv.ReadTimeout = o.ReadTimeout
	srv.WriteTimeout = o.WriteTimeout
	srv.TLSConfig = o.TLSConfig
	srv.ErrorLog = slogPrinter{o.Logger}
	s.smtp = srv
	return s, nil
}

// ListenAndServe listens on the configured address and serves until ctx is
// done, then shuts down, giving open sessions up to 10 seconds to finish.
func (s *InboundServer) ListenAndServe(ctx context.Context) error {
	l, err := net.Listen("tcp", s.opts.Addr)
	if err != nil {
		return fmt.Errorf("mailer: inbound listen: %w", err)
	}
	return s.Serve(ctx, l)
}

// Serve serves connections from l until ctx is done (see ListenAndServe).
// It takes ownership of l.
func (s *InboundServer) Serve(ctx context.Context, l net.Listener) error {
	s.log.Info("inbound smtp listening", "addr", l.Addr().String(), "bounce_domains", s.opts.BounceDomains,
		"feedback_address", s.opts.FeedbackAddress)
	errc := make(chan error, 1)
	go func() {
		errc <- s.smtp.Serve(&timedListener{Listener: &limitedListener{Listener: l, limits: s.limits}, session: s.opts.SessionTimeout})
	}()
	select {
	case err := <-errc:
		if err != nil {
			return fmt.Errorf("mailer: inbound serve: %w", err)
		}
		return nil
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.smtp.Shutdown(sctx); err != nil {
		s.smtp.Close()
	}
	<-errc
	return nil
}

// Replies given at RCPT and DATA.
var (
	errRelayDenied = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1},
		Message: "Relaying denied: this server accepts mail only for its own bounce and feedback addresses"}
	errNoSuchUser = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1},
		Message: "No such user here"}
	errBadToken = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1},
		Message: "Invalid or forged bounce address"}
	errTryLater = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0},
		Message: "Temporary failure recording the message, try again later"}
)

func (s *InboundServer) newSession(c *smtp.Conn) (smtp.Session, error) {
	ip := ""
	if a, ok := c.Conn().RemoteAddr().(*net.TCPAddr); ok {
		ip = a.IP.String()
	}
	return &inboundSession{srv: s, ip: ip, helo: c.Hostname(), conn: timedConnOf(c.Conn())}, nil
}

// inboundSession is one SMTP session.
type inboundSession struct {
	srv   *InboundServer
	ip    string
	helo  string
	from  string
	rcpts []inboundRcpt
	conn  *timedConn // the session's hard deadlines (inbound_limits.go)
}

func (ss *inboundSession) Reset() {
	ss.from = ""
	ss.rcpts = nil
	if ss.conn != nil {
		ss.conn.startMessage(0)
	}
}

func (ss *inboundSession) Logout() error { return nil }

func (ss *inboundSession) Mail(from string, _ *smtp.MailOptions) error {
	if ss.conn != nil {
		ss.conn.startMessage(ss.srv.opts.MessageTimeout)
	}
	ss.from = from
	return nil
}

func (ss *inboundSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	ctx, cancel := context.WithTimeout(context.Background(), ss.srv.opts.RecordTimeout)
	defer cancel()
	r, err := ss.srv.rec.classify(ctx, to)
	if err != nil {
		ss.srv.log.Info("inbound rcpt refused", "rcpt", to, "from", ss.from, "ip", ss.ip, "helo", ss.helo, "reason", err.(*smtp.SMTPError).Message)
		return err
	}
	ss.rcpts = append(ss.rcpts, r)
	return nil
}

func (ss *inboundSession) Data(r io.Reader) (err error) {
	raw, err := io.ReadAll(r)
	if err != nil {
		var se *smtp.SMTPError
		if errors.As(err, &se) {
			ss.srv.log.Warn("inbound message refused", "ip", ss.ip, "from", ss.from, "reason", se.Message)
			return se
		}
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), ss.srv.opts.RecordTimeout)
	defer cancel()
	src := Source{Via: "smtp", IP: ss.ip, HELO: ss.helo, From: ss.from}
	if err := ss.srv.rec.process(ctx, raw, ss.rcpts, src); err != nil {
		var se *smtp.SMTPError
		if errors.As(err, &se) {
			return se
		}
		return errTryLater
	}
	return nil
}

// connLimiter bounds connections per source address, in number and rate,
// and in all.
type connLimiter struct {
	perIP, total int
	rate         rate.Limit
	burst        int
	hostname     string
	log          *slog.Logger

	mu        sync.Mutex
	open      int
	ips       map[string]*ipState
	lastSweep time.Time
}

type ipState struct {
	conns int
	rate  *rate.Limiter
}

// admit takes a slot for ip, or returns the reason it may not have one.
func (l *connLimiter) admit(ip string, now time.Time) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.lastSweep) > time.Minute {
		l.sweep(now)
	}
	st := l.ips[ip]
	if st == nil {
		st = &ipState{rate: rate.NewLimiter(l.rate, l.burst)}
		l.ips[ip] = st
	}
	switch {
	case l.open >= l.total:
		return "too many connections, try again later"
	case st.conns >= l.perIP:
		return "too many connections from your address, try again later"
	case !st.rate.AllowN(now, 1):
		return "too many connections from your address in a short time, try again later"
	}
	st.conns++
	l.open++
	return ""
}

func (l *connLimiter) release(ip string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.open--
	if st := l.ips[ip]; st != nil {
		st.conns--
	}
}

// sweep forgets addresses with no connection whose rate budget is full
// again: remembering them would change nothing.
func (l *connLimiter) sweep(now time.Time) {
	l.lastSweep = now
	for ip, st := range l.ips {
		if st.conns == 0 && st.rate.TokensAt(now) >= float64(l.burst) {
			delete(l.ips, ip)
		}
	}
}

// limitedListener answers 421 to connections over the limits before the
// SMTP server sees them.
type limitedListener struct {
	net.Listener
	limits *connLimiter
}

func (ll *limitedListener) Accept() (net.Conn, error) {
	for {
		c, err := ll.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := ""
		if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
			ip = a.IP.String()
		}
		if reason := ll.limits.admit(ip, time.Now()); reason != "" {
			ll.limits.log.Warn("inbound connection refused", "ip", ip, "reason", reason)
			go func() {
				c.SetWriteDeadline(time.Now().Add(5 * time.Second))
				io.WriteString(c, "421 4.7.0 "+ll.limits.hostname+" "+reason+"\r\n")
				c.Close()
			}()
			continue
		}
		return &limitedConn{Conn: c, release: func() { ll.limits.release(ip) }}, nil
	}
}

type limitedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// slogPrinter carries go-smtp's internal error log into slog.
type slogPrinter struct{ log *slog.Logger }

func (p slogPrinter) Printf(format string, v ...any) {
	p.log.Warn("inbound smtp", "msg", strings.TrimSpace(fmt.Sprintf(format, v...)))
}

func (p slogPrinter) Println(v ...any) {
	p.log.Warn("inbound smtp", "msg", strings.TrimSpace(fmt.Sprintln(v...)))
}
