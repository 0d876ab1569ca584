package mailer

import (
	"crypto/tls"
	"net"
	"sync"
	"time"
)

// Inbound time limits. go-smtp sets a read deadline before every command
// line (ReadTimeout), which bounds one command but not a session: a client
// sending a NOOP every minute, or a message a line at a time, held a
// connection slot for as long as it liked. timedConn puts hard deadlines
// under the ones go-smtp sets: the whole session ends by SessionTimeout,
// and a message, from MAIL to the end of its data, by MessageTimeout.

// timedListener wraps accepted connections in timedConns.
type timedListener struct {
	net.Listener
	session time.Duration
}

func (l *timedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc := &timedConn{Conn: c, end: time.Now().Add(l.session)}
	_ = tc.SetDeadline(time.Time{})
	return tc, nil
}

// timedConn clamps every deadline set on it to the session's end and the
// current message's.
type timedConn struct {
	net.Conn
	mu     sync.Mutex
	end    time.Time // the session's end
	msgEnd time.Time // the current message's end; zero outside one
}

// limit is the earliest hard deadline.
func (c *timedConn) limit() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.msgEnd.IsZero() && c.msgEnd.Before(c.end) {
		return c.msgEnd
	}
	return c.end
}

func clamp(t, limit time.Time) time.Time {
	if t.IsZero() || t.After(limit) {
		return limit
	}
	return t
}

func (c *timedConn) SetDeadline(t time.Time) error {
	return c.Conn.SetDeadline(clamp(t, c.limit()))
}

func (c *timedConn) SetReadDeadline(t time.Time) error {
	return c.Conn.SetReadDeadline(clamp(t, c.limit()))
}

func (c *timedConn) SetWriteDeadline(t time.Time) error {
	return c.Conn.SetWriteDeadline(clamp(t, c.limit()))
}

// startMessage gives the message begun now d to finish; zero d ends the
// message's limit.
func (c *timedConn) startMessage(d time.Duration) {
	c.mu.Lock()
	if !c.msgEnd.IsZero() && !time.Now().Before(c.msgEnd) {
		// The message ran out of time: a timeout error is not sticky, and
		// go-smtp would read the next command with a fresh deadline, so
		// the session ends here.
		c.end = c.msgEnd
	}
	if d == 0 {
		c.msgEnd = time.Time{}
	} else {
		c.msgEnd = time.Now().Add(d)
	}
	c.mu.Unlock()
	_ = c.SetReadDeadline(time.Time{})
}

// timedConnOf finds the timedConn under a session's connection (under TLS
// after STARTTLS); nil when there is none.
func timedConnOf(c net.Conn) *timedConn {
	if t, ok := c.(*tls.Conn); ok {
		c = t.NetConn()
	}
	tc, _ := c.(*timedConn)
	return tc
}
