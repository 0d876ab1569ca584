package mailer

import (
	"bufio"
	"bytes"
	"errors"
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
	w         *bufio.Writer
	r         *textproto.Reader
	pipelined bool
	chunking  bool
	t         Timeouts
}

func newTxWriter(conn net.Conn, pipelined, chunking bool, t Timeouts) *txWriter {
	return &txWriter{conn: conn, w: bufio.NewWriterSize(conn, 32<<10), r: textproto.NewReader(bufio.NewReader(conn)),
		pipelined: pipelined, chunking: chunking && pipelined, t: t}
}

// smtpReply is one reply as read; code 0 never reaches callers.
type smtpReply struct {
	code int
	text string // the lines joined with "\n", enhanced code included
}

// read reads one (possibly multi-line) reply.
func (x *txWriter) read(timeout time.Duration) (smtpReply, error) {
	x.conn.SetReadDeadline(time.Now().Add(timeout))
	code, msg, err := x.r.ReadResponse(0)
	if err != nil {
		var te *textproto.Error
		if !errors.As(err, &te) {
			return smtpReply{}, err
		}
		code, msg = te.Code, te.Msg
	}
	return smtpReply{code: code, text: msg}, nil
}

// command queues one command line; it is sent by the next flush.
func (x *txWriter) command(verb, arg string) {
	x.w.WriteString(verb)
	x.w.WriteString(arg)
	x.w.WriteString("\r\n")
}

func (x *txWriter) flush() error {
	x.conn.SetWriteDeadline(time.Now().Add(x.t.Command))
	return x.w.Flush()
}

// exchange sends the queued commands and reads one reply per command,
// all at once when pipelining, else command by command (the caller queues
// one at a time then).
func (x *txWriter) exchange(n int) ([]smtpReply, error) {
	if err := x.flush(); err != nil {
		return nil, err
	}
	out := make([]smtpReply, n)
	for i := range out {
		r, err := x.read(x.t.Command)
		if err != nil {
			return nil, err
		}
		out[i] = r
	}
	return out, nil
}

// transaction sends one message. It returns the reply that decided the
// message's fate: the first refusal among RSET, MAIL and RCPT, DATA's
// refusal, or the reply to the end of data. A non-nil error means the
// connection is broken.
func (x *txWriter) transaction(reset bool, from, to string, header, body []byte) (smtpReply, error) {
	if x.chunking {
		return x.chunked(reset, from, to, header, body)
	}
	cmds := []struct{ verb, arg string }{{"MAIL FROM:", "<" + from + ">"}, {"RCPT TO:", "<" + to + ">"}, {"DATA", ""}}
	if reset {
		cmds = append([]struct{ verb, arg string }{{"RSET", ""}}, cmds...)
	}
	var replies []smtpReply
	if x.pipelined {
		for _, c := range cmds {
			x.command(c.verb, c.arg)
		}
		var err error
		if replies, err = x.exchange(len(cmds)); err != nil {
			return smtpReply{}, err
		}
	} else {
		for _, c := range cmds {
			x.command(c.verb, c.arg)
			r, err := x.exchange(1)
			if err != nil {
				return smtpReply{}, err
			}
			replies = append(replies, r[0])
			if r[0].code >= 400 {
				break // nothing after a refusal in a lock-step dialogue
			}
		}
	}
	last := len(replies) - 1
	for i, r := range replies[:last] {
		if r.code >= 400 {
			if replies[last].code == 354 {
				// RFC 2920 3.1: a server that accepts DATA after refusing
				// every recipient gets an empty message, to be refused.
				x.w.WriteString(".\r\n")
				if _, err := x.exchange(1); err != nil {
					return smtpReply{}, err
				}
			}
			return replies[i], nil
		}
	}
	if replies[last].code != 354 {
		return replies[last], nil
	}
	writeDotStuffed(x.w, header)
	writeDotStuffed(x.w, body)
	if n := len(body); n < 2 || body[n-2] != '\r' || body[n-1] != '\n' {
		x.w.WriteString("\r\n")
	}
	x.w.WriteString(".\r\n")
	x.conn.SetWriteDeadline(time.Now().Add(x.t.Data))
	if err := x.w.Flush(); err != nil {
		return smtpReply{}, err
	}
	return x.read(x.t.Data)
}

// chunked sends a whole transaction in one write: [RSET,] MAIL, RCPT and
// "BDAT n LAST" followed by the n bytes of the message, then reads the
// replies. A server that refused MAIL or RCPT refuses the BDAT too, after
// reading (and dropping) its payload (RFC 3030 2); the earliest refusal
// is the message's reply.
func (x *txWriter) chunked(reset bool, from, to string, header, body []byte) (smtpReply, error) {
	n := 3
	if reset {
		x.command("RSET", "")
		n++
	}
	x.command("MAIL FROM:", "<"+from+">")
	x.command("RCPT TO:", "<"+to+">")
	size := len(header) + len(body)
	crlf := len(body) < 2 || body[len(body)-2] != '\r' || body[len(body)-1] != '\n'
	if crlf {
		size += 2
	}
	x.command("BDAT ", strconv.Itoa(size)+" LAST")
	x.w.Write(header)
	x.w.Write(body)
	if crlf {
		x.w.WriteString("\r\n")
	}
	x.conn.SetWriteDeadline(time.Now().Add(x.t.Data))
	if err := x.w.Flush(); err != nil {
		return smtpReply{}, err
	}
	var refused, last smtpReply
	for range n {
		r, err := x.read(x.t.Data)
		if err != nil {
			return smtpReply{}, err
		}
		if refused.code == 0 && r.code >= 400 {
			refused = r
		}
		last = r
	}
	if refused.code != 0 {
		return refused, nil
	}
	return last, nil
}

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
	x.command("QUIT", "")
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
	parts := strings.Split(s[2:], ".")
	if len(parts) != 2 {
		return false
	}
	for _, p := range parts {
		if len(p) == 0 || len(p) > 3 || strings.Trim(p, "0123456789") != "" {
			return false
		}
	}
	return true
}
