package mailer

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"strconv"
	"strings"
	"time"
)

// txWriter runs mail transactions on a connection that go-smtp opened
// (greeting, EHLO, STARTTLS, AUTH). go-smtp's client sends one command and
// waits for its reply, and dot-stuffs the message a byte at a time. With
// PIPELINING (RFC 2920), which every large receiver offers, MAIL, RCPT and
// DATA go out in one write, so a message costs two round trips instead of
// four, and the body is stuffed a line start at a time. With CHUNKING too
// (RFC 3030), the message follows in the same write as BDAT's payload: one
// round trip, and nothing to stuff.
type txWriter struct {
	conn      net.Conn
	guard     *replyGuard
	w         *bufio.Writer
	r         *textproto.Reader
	pipelined bool
	chunking  bool
	t         Timeouts
	// dirty: the last transaction was refused. The server may hold part
	// of it (a MAIL accepted before a refused RCPT), so the next starts
	// with RSET; and servers often hang up after a refusal, so the
	// connection is looked at first (smtpConn.Stale).
	dirty bool
}

func newTxWriter(conn net.Conn, pipelined, chunking bool, t Timeouts) *txWriter {
	g := &replyGuard{r: conn}
	return &txWriter{conn: conn, guard: g, w: bufio.NewWriterSize(conn, 32<<10), r: textproto.NewReader(bufio.NewReader(g)),
		pipelined: pipelined, chunking: chunking && pipelined, t: t}
}

// replyGuard bounds what a server may send: lines of at most 2,000 bytes
// (go-smtp's limit; RFC 5321 allows 512) and 64 KiB per reply, so a
// hostile MX host cannot make Herald buffer without end.
type replyGuard struct {
	r    io.Reader
	line int // bytes since the last LF
	left int // bytes this reply may still take
}

var errReplyTooLong = errors.New("SMTP reply too long")

func (g *replyGuard) Read(p []byte) (int, error) {
	n, err := g.r.Read(p)
	g.left -= n
	for _, c := range p[:n] {
		if g.line++; c == '\n' {
			g.line = 0
		} else if g.line > 2000 {
			return 0, errReplyTooLong
		}
	}
	if g.left < 0 {
		return 0, errReplyTooLong
	}
	return n, err
}

// smtpReply is one reply as read.
type smtpReply struct {
	code int
	text string // the lines joined with "\n", enhanced code included
}

// step is one command of a transaction and the reply it expects: 2 for
// any 2xx, 354 for DATA.
type step struct {
	verb, arg string
	want      int
}

func (s step) ok(code int) bool {
	if s.want == 354 {
		return code == 354
	}
	return code/100 == 2
}

// errClosing: the server answered 421, so the connection is going away.
var errClosing = errors.New("the server is closing the connection (421)")

// read reads one (possibly multi-line) reply.
func (x *txWriter) read(timeout time.Duration) (smtpReply, error) {
	x.conn.SetReadDeadline(time.Now().Add(timeout))
	return x.reply()
}

func (x *txWriter) reply() (smtpReply, error) {
	x.guard.left = 64 << 10
	code, msg, err := x.r.ReadResponse(0) // 0: any code; only a malformed reply is an error
	if err != nil {
		return smtpReply{}, err
	}
	return smtpReply{code: code, text: msg}, nil
}

// readN reads up to n replies, stopping at the first error; it returns
// those read. The timeout is the group's: a pipelined group's replies
// come together.
func (x *txWriter) readN(n int, timeout time.Duration) ([]smtpReply, error) {
	x.conn.SetReadDeadline(time.Now().Add(timeout))
	out := make([]smtpReply, 0, n)
	for range n {
		r, err := x.reply()
		if err != nil {
			return out, err
		}
		out = append(out, r)
	}
	return out, nil
}

// send writes what is queued. When the write fails, the server may still
// have answered before it hung up (a 421 or a 5xx to MAIL, then close):
// salvage reads, briefly, up to n replies that reached us.
func (x *txWriter) send(timeout time.Duration, n int) (salvaged []smtpReply, err error) {
	x.conn.SetWriteDeadline(time.Now().Add(timeout))
	if err = x.w.Flush(); err != nil {
		salvaged, _ = x.readN(n, time.Second)
	}
	return salvaged, err
}

// closedByPeer reports whether the server has closed the connection (or
// sent something unasked, such as a 421 before closing): a read that
// finds data or the end of the stream within a millisecond. Nothing is
// pending on a connection in step, so the read normally just times out.
// Servers often hang up after a refusal, so it is asked only then.
func (x *txWriter) closedByPeer() bool {
	x.conn.SetReadDeadline(time.Now().Add(time.Millisecond))
	_, err := x.r.R.Peek(1)
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout())
}

// command queues one command line; it is sent by the next send.
func (x *txWriter) command(s step) {
	x.w.WriteString(s.verb)
	x.w.WriteString(s.arg)
	x.w.WriteString("\r\n")
}

// verdict reads the replies to steps: the first one that is not what its
// step expects decides the message when it is a refusal (4xx or 5xx) and
// breaks the connection when it is anything else. stopped is the error
// that ended reading early, if any. It returns the deciding refusal (code
// 0: none), whether the last step got what it expected, and the error
// that ends the connection (421 anywhere, a protocol violation, or
// stopped).
func verdict(steps []step, replies []smtpReply, stopped error) (refusal smtpReply, lastOK bool, err error) {
	for i, r := range replies {
		if r.code == 421 && err == nil {
			err = errClosing
		}
		if steps[i].ok(r.code) {
			continue
		}
		if r.code < 400 || r.code > 599 {
			if err == nil {
				err = fmt.Errorf("unexpected SMTP reply %d to %s", r.code, strings.TrimSuffix(steps[i].verb, ":"))
			}
			continue
		}
		if refusal.code == 0 {
			refusal = r
		}
	}
	if err == nil {
		err = stopped
	}
	if len(replies) == len(steps) {
		lastOK = steps[len(steps)-1].ok(replies[len(replies)-1].code)
	}
	return refusal, lastOK, err
}

// transaction sends one message and returns the reply that decided its
// fate: the first refusal among RSET, MAIL, RCPT and DATA (or BDAT), or
// the reply to the end of the message. A non-nil error means the
// connection is done; the reply still decides the message when it has a
// code (the server answered, then hung up or said 421), and the message's
// fate is unknown when it has none.
func (x *txWriter) transaction(from, to string, header, body []byte) (smtpReply, error) {
	r, err := x.run(from, to, header, body)
	x.dirty = r.code >= 400
	return r, err
}

func (x *txWriter) run(from, to string, header, body []byte) (smtpReply, error) {
	steps := make([]step, 0, 4)
	if x.dirty {
		steps = append(steps, step{"RSET", "", 2})
	}
	steps = append(steps, step{"MAIL FROM:", "<" + from + ">", 2}, step{"RCPT TO:", "<" + to + ">", 2})
	if x.chunking {
		return x.chunked(steps, header, body)
	}
	steps = append(steps, step{"DATA", "", 354})
	var replies []smtpReply
	var stopped error
	if x.pipelined {
		for _, s := range steps {
			x.command(s)
		}
		if replies, stopped = x.send(x.t.Command, len(steps)); stopped == nil {
			replies, stopped = x.readN(len(steps), x.t.Command)
		}
	} else {
		for _, s := range steps {
			x.command(s)
			got, err := x.send(x.t.Command, 1)
			if err == nil {
				got, err = x.readN(1, x.t.Command)
			}
			replies = append(replies, got...)
			if err != nil || !s.ok(got[0].code) {
				stopped = err
				break // nothing after a refusal in a lock-step dialogue
			}
		}
		steps = steps[:len(replies)]
	}
	refusal, dataOK, err := verdict(steps, replies, stopped)
	switch {
	case refusal.code != 0 && dataOK && err == nil:
		// RFC 2920 3.1: a server that accepts DATA after refusing every
		// recipient gets an empty message, to be refused.
		x.w.WriteString(".\r\n")
		if _, err = x.send(x.t.Command, 0); err == nil {
			_, err = x.readN(1, x.t.Data)
		}
		return refusal, err
	case refusal.code != 0 || err != nil:
		return refusal, err
	case !dataOK:
		return smtpReply{}, errors.New("SMTP server gave no reply to DATA")
	}
	writeDotStuffed(x.w, header)
	writeDotStuffed(x.w, body)
	if !endsWithCRLF(body) {
		x.w.WriteString("\r\n")
	}
	x.w.WriteString(".\r\n")
	return x.final([]step{{".", "", 2}}, x.t.Data)
}

// final sends the queued message and reads the replies to steps (the end
// of data, or everything of a chunked transaction).
func (x *txWriter) final(steps []step, timeout time.Duration) (smtpReply, error) {
	replies, stopped := x.send(timeout, len(steps))
	if stopped == nil {
		replies, stopped = x.readN(len(steps), timeout)
	}
	refusal, ok, err := verdict(steps, replies, stopped)
	switch {
	case refusal.code != 0:
		return refusal, err
	case ok:
		return replies[len(replies)-1], err
	case err == nil:
		err = errors.New("SMTP server gave no final reply")
	}
	return smtpReply{}, err
}

// chunked sends a whole transaction in one write: [RSET,] MAIL, RCPT and
// "BDAT n LAST" followed by the n bytes of the message, then reads the
// replies. A server that refused MAIL or RCPT refuses the BDAT too, after
// reading (and dropping) its payload (RFC 3030 2); the earliest refusal
// is the message's reply.
func (x *txWriter) chunked(steps []step, header, body []byte) (smtpReply, error) {
	size := len(header) + len(body)
	crlf := !endsWithCRLF(body)
	if crlf {
		size += 2
	}
	steps = append(steps, step{"BDAT ", strconv.Itoa(size) + " LAST", 2})
	for _, s := range steps {
		x.command(s)
	}
	x.w.Write(header)
	x.w.Write(body)
	if crlf {
		x.w.WriteString("\r\n")
	}
	return x.final(steps, x.t.Data)
}

func endsWithCRLF(b []byte) bool { return bytes.HasSuffix(b, []byte("\r\n")) }

// writeDotStuffed writes b (CRLF line ends) doubling the dot that starts a
// line (RFC 5321 4.5.2); b is taken to start at a line start.
func writeDotStuffed(w *bufio.Writer, b []byte) {
	if len(b) > 0 && b[0] == '.' {
		w.WriteByte('.')
	}
	for {
		i := bytes.Index(b, []byte("\n."))
		if i < 0 {
			w.Write(b)
			return
		}
		w.Write(b[:i+1])
		w.WriteByte('.')
		b = b[i+1:]
	}
}

// quit says goodbye; the caller closes the connection.
func (x *txWriter) quit() {
	x.command(step{"QUIT", "", 2})
	x.conn.SetWriteDeadline(time.Now().Add(2 * time.Second))
	if x.w.Flush() == nil {
		x.read(2 * time.Second)
	}
}

// replyFrom splits the enhanced status code (RFC 2034) off a reply's
// text, from every line, as go-smtp does for the replies it reads.
func replyFrom(r smtpReply, host, source string) Reply {
	out := Reply{Code: r.code, Text: r.text, MXHost: host, SourceIP: source}
	code, rest, ok := strings.Cut(r.text, " ")
	if ok && isEnhancedCode(code) {
		out.Enhanced = code
		out.Text = strings.ReplaceAll(rest, "\n"+code+" ", "\n")
	}
	return out
}

// isEnhancedCode reports whether s looks like "5.1.1": a class digit 2, 4
// or 5, then two dot-separated numbers.
func isEnhancedCode(s string) bool {
	if len(s) < 5 || (s[0] != '2' && s[0] != '4' && s[0] != '5') || s[1] != '.' {
		return false
	}
	subject, detail, ok := strings.Cut(s[2:], ".")
	return ok && isCodeNumber(subject) && isCodeNumber(detail)
}

// isCodeNumber: one to three digits.
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
