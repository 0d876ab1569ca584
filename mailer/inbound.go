package mailer

import (
	"bytes"
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
	"github.com/herald-mail/herald/mailer/bounce"
	"github.com/herald-mail/herald/models"
)

// InboundStore is what the inbound server records through; *models.Store
// implements it.
type InboundStore interface {
	// DeliveryByMessageID finds a delivery by the Message-ID of its message;
	// models.ErrNotFound when none matches.
	DeliveryByMessageID(ctx context.Context, messageID string) (*models.Delivery, error)
	// RecordBounce records a hard or soft bounce of a delivery, looking the
	// delivery up itself; models.ErrNotFound when it does not exist.
	RecordBounce(ctx context.Context, n models.BounceNotice) (*models.BounceResult, error)
	// RecordComplaint records a spam complaint about a delivery or address.
	RecordComplaint(ctx context.Context, n models.BounceNotice) (*models.BounceResult, error)
	// UnsubscribeDelivery unsubscribes a delivery's recipient from the
	// campaign's lists.
	UnsubscribeDelivery(ctx context.Context, deliveryID int64, ev models.Evidence) (int, error)
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
	// RecordTimeout bounds the database work for one message; when it
	// fails the sender gets a temporary error and retries. Zero: 30s.
	RecordTimeout time.Duration
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
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// InboundServer is Herald's inbound SMTP server. It accepts mail only for
// the addresses Herald itself hands out: VERP return paths
// (b-TOKEN@bounce-domain), the mailto unsubscribe addresses of
// List-Unsubscribe (u-TOKEN@bounce-domain) and the feedback-loop address.
// Everything else is refused at RCPT, so it is no relay and sends no
// backscatter. Bounces suppress addresses, complaints unsubscribe and
// suppress, and unsubscribe mail unsubscribes.
type InboundServer struct {
	store   InboundStore
	opts    InboundOptions
	log     *slog.Logger
	domains map[string]bool
	smtp    *smtp.Server
	limits  *connLimiter
}

// NewInboundServer returns a server recording into store. Start it with
// ListenAndServe or Serve.
func NewInboundServer(store InboundStore, o InboundOptions) (*InboundServer, error) {
	if o.Keys == nil {
		return nil, errors.New("mailer: inbound server: Keys are required to verify VERP addresses")
	}
	o = o.withDefaults()
	s := &InboundServer{store: store, opts: o, log: o.Logger, domains: map[string]bool{}}
	for _, d := range o.BounceDomains {
		s.domains[strings.ToLower(strings.TrimSpace(d))] = true
	}
	o.FeedbackAddress = strings.ToLower(strings.TrimSpace(o.FeedbackAddress))
	s.opts.FeedbackAddress = o.FeedbackAddress
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
	go func() { errc <- s.smtp.Serve(&limitedListener{Listener: l, limits: s.limits}) }()
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

// rcptKind is what an accepted recipient address is for.
type rcptKind int

const (
	rcptBounce      rcptKind = iota + 1 // VERP return path of one delivery
	rcptUnsubscribe                     // mailto one-click unsubscribe of one delivery
	rcptFeedback                        // the feedback-loop address
)

type inboundRcpt struct {
	kind       rcptKind
	deliveryID int64
	addr       string
}

// classify decides whether addr is one of ours; the error is the RCPT reply.
func (s *InboundServer) classify(addr string) (inboundRcpt, error) {
	lower := strings.ToLower(addr)
	if s.opts.FeedbackAddress != "" && lower == s.opts.FeedbackAddress {
		return inboundRcpt{kind: rcptFeedback, addr: addr}, nil
	}
	at := strings.LastIndexByte(addr, '@')
	if at <= 0 {
		return inboundRcpt{}, errNoSuchUser
	}
	local, domain := addr[:at], strings.ToLower(addr[at+1:])
	ours := s.domains[domain] || (s.opts.FeedbackAddress != "" && strings.HasSuffix(s.opts.FeedbackAddress, "@"+domain))
	prefix := strings.ToLower(local[:min(2, len(local))])
	tokenish := prefix == "b-" || prefix == "u-"
	if !ours && !(len(s.domains) == 0 && tokenish) {
		return inboundRcpt{}, errRelayDenied
	}
	switch prefix {
	case "b-":
		id, err := s.opts.Keys.Delivery(local[2:], token.Bounce)
		if err != nil {
			return inboundRcpt{}, errBadToken
		}
		return inboundRcpt{kind: rcptBounce, deliveryID: id, addr: addr}, nil
	case "u-":
		id, err := s.opts.Keys.Delivery(local[2:], token.Unsubscribe)
		if err != nil {
			return inboundRcpt{}, errBadToken
		}
		return inboundRcpt{kind: rcptUnsubscribe, deliveryID: id, addr: addr}, nil
	}
	return inboundRcpt{}, errNoSuchUser
}

func (s *InboundServer) newSession(c *smtp.Conn) (smtp.Session, error) {
	ip := ""
	if a, ok := c.Conn().RemoteAddr().(*net.TCPAddr); ok {
		ip = a.IP.String()
	}
	return &inboundSession{srv: s, ip: ip, helo: c.Hostname()}, nil
}

// inboundSession is one SMTP session.
type inboundSession struct {
	srv   *InboundServer
	ip    string
	helo  string
	from  string
	rcpts []inboundRcpt
}

func (ss *inboundSession) Reset() {
	ss.from = ""
	ss.rcpts = nil
}

func (ss *inboundSession) Logout() error { return nil }

func (ss *inboundSession) Mail(from string, _ *smtp.MailOptions) error {
	ss.from = from
	return nil
}

func (ss *inboundSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	r, err := ss.srv.classify(to)
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
	defer func() {
		// The message is hostile input; a bug in handling it must cost us
		// this message, not the server.
		if p := recover(); p != nil {
			ss.srv.log.Error("inbound message panic", "ip", ss.ip, "from", ss.from, "panic", fmt.Sprint(p))
			err = errTryLater
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), ss.srv.opts.RecordTimeout)
	defer cancel()
	var rep *bounce.Report
	for _, rc := range ss.rcpts {
		if rc.kind != rcptUnsubscribe && rep == nil {
			if rep, err = bounce.Parse(bytes.NewReader(raw)); err != nil {
				return err
			}
		}
		if err := ss.srv.handle(ctx, ss, rc, rep); err != nil {
			ss.srv.log.Error("inbound message not recorded", "ip", ss.ip, "from", ss.from, "rcpt", rc.addr,
				"delivery", rc.deliveryID, "err", err)
			return errTryLater
		}
	}
	return nil
}

// handle applies one accepted message to one of its recipients. Only a
// database failure is an error; messages that attribute to nothing are
// logged and dropped.
func (s *InboundServer) handle(ctx context.Context, ss *inboundSession, rc inboundRcpt, rep *bounce.Report) error {
	log := s.log.With("ip", ss.ip, "helo", ss.helo, "from", ss.from, "rcpt", rc.addr)
	if rc.kind == rcptUnsubscribe {
		n, err := s.store.UnsubscribeDelivery(ctx, rc.deliveryID, models.Evidence{
			Source: models.SourceOneClick, IP: ss.ip, Actor: "subscriber", Note: "mailto unsubscribe from " + ss.from,
		})
		if errors.Is(err, models.ErrNotFound) {
			log.Warn("inbound unsubscribe for unknown delivery", "delivery", rc.deliveryID)
			return nil
		}
		if err != nil {
			return err
		}
		log.Info("inbound unsubscribe", "delivery", rc.deliveryID, "lists", n)
		return nil
	}

	v, ok := strongest(rep)
	if !ok {
		log.Info("inbound message ignored: no bounce or complaint", "delivery", rc.deliveryID, "message_id", rep.MessageID)
		return nil
	}
	if v.Kind == bounce.KindComplaint && !isComplaint(rep.FeedbackType) {
		log.Info("inbound feedback report ignored", "feedback_type", rep.FeedbackType, "message_id", rep.MessageID)
		return nil
	}
	deliveryID := rc.deliveryID
	if deliveryID == 0 {
		var err error
		if deliveryID, err = s.attribute(ctx, rep); err != nil {
			return err
		}
	}
	n := models.BounceNotice{
		DeliveryID: deliveryID, Kind: string(v.Kind), Category: string(v.Category), Status: v.Status,
		Diagnostic: v.Diagnostic, RemoteMTA: rep.ReportingMTA,
	}
	if n.RemoteMTA == "" {
		n.RemoteMTA = ss.helo + " [" + ss.ip + "]"
	}
	var (
		res *models.BounceResult
		err error
	)
	switch {
	case v.Kind == bounce.KindComplaint:
		n.Category = rep.FeedbackType
		if deliveryID == 0 {
			n.Email = v.Recipient
		}
		if deliveryID == 0 && n.Email == "" {
			log.Warn("inbound complaint matches no delivery", "message_id", rep.MessageID, "feedback_type", rep.FeedbackType)
			return nil
		}
		res, err = s.store.RecordComplaint(ctx, n)
	case deliveryID == 0:
		log.Warn("inbound bounce matches no delivery", "message_id", rep.MessageID, "recipient", v.Recipient, "status", v.Status)
		return nil
	default:
		res, err = s.store.RecordBounce(ctx, n)
	}
	if errors.Is(err, models.ErrNotFound) {
		log.Warn("inbound "+n.Kind+" for unknown delivery", "delivery", deliveryID, "message_id", rep.MessageID, "status", v.Status)
		return nil
	}
	if err != nil {
		return err
	}
	log.Info("inbound "+n.Kind, "campaign", res.CampaignID, "delivery", deliveryID, "subscriber", res.SubscriberID,
		"message_id", rep.MessageID, "status", v.Status, "category", n.Category, "remote_mta", n.RemoteMTA,
		"suppressed", res.Suppressed, "unsubscribed", res.Unsubscribed, "duplicate", res.Duplicate)
	return nil
}

// strongest picks the verdict that matters most: a complaint over a hard
// bounce over a soft one. Auto-replies and non-bounces count for nothing.
func strongest(rep *bounce.Report) (bounce.Verdict, bool) {
	rank := map[bounce.Kind]int{bounce.KindSoft: 1, bounce.KindHard: 2, bounce.KindComplaint: 3}
	var best bounce.Verdict
	for _, v := range rep.Recipients {
		if rank[v.Kind] > rank[best.Kind] {
			best = v
		}
	}
	return best, rank[best.Kind] > 0
}

// isComplaint reports whether an ARF feedback type is a person's complaint;
// auth-failure reports (DMARC, DKIM) and not-spam are not.
func isComplaint(feedbackType string) bool {
	switch feedbackType {
	case "auth-failure", "not-spam":
		return false
	}
	return true
}

// attribute finds the delivery a report without a VERP address is about:
// by the signed Message-ID Herald writes, by the Message-ID stored on the
// delivery, or by a VERP or unsubscribe token in the quoted original
// headers. It returns 0 when nothing matches.
func (s *InboundServer) attribute(ctx context.Context, rep *bounce.Report) (int64, error) {
	if id := rep.MessageID; id != "" {
		local := id
		if at := strings.LastIndexByte(id, '@'); at > 0 {
			local = id[:at]
		}
		if d, err := s.opts.Keys.Delivery(local, token.MessageID); err == nil {
			return d, nil
		}
		d, err := s.store.DeliveryByMessageID(ctx, id)
		switch {
		case err == nil:
			return d.ID, nil
		case !errors.Is(err, models.ErrNotFound):
			return 0, err
		}
	}
	h := rep.Original
	for _, f := range []struct {
		field, prefix string
		kind          token.Kind
	}{
		{"Return-Path", "b-", token.Bounce},
		{"List-Unsubscribe", "u-", token.Unsubscribe},
	} {
		v := h.Get(f.field)
		for {
			i := strings.Index(strings.ToLower(v), f.prefix)
			if i < 0 {
				break
			}
			v = v[i+2:]
			end := strings.IndexAny(v, "@?> ,")
			if end < 0 {
				end = len(v)
			}
			if d, err := s.opts.Keys.Delivery(v[:end], f.kind); err == nil {
				return d, nil
			}
		}
	}
	return 0, nil
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
