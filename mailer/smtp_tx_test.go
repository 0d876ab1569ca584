package mailer

import (
	"bufio"
	"context"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// rcptGate is a go-smtp backend that refuses RCPT TO for addresses
// starting with "nobody" and keeps what it accepts.
type rcptGate struct {
	mu   sync.Mutex
	msgs map[string][]byte
}

type rcptGateSession struct {
	g  *rcptGate
	to string
}

func (s *rcptGateSession) Reset()                               {}
func (s *rcptGateSession) Logout() error                        { return nil }
func (s *rcptGateSession) Mail(string, *smtp.MailOptions) error { return nil }
func (s *rcptGateSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	if strings.HasPrefix(to, "nobody") {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "No such user"}
	}
	s.to = to
	return nil
}
func (s *rcptGateSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.g.mu.Lock()
	s.g.msgs[s.to] = b
	s.g.mu.Unlock()
	return nil
}

func startRcptGate(t *testing.T) (*rcptGate, string) {
	g := &rcptGate{msgs: map[string][]byte{}}
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &rcptGateSession{g: g}, nil }))
	srv.Domain = "gate.test"
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return g, l.Addr().String()
}

// TestPipelinedTransactions runs transactions over one pipelined
// connection to a real go-smtp server, with CHUNKING (BDAT, as go-smtp
// offers) and without (DATA, dot-stuffed): the message arrives exactly as
// sent, dots at line starts included; a refused recipient comes back as
// its reply and leaves the connection usable for the next message.
func TestPipelinedTransactions(t *testing.T) {
	for _, mode := range []string{"BDAT", "DATA"} {
		t.Run(mode, func(t *testing.T) {
			g, addr := startRcptGate(t)
			ctx := context.Background()
			c, err := NewDirect(DirectOptions{MXOverride: addr, HELO: "out.test"}).Dial(ctx, Route{Domain: "example.com"})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			x := c.(*smtpConn).c
			if !x.Pipelining() || !x.Chunking() {
				t.Fatalf("go-smtp offers PIPELINING and CHUNKING; the connection uses pipelining %v, chunking %v", x.Pipelining(), x.Chunking())
			}
			x.SetPipelining(true, mode == "BDAT")
			body := "Subject: dots\r\n\r\n.starts with a dot\r\nmiddle\r\n.\r\n..two\r\nlast line without end"
			r, err := c.Send(ctx, &Envelope{From: "b@sender.test", To: "reader@example.com", Signature: []byte("X-Sig: 1\r\n"), Message: []byte(body)})
			if err != nil || r.Code != 250 {
				t.Fatalf("Send() = %+v, %v; want 250", r, err)
			}
			r, err = c.Send(ctx, &Envelope{From: "b@sender.test", To: "nobody@example.com", Message: []byte("Subject: x\r\n\r\nhi\r\n")})
			if err != nil || r.Code != 550 || r.Enhanced != "5.1.1" || r.Text != "No such user" {
				t.Fatalf("Send(nobody) = %+v, %v; want 550 5.1.1 No such user", r, err)
			}
			r, err = c.Send(ctx, &Envelope{From: "b@sender.test", To: "second@example.com", Message: []byte("Subject: y\r\n\r\nagain\r\n")})
			if err != nil || r.Code != 250 {
				t.Fatalf("Send() after a refusal = %+v, %v; want 250", r, err)
			}
			g.mu.Lock()
			defer g.mu.Unlock()
			if got, want := string(g.msgs["reader@example.com"]), "X-Sig: 1\r\n"+body+"\r\n"; got != want {
				t.Errorf("received %q\nwant     %q", got, want)
			}
			if got, want := string(g.msgs["second@example.com"]), "Subject: y\r\n\r\nagain\r\n"; got != want || len(g.msgs) != 2 {
				t.Errorf("received %d messages, second@ %q; want 2, %q", len(g.msgs), got, want)
			}
		})
	}
}

// scriptedServer is an SMTP peer that answers line by line from a
// function and records the command lines it read, each with how many bytes
// were already waiting behind it (a client that waits for each reply never
// has any).
type scriptedServer struct {
	mu    sync.Mutex
	lines []string
	ahead []int
}

func startScripted(t *testing.T, ehlo string, answer func(cmd string) string) (*scriptedServer, string) {
	s := &scriptedServer{}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				io.WriteString(c, "220 scripted.test ESMTP\r\n")
				inData := false
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if inData {
						if line == ".\r\n" {
							inData = false
							io.WriteString(c, answer("."))
						}
						continue
					}
					cmd := strings.TrimRight(line, "\r\n")
					s.mu.Lock()
					s.lines, s.ahead = append(s.lines, cmd), append(s.ahead, r.Buffered())
					s.mu.Unlock()
					switch {
					case strings.HasPrefix(cmd, "EHLO"):
						io.WriteString(c, ehlo)
					case cmd == "QUIT":
						io.WriteString(c, "221 bye\r\n")
						return
					default:
						a, hangUp := strings.CutSuffix(answer(cmd), closeAfter)
						inData = strings.HasPrefix(a, "354")
						io.WriteString(c, a)
						if hangUp {
							return
						}
					}
				}
			}()
		}
	}()
	return s, l.Addr().String()
}

// closeAfter, at the end of a scripted answer, makes the server hang up
// once it has written the answer.
const closeAfter = "\x00close"

func (s *scriptedServer) commands() ([]string, []int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.lines...), append([]int(nil), s.ahead...)
}

// TestLockStepWithoutPipelining: a server that does not offer PIPELINING
// gets one command at a time, and nothing after a refused RCPT.
func TestLockStepWithoutPipelining(t *testing.T) {
	srv, addr := startScripted(t, "250-scripted.test\r\n250 8BITMIME\r\n", func(cmd string) string {
		switch {
		case strings.HasPrefix(cmd, "RCPT TO:<nobody"):
			return "550-5.1.1 No such user\r\n550 5.1.1 try another address\r\n"
		case cmd == "DATA":
			return "354 go ahead\r\n"
		case cmd == ".":
			return "250 2.0.0 queued as 42\r\n"
		}
		return "250 2.0.0 ok\r\n"
	})
	ctx := context.Background()
	c, err := NewDirect(DirectOptions{MXOverride: addr, HELO: "out.test"}).Dial(ctx, Route{Domain: "example.com"})
	if err != nil {
		t.Fatal(err)
	}
	r, err := c.Send(ctx, &Envelope{From: "b@sender.test", To: "nobody@example.com", Message: []byte("Subject: x\r\n\r\nhi\r\n")})
	if err != nil || r.Code != 550 || r.Enhanced != "5.1.1" || r.Text != "No such user\ntry another address" {
		t.Fatalf("Send(nobody) = %+v, %v; want 550 5.1.1 with both lines", r, err)
	}
	r, err = c.Send(ctx, &Envelope{From: "b@sender.test", To: "reader@example.com", Message: []byte("Subject: x\r\n\r\nhi\r\n")})
	if err != nil || r.Code != 250 || r.Enhanced != "2.0.0" || r.Text != "queued as 42" {
		t.Fatalf("Send() = %+v, %v; want 250 2.0.0 queued as 42", r, err)
	}
	c.Close()
	cmds, ahead := srv.commands()
	// One EHLO: no STARTTLS is offered, so nothing is said twice.
	want := []string{"EHLO out.test", "MAIL FROM:<b@sender.test>", "RCPT TO:<nobody@example.com>",
		"RSET", "MAIL FROM:<b@sender.test>", "RCPT TO:<reader@example.com>", "DATA", "QUIT"}
	if strings.Join(cmds, "|") != strings.Join(want, "|") {
		t.Fatalf("server read %q\nwant %q", cmds, want)
	}
	for i, n := range ahead {
		if n != 0 {
			t.Errorf("%q arrived with %d bytes behind it; a server without PIPELINING must get one command at a time", cmds[i], n)
		}
	}
}

// TestDataAcceptedAfterRefusedRecipient: a pipelining server that accepts
// DATA although it refused the only recipient gets an empty message
// (RFC 2920 3.1), and the recipient's refusal is the reply.
func TestDataAcceptedAfterRefusedRecipient(t *testing.T) {
	srv, addr := startScripted(t, "250-scripted.test\r\n250 PIPELINING\r\n", func(cmd string) string {
		switch {
		case strings.HasPrefix(cmd, "RCPT"):
			return "550 5.1.1 no such user\r\n"
		case cmd == "DATA":
			return "354 go ahead\r\n"
		case cmd == ".":
			return "554 5.5.1 no valid recipients\r\n"
		}
		return "250 ok\r\n"
	})
	ctx := context.Background()
	c, err := NewDirect(DirectOptions{MXOverride: addr, HELO: "out.test"}).Dial(ctx, Route{Domain: "example.com"})
	if err != nil {
		t.Fatal(err)
	}
	r, err := c.Send(ctx, &Envelope{From: "b@sender.test", To: "nobody@example.com", Message: []byte("Subject: x\r\n\r\nsecret body\r\n")})
	if err != nil || r.Code != 550 {
		t.Fatalf("Send() = %+v, %v; want the RCPT refusal", r, err)
	}
	if stale(c) {
		t.Fatal("a connection still open is reported stale")
	}
	// The replies are still in step with the commands: the next
	// transaction gets its own answers.
	r, err = c.Send(ctx, &Envelope{From: "b@sender.test", To: "nobody2@example.com", Message: []byte("Subject: x\r\n\r\nhi\r\n")})
	if err != nil || r.Code != 550 {
		t.Fatalf("second Send() = %+v, %v; want 550 again (replies out of step?)", r, err)
	}
	c.Close()
	cmds, ahead := srv.commands()
	mail := 0
	for mail < len(cmds) && !strings.HasPrefix(cmds[mail], "MAIL") {
		mail++
	}
	if mail == len(cmds) || ahead[mail] == 0 {
		t.Errorf("MAIL arrived alone; with PIPELINING, MAIL, RCPT and DATA go in one write")
	}
	for _, c := range cmds {
		if strings.Contains(c, "secret") {
			t.Fatalf("the message body reached a server that refused its recipient: %q", cmds)
		}
	}
}

// TestStaleAfterRefusalAtEndOfData: a server that refuses a message at
// its end of data and hangs up leaves a connection the worker sees as
// stale, so the next message goes out on a new one (with CHUNKING or
// without) instead of failing on this one.
func TestStaleAfterRefusalAtEndOfData(t *testing.T) {
	for _, ehlo := range []string{"250-scripted.test\r\n250 PIPELINING\r\n", "250-scripted.test\r\n250-PIPELINING\r\n250 CHUNKING\r\n"} {
		_, addr := startScripted(t, ehlo, func(cmd string) string {
			switch {
			case cmd == "DATA":
				return "354 go ahead\r\n"
			case cmd == "." || strings.HasPrefix(cmd, "BDAT"):
				return "554 5.7.1 rejected as spam\r\n" + closeAfter
			}
			return "250 ok\r\n"
		})
		ctx := context.Background()
		c, err := NewDirect(DirectOptions{MXOverride: addr, HELO: "out.test"}).Dial(ctx, Route{Domain: "example.com"})
		if err != nil {
			t.Fatal(err)
		}
		r, _ := c.Send(ctx, &Envelope{From: "b@sender.test", To: "reader@example.com", Message: []byte("Subject: x\r\n\r\nhi\r\n")})
		if r.Code != 554 {
			t.Fatalf("%q: Send() = %+v; want the 554", ehlo, r)
		}
		gone := stale(c)
		for end := time.Now().Add(2 * time.Second); !gone && time.Now().Before(end); gone = stale(c) {
			time.Sleep(5 * time.Millisecond) // the hang-up may still be on its way
		}
		if !gone {
			t.Errorf("%q: a connection the server closed after refusing at the end of data is not reported stale", ehlo)
		}
		c.Close()
	}
}

// TestRepliesThatEndTheConnection: an answer the server gives before it
// hangs up still decides the message (and the connection is reported
// done); a reply that breaks the protocol or never ends leaves the
// message's fate unknown instead of counting as sent.
func TestRepliesThatEndTheConnection(t *testing.T) {
	big := []byte("Subject: big\r\n\r\n" + strings.Repeat(strings.Repeat("x", 998)+"\r\n", 4000))
	for _, c := range []struct {
		name, ehlo string
		answer     func(cmd string) string
		msg        []byte
		code       int  // 0: fate unknown
		later      bool // the hang-up shows only on the next message, which must not be sent
	}{
		{"421 to MAIL, then hang up", "250-s.test\r\n250 PIPELINING\r\n", func(cmd string) string {
			if strings.HasPrefix(cmd, "MAIL") {
				return "421 4.7.0 too many connections, closing" + closeAfter
			}
			return "250 ok\r\n"
		}, nil, 421, false},
		{"421 to MAIL with CHUNKING, body unread", "250-s.test\r\n250-PIPELINING\r\n250 CHUNKING\r\n", func(cmd string) string {
			if strings.HasPrefix(cmd, "MAIL") {
				return "421 4.7.0 try later" + closeAfter
			}
			return "250 ok\r\n"
		}, big, 421, false},
		{"550 to MAIL, then hang up (lock step)", "250 s.test\r\n", func(cmd string) string {
			if strings.HasPrefix(cmd, "MAIL") {
				return "550 5.7.1 your IP is listed" + closeAfter
			}
			return "250 ok\r\n"
		}, nil, 550, true},
		{"550 to RCPT, 421 to DATA", "250-s.test\r\n250 PIPELINING\r\n", func(cmd string) string {
			switch {
			case strings.HasPrefix(cmd, "RCPT"):
				return "550 5.1.1 no such user\r\n"
			case cmd == "DATA":
				return "421 4.3.2 shutting down\r\n"
			}
			return "250 ok\r\n"
		}, nil, 550, false},
		{"250 to DATA", "250-s.test\r\n250 PIPELINING\r\n", func(cmd string) string { return "250 ok\r\n" }, nil, 0, false},
		{"endless reply line", "250-s.test\r\n250 PIPELINING\r\n", func(cmd string) string {
			if strings.HasPrefix(cmd, "MAIL") {
				return "250 " + strings.Repeat("a", 5000) + "\r\n"
			}
			return "250 ok\r\n"
		}, nil, 0, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, addr := startScripted(t, c.ehlo, c.answer)
			ctx := context.Background()
			conn, err := NewDirect(DirectOptions{MXOverride: addr, HELO: "out.test", Timeouts: Timeouts{Command: 5 * time.Second, DataEnd: 5 * time.Second}}).
				Dial(ctx, Route{Domain: "example.com"})
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			msg := c.msg
			if msg == nil {
				msg = []byte("Subject: x\r\n\r\nhi\r\n")
			}
			r, err := conn.Send(ctx, &Envelope{From: "b@sender.test", To: "someone@example.com", Message: msg})
			if r.Code != c.code {
				t.Fatalf("Send() = %d %q (%v); want code %d", r.Code, r.Text, err, c.code)
			}
			if c.later {
				time.Sleep(50 * time.Millisecond) // let the hang-up arrive
				if !stale(conn) {
					t.Fatal("the connection the server closed after its refusal is not reported stale; the next message would fail on it")
				}
				return
			}
			if err == nil {
				t.Fatalf("Send() = %+v with no error; the connection is done and must be reported so", r)
			}
		})
	}
}
