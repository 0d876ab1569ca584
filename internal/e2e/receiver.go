package e2e

import (
	"bufio"
	"crypto/tls"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Message is one message a receiver accepted.
type Message struct {
	From   string
	To     []string
	Data   []byte
	At     time.Time // when the end of data was answered
	Remote string    // the client's address as the receiver saw it
	HELO   string
	TLS    bool // the transaction ran over TLS
}

// Refusal is one refusal a receiver answered.
type Refusal struct {
	Stage string // "rcpt" or "data"
	Rcpt  string
	Code  int
	At    time.Time
}

// ReceiverOptions are a receiver's fault rules; the zero value accepts
// everything.
type ReceiverOptions struct {
	// Rcpt, when set, answers RCPT TO: a non-nil error refuses the recipient.
	Rcpt func(rcpt string) *smtp.SMTPError
	// Data, when set, answers the end of data of the n-th message (from 1)
	// for each recipient: a non-nil error refuses it.
	Data func(rcpt string, n int) *smtp.SMTPError
	// TLS offers STARTTLS with this configuration.
	TLS *tls.Config
	// Domain is the greeting's host name; "" means mx.test.
	Domain string
	// Users, when set, makes the receiver a relay that wants AUTH: it
	// offers AUTH PLAIN, signs in these user → password pairs, answers
	// 535 to others and 530 to MAIL FROM before signing in.
	Users map[string]string
	// Deliver, when set, is handed each accepted message (with only the
	// recipients accepted), as a receiving MTA hands mail to local
	// delivery.
	Deliver func(m Message)
}

// Receiver is a go-smtp server standing in for a provider's MX host.
type Receiver struct {
	// Addr is ip:port.
	Addr string

	o   ReceiverOptions
	srv *smtp.Server

	mu       sync.Mutex
	msgs     []Message
	refusals []Refusal
	conns    int
	n        int
}

// StartReceiver listens on ip:port (ip such as 127.0.0.2; port from
// FreePort, shared by every receiver of a test) until the test ends.
func StartReceiver(t testing.TB, ip string, port int, o ReceiverOptions) *Receiver {
	t.Helper()
	r := &Receiver{o: o}
	s := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &session{r: r, conn: c}, nil
	}))
	s.Domain = firstOf(o.Domain, "mx.test")
	s.AllowInsecureAuth = true
	s.EnableSMTPUTF8, s.EnableBINARYMIME = true, true
	s.ReadTimeout, s.WriteTimeout = 60*time.Second, 60*time.Second
	s.MaxMessageBytes = 20 << 20
	s.MaxRecipients = 1000
	s.TLSConfig = o.TLS
	l, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
	if err != nil {
		t.Fatalf("e2e: receiver listen %s:%d: %v", ip, port, err)
	}
	r.Addr, r.srv = l.Addr().String(), s
	go s.Serve(&countingListener{Listener: l, r: r})
	t.Cleanup(func() { s.Close() })
	return r
}

// Messages returns the accepted messages in order.
func (r *Receiver) Messages() []Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Message(nil), r.msgs...)
}

// Count returns how many messages were accepted.
func (r *Receiver) Count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.msgs)
}

// Refusals returns the refusals answered, in order.
func (r *Receiver) Refusals() []Refusal {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Refusal(nil), r.refusals...)
}

// Connections returns how many connections were accepted.
func (r *Receiver) Connections() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.conns
}

// Contacted reports whether rcpt was offered in any transaction (accepted
// or refused).
func (r *Receiver) Contacted(rcpt string) bool {
	rcpt = strings.ToLower(rcpt)
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, m := range r.msgs {
		for _, to := range m.To {
			if strings.ToLower(to) == rcpt {
				return true
			}
		}
	}
	for _, f := range r.refusals {
		if strings.ToLower(f.Rcpt) == rcpt {
			return true
		}
	}
	return false
}

type countingListener struct {
	net.Listener
	r *Receiver
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.r.mu.Lock()
		l.r.conns++
		l.r.mu.Unlock()
	}
	return c, err
}

type session struct {
	r      *Receiver
	conn   *smtp.Conn
	from   string
	to     []string
	authed bool
}

func (s *session) AuthMechanisms() []string {
	if len(s.r.o.Users) == 0 {
		return nil
	}
	return []string{sasl.Plain}
}

func (s *session) Auth(mech string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(identity, username, password string) error {
		if pw, ok := s.r.o.Users[username]; !ok || pw != password || (identity != "" && identity != username) {
			return &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}, Message: "Authentication credentials invalid"}
		}
		s.authed = true
		return nil
	}), nil
}

func (s *session) Reset()        { s.from, s.to = "", nil }
func (s *session) Logout() error { return nil }

func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	if len(s.r.o.Users) > 0 && !s.authed {
		return &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "Authentication required"}
	}
	s.from = from
	return nil
}

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if f := s.r.o.Rcpt; f != nil {
		if e := f(to); e != nil {
			s.r.refuse("rcpt", to, e)
			return e
		}
	}
	s.to = append(s.to, to)
	return nil
}

func (s *session) Data(rd io.Reader) error {
	data, err := io.ReadAll(rd)
	if err != nil {
		return err
	}
	r := s.r
	r.mu.Lock()
	r.n++
	n := r.n
	r.mu.Unlock()
	var accepted []string
	for _, to := range s.to {
		if f := r.o.Data; f != nil {
			if e := f(to, n); e != nil {
				r.refuse("data", to, e)
				if len(s.to) == 1 {
					return e
				}
				continue
			}
		}
		accepted = append(accepted, to)
	}
	if len(accepted) == 0 {
		return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 0, 0}, Message: "no recipient accepted"}
	}
	_, tlsOn := s.conn.TLSConnectionState()
	r.mu.Lock()
	m := Message{From: s.from, To: accepted, Data: data, At: time.Now(),
		Remote: s.conn.Conn().RemoteAddr().String(), HELO: s.conn.Hostname(), TLS: tlsOn}
	r.msgs = append(r.msgs, m)
	r.mu.Unlock()
	if r.o.Deliver != nil {
		r.o.Deliver(m)
	}
	return nil
}

func (r *Receiver) refuse(stage, rcpt string, e *smtp.SMTPError) {
	r.mu.Lock()
	r.refusals = append(r.refusals, Refusal{Stage: stage, Rcpt: rcpt, Code: e.Code, At: time.Now()})
	r.mu.Unlock()
}

// Refuser answers every connection with one reply at the greeting (e.g.
// "421 4.7.0 Try again later") and hangs up, counting connections.
type Refuser struct {
	Addr string

	mu    sync.Mutex
	conns []time.Time
}

// StartRefuser listens on ip:port until the test ends.
func StartRefuser(t testing.TB, ip string, port int, greeting string) *Refuser {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
	if err != nil {
		t.Fatalf("e2e: refuser listen %s:%d: %v", ip, port, err)
	}
	f := &Refuser{Addr: l.Addr().String()}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			f.mu.Lock()
			f.conns = append(f.conns, time.Now())
			f.mu.Unlock()
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				io.WriteString(c, greeting+"\r\n")
				// Answer QUIT politely if the client sends one.
				if line, err := bufio.NewReader(c).ReadString('\n'); err == nil && strings.HasPrefix(strings.ToUpper(line), "QUIT") {
					io.WriteString(c, "221 2.0.0 Bye\r\n")
				}
			}()
		}
	}()
	return f
}

// Connections returns the times of the connections accepted.
func (f *Refuser) Connections() []time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Time(nil), f.conns...)
}
