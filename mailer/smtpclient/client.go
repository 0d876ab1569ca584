// Package smtpclient is Herald's SMTP client: one connection type that
// opens a session (greeting, EHLO, STARTTLS, AUTH) and then runs mail
// transactions, pipelined (RFC 2920) and chunked (RFC 3030) when the
// server offers it, every reply read under its RFC 5321 4.5.3.2 timeout.
//
// It is written for the delivery hot path: a message with PIPELINING and
// CHUNKING is one write and one round trip, the write buffer and reply
// slices are reused from message to message, and the body is dot-stuffed a
// line start at a time (or not at all with BDAT).
package smtpclient

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"strconv"
	"strings"
	"time"
)

// Timeouts bound each wait of a conversation; a zero field takes the
// default named beside it (RFC 5321 4.5.3.2 for the replies).
type Timeouts struct {
	Connect   time.Duration // TCP connect (and an implicit TLS handshake), default 30s
	Command   time.Duration // EHLO, STARTTLS and its handshake, AUTH, RSET, default 5m
	Greeting  time.Duration // the server's 220 greeting, default Command
	Mail      time.Duration // the reply to MAIL FROM, default Command
	Rcpt      time.Duration // the reply to RCPT TO, default Command
	DataInit  time.Duration // the 354 reply to DATA, default 2m
	DataBlock time.Duration // each write of message data, default 3m
	DataEnd   time.Duration // the reply to the final "." or to BDAT LAST, default 10m
}

// WithDefaults returns t with every zero field set to its default.
func (t Timeouts) WithDefaults() Timeouts {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&t.Connect, 30*time.Second)
	def(&t.Command, 5*time.Minute)
	def(&t.Greeting, t.Command)
	def(&t.Mail, t.Command)
	def(&t.Rcpt, t.Command)
	def(&t.DataInit, 2*time.Minute)
	def(&t.DataBlock, 3*time.Minute)
	def(&t.DataEnd, 10*time.Minute)
	return t
}

// Reply is one reply of the server, with the enhanced status code (RFC
// 2034) split off the text of every line.
type Reply struct {
	Code     int
	Enhanced string // "5.1.1"; "" when the server gave none
	Text     string // the lines joined with "\n"
	// Command is what the reply answered: "greeting", "EHLO", "HELO",
	// "STARTTLS", "AUTH", "RSET", "MAIL", "RCPT", "DATA", "BDAT" or "end
	// of data"; "" when unknown. A refusal's command says whom it
	// concerns: RCPT the recipient, MAIL the sender, DATA the message.
	Command string
}

func (r Reply) String() string {
	if r.Enhanced == "" {
		return fmt.Sprintf("%d %s", r.Code, r.Text)
	}
	return fmt.Sprintf("%d %s %s", r.Code, r.Enhanced, r.Text)
}

// Error is the server's refusal of a step of opening the session.
type Error struct {
	Stage string // "greeting", "EHLO", "STARTTLS" or "AUTH"
	Reply Reply
}

// opening is the error of a refusal during the opening at stage.
func opening(stage string, r rawReply) *Error {
	r.cmd = stage
	return &Error{Stage: stage, Reply: r.parse()}
}

func (e *Error) Error() string { return "smtpclient: " + e.Stage + ": " + e.Reply.String() }

var (
	// ErrHandshake: the TLS handshake after STARTTLS failed. The
	// connection is unusable (the server expects TLS); a caller that may
	// send in plain text must open a new one.
	ErrHandshake = errors.New("smtpclient: STARTTLS handshake failed")
	// ErrClosing: the server answered 421 and is closing the connection.
	ErrClosing = errors.New("smtpclient: the server is closing the connection (421)")
	// ErrReplyTooLong: a reply line over 2,000 bytes or a reply over 64 KiB.
	ErrReplyTooLong = errors.New("smtpclient: SMTP reply too long")
)

// Options configure Dial.
type Options struct {
	// LocalAddr is the source IP address to bind; "" lets the OS choose.
	LocalAddr string
	// ImplicitTLS, when not nil, starts TLS on the first byte (port 465).
	ImplicitTLS *tls.Config
	// Timeouts of the conversation.
	Timeouts Timeouts
}

// Client is one SMTP connection. It is not safe for concurrent use.
type Client struct {
	conn  net.Conn // TLS after StartTLS
	t     Timeouts
	dw    deadlineWriter
	w     *bufio.Writer
	guard replyGuard
	br    *bufio.Reader
	r     *textproto.Reader

	helo       string
	ext        map[string]string // EHLO keywords (upper case) and their parameters
	pipelining bool
	chunking   bool // offered and usable: only with PIPELINING
	tlsState   *tls.ConnectionState

	// dirty: the last transaction was refused. The server may hold part
	// of it (a MAIL accepted before a refused RCPT), so the next starts
	// with RSET; and servers often hang up after a refusal, so Stale
	// looks at the connection first.
	dirty bool

	mail    MailOptions // of the transaction under way
	steps   []stepKind  // reused by every transaction
	replies []rawReply
	num     [24]byte
}

// Dial connects to addr ("host:port") and returns a client that has read
// nothing yet: call Greeting next.
func Dial(ctx context.Context, addr string, o Options) (*Client, error) {
	t := o.Timeouts.WithDefaults()
	d := net.Dialer{Timeout: t.Connect}
	if o.LocalAddr != "" {
		ip := net.ParseIP(o.LocalAddr)
		if ip == nil {
			return nil, fmt.Errorf("smtpclient: bad source address %q", o.LocalAddr)
		}
		d.LocalAddr = &net.TCPAddr{IP: ip}
	}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if o.ImplicitTLS != nil {
		tc := tls.Client(conn, o.ImplicitTLS)
		hctx, cancel := context.WithTimeout(ctx, t.Connect)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			conn.Close()
			return nil, fmt.Errorf("smtpclient: TLS handshake: %w", err)
		}
		conn = tc
	}
	return New(conn, t), nil
}

// New returns a client on an open connection (Dial's second half).
func New(conn net.Conn, t Timeouts) *Client {
	c := &Client{t: t.WithDefaults()}
	c.br = bufio.NewReader(&c.guard)
	c.r = textproto.NewReader(c.br)
	c.w = bufio.NewWriterSize(&c.dw, 32<<10)
	c.setConn(conn)
	if tc, ok := conn.(*tls.Conn); ok {
		s := tc.ConnectionState()
		c.tlsState = &s
	}
	return c
}

func (c *Client) setConn(conn net.Conn) {
	c.conn, c.guard.r, c.dw.conn = conn, conn, conn
	c.br.Reset(&c.guard)
	c.w.Reset(&c.dw)
}

// Conn returns the connection (a *tls.Conn once TLS is on).
func (c *Client) Conn() net.Conn { return c.conn }

// LocalIP returns the local address of the connection.
func (c *Client) LocalIP() string {
	conn := c.conn
	if tc, ok := conn.(*tls.Conn); ok {
		conn = tc.NetConn()
	}
	if a, ok := conn.LocalAddr().(*net.TCPAddr); ok {
		return a.IP.String()
	}
	return ""
}

// Greeting reads the server's greeting; anything but 220 (421 "too
// busy", 554 "go away") is an *Error.
func (c *Client) Greeting() error {
	r, err := c.read(c.t.Greeting)
	if err != nil {
		return err
	}
	if r.code != 220 {
		return opening("greeting", r)
	}
	return nil
}

// Hello says EHLO, or HELO to a server that does not know EHLO, and
// learns the extensions offered.
func (c *Client) Hello(name string) error {
	c.helo = name
	c.ext, c.pipelining, c.chunking = map[string]string{}, false, false
	r, err := c.cmd("EHLO", "EHLO ", name)
	if err != nil {
		return err
	}
	if r.code == 500 || r.code == 502 {
		if r, err = c.cmd("HELO", "HELO ", name); err != nil {
			return err
		}
		if r.code != 250 {
			return opening("HELO", r)
		}
		return nil
	}
	if r.code != 250 {
		return opening("EHLO", r)
	}
	lines := strings.Split(r.text, "\n")
	for _, l := range lines[1:] {
		k, v, _ := strings.Cut(strings.TrimSpace(l), " ")
		c.ext[strings.ToUpper(k)] = v
	}
	c.pipelining = c.Ext("PIPELINING")
	c.chunking = c.pipelining && c.Ext("CHUNKING")
	return nil
}

// Ext reports whether the server offered the EHLO keyword name (any case),
// e.g. "SMTPUTF8", "STARTTLS", "8BITMIME".
func (c *Client) Ext(name string) bool {
	_, ok := c.ext[strings.ToUpper(name)]
	return ok
}

// ExtParam returns the parameters of an offered keyword ("PLAIN LOGIN"
// for AUTH, "35882577" for SIZE).
func (c *Client) ExtParam(name string) string { return c.ext[strings.ToUpper(name)] }

// SetPipelining turns PIPELINING and CHUNKING use off (or back on when
// offered): for tests of the lock-step and DATA paths, and for servers
// known to mishandle them.
func (c *Client) SetPipelining(pipelining, chunking bool) {
	c.pipelining = pipelining && c.Ext("PIPELINING")
	c.chunking = c.pipelining && chunking && c.Ext("CHUNKING")
}

// Pipelining and Chunking report what transactions use.
func (c *Client) Pipelining() bool { return c.pipelining }
func (c *Client) Chunking() bool   { return c.chunking }

// StartTLS upgrades the connection (RFC 3207) with cfg and says EHLO again.
// A failed handshake is ErrHandshake (wrapping the cause): the connection
// is then done.
func (c *Client) StartTLS(cfg *tls.Config) error {
	r, err := c.cmd("STARTTLS", "STARTTLS", "")
	if err != nil {
		return err
	}
	if r.code != 220 {
		return opening("STARTTLS", r)
	}
	if c.br.Buffered() > 0 {
		// Bytes sent before the handshake would be taken as part of the
		// TLS session (the STARTTLS command injection of CVE-2011-0411).
		return errors.New("smtpclient: STARTTLS: the server sent data before the handshake")
	}
	tc := tls.Client(c.conn, cfg)
	tc.SetDeadline(time.Now().Add(c.t.Command))
	if err := tc.Handshake(); err != nil {
		return fmt.Errorf("%w: %w", ErrHandshake, err)
	}
	tc.SetDeadline(time.Time{})
	c.setConn(tc)
	s := tc.ConnectionState()
	c.tlsState = &s
	return c.Hello(c.helo)
}

// TLS returns the state of the TLS session, ok false in plain text.
func (c *Client) TLS() (state tls.ConnectionState, ok bool) {
	if c.tlsState == nil {
		return tls.ConnectionState{}, false
	}
	return *c.tlsState, true
}

// Auth signs in with PLAIN, or LOGIN when the server offers only that. It
// refuses to send a password on a connection without TLS.
func (c *Client) Auth(user, pass string) error {
	if c.tlsState == nil {
		return errors.New("smtpclient: AUTH: refusing to send the password without TLS")
	}
	mechs := " " + strings.ToUpper(c.ExtParam("AUTH")) + " "
	switch {
	case strings.Contains(mechs, " PLAIN "):
		ir := base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + pass))
		r, err := c.cmd("AUTH", "AUTH PLAIN ", ir)
		if err != nil {
			return err
		}
		if r.code != 235 {
			return opening("AUTH", r)
		}
		return nil
	case strings.Contains(mechs, " LOGIN "):
		r, err := c.cmd("AUTH", "AUTH LOGIN", "")
		for _, v := range []string{user, pass} {
			if err != nil {
				return err
			}
			if r.code != 334 {
				return opening("AUTH", r)
			}
			r, err = c.cmd("AUTH", base64.StdEncoding.EncodeToString([]byte(v)), "")
		}
		if err != nil {
			return err
		}
		if r.code != 235 {
			return opening("AUTH", r)
		}
		return nil
	}
	return fmt.Errorf("smtpclient: AUTH: the server offers neither PLAIN nor LOGIN (it offers %q)", strings.TrimSpace(mechs))
}

// cmd sends one command line of the session's opening (verb and
// argument) and reads its reply under the command timeout. A 421 is an
// *Error of stage (never the line itself: it may carry credentials).
func (c *Client) cmd(stage, verb, arg string) (rawReply, error) {
	c.dw.timeout = c.t.Command
	c.w.WriteString(verb)
	c.w.WriteString(arg)
	c.w.WriteString("\r\n")
	if err := c.w.Flush(); err != nil {
		return rawReply{}, err
	}
	r, err := c.read(c.t.Command)
	if err == nil && r.code == 421 {
		return r, opening(stage, r)
	}
	return r, err
}

// Quit says goodbye, briefly: the caller closes the connection.
func (c *Client) Quit() {
	c.dw.timeout = 2 * time.Second
	c.w.WriteString("QUIT\r\n")
	if c.w.Flush() == nil {
		c.read(2 * time.Second)
	}
}

// Close closes the connection without QUIT.
func (c *Client) Close() error { return c.conn.Close() }

// Stale reports whether the server has closed the connection (or sent
// something unasked, such as a 421 before closing) since a refused
// transaction: a read that finds data or the end of the stream within a
// millisecond. Nothing is pending on a connection in step, so the read
// normally just times out. Servers often hang up after a refusal, so it
// looks only then.
func (c *Client) Stale() bool {
	if !c.dirty {
		return false
	}
	c.conn.SetReadDeadline(time.Now().Add(time.Millisecond))
	_, err := c.br.Peek(1)
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout())
}

// deadlineWriter sets a write deadline before each write, so that every
// TCP send of a command group or a block of message data has its own
// timeout (RFC 5321 4.5.3.2's "data block").
type deadlineWriter struct {
	conn    net.Conn
	timeout time.Duration
}

func (w *deadlineWriter) Write(p []byte) (int, error) {
	w.conn.SetWriteDeadline(time.Now().Add(w.timeout))
	return w.conn.Write(p)
}

// replyGuard bounds what a server may send: lines of at most 2,000 bytes
// (go-smtp's limit; RFC 5321 allows 512) and 64 KiB per reply, so a
// hostile MX host cannot make Herald buffer without end.
type replyGuard struct {
	r    io.Reader
	line int // bytes since the last LF
	left int // bytes this reply may still take
}

func (g *replyGuard) Read(p []byte) (int, error) {
	n, err := g.r.Read(p)
	g.left -= n
	for _, c := range p[:n] {
		if g.line++; c == '\n' {
			g.line = 0
		} else if g.line > 2000 {
			return 0, ErrReplyTooLong
		}
	}
	if g.left < 0 {
		return 0, ErrReplyTooLong
	}
	return n, err
}

// rawReply is a reply as read; parse splits the enhanced code off.
type rawReply struct {
	code int
	text string // the lines joined with "\n", enhanced codes included
	cmd  string // what it answered, when known
}

// read reads one (possibly multi-line) reply within timeout.
func (c *Client) read(timeout time.Duration) (rawReply, error) {
	c.conn.SetReadDeadline(time.Now().Add(timeout))
	c.guard.left = 64 << 10
	code, msg, err := c.r.ReadResponse(0) // 0: any code; only a malformed reply is an error
	if err != nil {
		return rawReply{}, err
	}
	return rawReply{code: code, text: msg}, nil
}

// parse splits the enhanced status code (RFC 2034) off the text, from
// every line, as go-smtp does.
func (r rawReply) parse() Reply {
	out := Reply{Code: r.code, Text: r.text, Command: r.cmd}
	code, rest, ok := strings.Cut(r.text, " ")
	if ok && IsEnhancedCode(code) {
		out.Enhanced = code
		out.Text = strings.ReplaceAll(rest, "\n"+code+" ", "\n")
	}
	return out
}

// ParseReply parses a reply's code and text (lines joined with "\n") as
// the client does.
func ParseReply(code int, text string) Reply { return rawReply{code: code, text: text}.parse() }

// IsEnhancedCode reports whether s looks like "5.1.1": a class digit 2, 4
// or 5, then two dot-separated numbers of one to three digits.
func IsEnhancedCode(s string) bool {
	if len(s) < 5 || (s[0] != '2' && s[0] != '4' && s[0] != '5') || s[1] != '.' {
		return false
	}
	subject, detail, ok := strings.Cut(s[2:], ".")
	return ok && isCodeNumber(subject) && isCodeNumber(detail)
}

func isCodeNumber(p string) bool {
	if len(p) == 0 || len(p) > 3 {
		return false
	}
	for i := 0; i < len(p); i++ {
		if p[i] < '0' || p[i] > '9' {
			return false
		}
	}
	return true
}

// appendInt formats n in the client's scratch space (no allocation).
func (c *Client) itoa(n int) []byte { return strconv.AppendInt(c.num[:0], int64(n), 10) }
