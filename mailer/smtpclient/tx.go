package smtpclient

import (
	"bytes"
	"errors"
	"fmt"
	"time"
)

// stepKind is one command of a transaction.
type stepKind uint8

const (
	stepRSET stepKind = iota
	stepMAIL
	stepRCPT
	stepDATA // expects 354
	stepBDAT // BDAT n LAST
	stepDot  // the end of data
)

var stepNames = [...]string{"RSET", "MAIL", "RCPT", "DATA", "BDAT", "end of data"}

// ok reports whether code is what the step expects: 354 for DATA, any
// 2xx otherwise.
func (k stepKind) ok(code int) bool {
	if k == stepDATA {
		return code == 354
	}
	return code/100 == 2
}

// timeout is how long the step's reply may take (RFC 5321 4.5.3.2).
func (c *Client) timeout(k stepKind) time.Duration {
	switch k {
	case stepMAIL:
		return c.t.Mail
	case stepRCPT:
		return c.t.Rcpt
	case stepDATA:
		return c.t.DataInit
	case stepBDAT, stepDot:
		return c.t.DataEnd
	}
	return c.t.Command
}

// command queues one command line; the next send writes it.
func (c *Client) command(k stepKind, from, to string, size int) {
	switch k {
	case stepRSET:
		c.w.WriteString("RSET\r\n")
	case stepMAIL:
		c.w.WriteString("MAIL FROM:<")
		c.w.WriteString(from)
		c.w.WriteString(">")
		if c.mail.SMTPUTF8 {
			c.w.WriteString(" SMTPUTF8")
		}
		c.w.WriteString("\r\n")
	case stepRCPT:
		c.w.WriteString("RCPT TO:<")
		c.w.WriteString(to)
		c.w.WriteString(">\r\n")
	case stepDATA:
		c.w.WriteString("DATA\r\n")
	case stepBDAT:
		c.w.WriteString("BDAT ")
		c.w.Write(c.itoa(size))
		c.w.WriteString(" LAST\r\n")
	}
}

// Send runs one transaction for one recipient and returns the reply that
// decided the message: the first refusal among RSET, MAIL, RCPT and DATA
// (or BDAT), or the reply to the end of the message. header and body are
// sent one after the other (CRLF line ends; a missing final CRLF is
// added). A non-nil error means the connection is done; the reply still
// decides the message when it has a code (the server answered, then hung
// up or said 421), and the message's fate is unknown when it has none.
func (c *Client) Send(from, to string, header, body []byte) (Reply, error) {
	return c.SendWith(MailOptions{}, from, to, header, body)
}

// MailOptions are parameters of MAIL FROM.
type MailOptions struct {
	// SMTPUTF8 asks for RFC 6531 handling (an address or header with
	// UTF-8); only for a server that offers it (Ext("SMTPUTF8")).
	SMTPUTF8 bool
}

// SendWith is Send with MAIL FROM parameters.
func (c *Client) SendWith(o MailOptions, from, to string, header, body []byte) (Reply, error) {
	c.mail = o
	r, err := c.run(from, to, header, body)
	c.dirty = r.code >= 400
	if r.code == 0 {
		return Reply{}, err
	}
	return r.parse(), err
}

func (c *Client) run(from, to string, header, body []byte) (rawReply, error) {
	steps := c.steps[:0]
	if c.dirty {
		steps = append(steps, stepRSET)
	}
	steps = append(steps, stepMAIL, stepRCPT)
	if c.chunking {
		return c.chunked(steps, from, to, header, body)
	}
	steps = append(steps, stepDATA)
	c.steps = steps
	var replies []rawReply
	var stopped error
	c.dw.timeout = c.t.Command
	if c.pipelining {
		for _, s := range steps {
			c.command(s, from, to, 0)
		}
		if replies, stopped = c.send(len(steps)); stopped == nil {
			replies, stopped = c.readSteps(steps)
		}
	} else {
		replies = c.replies[:0]
		for _, s := range steps {
			c.command(s, from, to, 0)
			got, err := c.send(1)
			if err == nil {
				var r rawReply
				if r, err = c.readStep(s); err == nil {
					replies = append(replies, r)
				}
			} else {
				replies = append(replies, got...)
			}
			if err != nil || !s.ok(replies[len(replies)-1].code) {
				stopped = err
				break // nothing after a refusal in a lock-step dialogue
			}
		}
		c.replies = replies
		steps = steps[:len(replies)]
	}
	refusal, dataOK, err := verdict(steps, replies, stopped)
	switch {
	case refusal.code != 0 && dataOK && err == nil:
		// RFC 2920 3.1: a server that accepts DATA after refusing every
		// recipient gets an empty message, to be refused.
		c.w.WriteString(".\r\n")
		if _, err = c.send(0); err == nil {
			_, err = c.read(c.t.DataEnd)
		}
		return refusal, err
	case refusal.code != 0 || err != nil:
		return refusal, err
	case !dataOK:
		return rawReply{}, errors.New("smtpclient: no reply to DATA")
	}
	c.dw.timeout = c.t.DataBlock
	writeDotStuffed(c, header)
	writeDotStuffed(c, body)
	if !endsWithCRLF(body) {
		c.w.WriteString("\r\n")
	}
	c.w.WriteString(".\r\n")
	c.steps = append(c.steps[:0], stepDot)
	return c.final(c.steps)
}

// chunked sends a whole transaction in one write: [RSET,] MAIL, RCPT and
// "BDAT n LAST" followed by the n bytes of the message, then reads the
// replies, each under its own timeout. A server that refused MAIL or RCPT
// refuses the BDAT too, after reading (and dropping) its payload (RFC
// 3030 2); the earliest refusal is the message's reply.
func (c *Client) chunked(steps []stepKind, from, to string, header, body []byte) (rawReply, error) {
	size := len(header) + len(body)
	crlf := !endsWithCRLF(body)
	if crlf {
		size += 2
	}
	steps = append(steps, stepBDAT)
	c.steps = steps
	// The commands and the data go in the same writes: each under the
	// data block timeout.
	c.dw.timeout = c.t.DataBlock
	for _, s := range steps {
		c.command(s, from, to, size)
	}
	c.w.Write(header)
	c.w.Write(body)
	if crlf {
		c.w.WriteString("\r\n")
	}
	return c.final(steps)
}

// final sends what is queued and reads the replies to steps (the end of
// data, or everything of a chunked transaction).
func (c *Client) final(steps []stepKind) (rawReply, error) {
	replies, stopped := c.send(len(steps))
	if stopped == nil {
		replies, stopped = c.readSteps(steps)
	}
	refusal, ok, err := verdict(steps, replies, stopped)
	switch {
	case refusal.code != 0:
		return refusal, err
	case ok:
		r := replies[len(replies)-1]
		r.cmd = stepNames[steps[len(steps)-1]]
		return r, err
	case err == nil:
		err = errors.New("smtpclient: no final reply")
	}
	return rawReply{}, err
}

// send writes what is queued. When the write fails, the server may still
// have answered before it hung up (a 421 or a 5xx to MAIL, then close):
// salvage reads, briefly, up to n replies that reached us.
func (c *Client) send(n int) (salvaged []rawReply, err error) {
	if err = c.w.Flush(); err != nil {
		for range n {
			r, rerr := c.read(time.Second)
			if rerr != nil {
				break
			}
			salvaged = append(salvaged, r)
		}
	}
	return salvaged, err
}

// readSteps reads the replies to steps, each under its step's timeout
// counted from the previous reply (a pipelined group's replies come
// together, so a stalled RCPT times out as an RCPT, not as the end of
// data behind it). It stops at the first error and returns those read.
func (c *Client) readSteps(steps []stepKind) ([]rawReply, error) {
	out := c.replies[:0]
	for _, s := range steps {
		r, err := c.readStep(s)
		if err != nil {
			c.replies = out
			return out, err
		}
		out = append(out, r)
	}
	c.replies = out
	return out, nil
}

// readStep reads the reply to one step under its timeout.
func (c *Client) readStep(s stepKind) (rawReply, error) {
	r, err := c.read(c.timeout(s))
	if err != nil {
		return r, fmt.Errorf("smtpclient: reply to %s: %w", stepNames[s], err)
	}
	return r, nil
}

// verdict reads the replies to steps: the first one that is not what its
// step expects decides the message when it is a refusal (4xx or 5xx) and
// breaks the connection when it is anything else. stopped is the error
// that ended reading early, if any. It returns the deciding refusal (code
// 0: none), whether the last step got what it expected, and the error
// that ends the connection (421 anywhere, a protocol violation, or
// stopped).
func verdict(steps []stepKind, replies []rawReply, stopped error) (refusal rawReply, lastOK bool, err error) {
	for i, r := range replies {
		if r.code == 421 && err == nil {
			err = ErrClosing
		}
		if steps[i].ok(r.code) {
			continue
		}
		if r.code < 400 || r.code > 599 {
			if err == nil {
				err = fmt.Errorf("smtpclient: unexpected reply %d to %s", r.code, stepNames[steps[i]])
			}
			continue
		}
		if refusal.code == 0 {
			refusal = r
			refusal.cmd = stepNames[steps[i]]
		}
	}
	if err == nil {
		err = stopped
	}
	if len(replies) == len(steps) && len(steps) > 0 {
		lastOK = steps[len(steps)-1].ok(replies[len(replies)-1].code)
	}
	return refusal, lastOK, err
}

func endsWithCRLF(b []byte) bool { return bytes.HasSuffix(b, []byte("\r\n")) }

// writeDotStuffed queues b (CRLF line ends) doubling the dot that starts
// a line (RFC 5321 4.5.2); b is taken to start at a line start.
func writeDotStuffed(c *Client, b []byte) {
	if len(b) > 0 && b[0] == '.' {
		c.w.WriteByte('.')
	}
	for {
		i := bytes.Index(b, []byte("\n."))
		if i < 0 {
			c.w.Write(b)
			return
		}
		c.w.Write(b[:i+1])
		c.w.WriteByte('.')
		b = b[i+1:]
	}
}
