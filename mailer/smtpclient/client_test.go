package smtpclient

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// exchange is one step of a script: the command line the server expects
// (a trailing "*" matches any rest; "" is the greeting, expected before
// anything is read) and what it does.
type exchange struct {
	cmd    string
	reply  string // written after the command ("" writes nothing)
	data   string // for DATA's "." and BDAT: the message expected (before dot-unstuffing; "" accepts any)
	stall  bool   // answer nothing and wait for the client to hang up
	hangUp bool   // close after the reply
	tls    bool   // after the reply, the TLS handshake (STARTTLS)
}

// scripted is an SMTP peer that plays a script and records what happened:
// the commands it read, with how many bytes waited behind each (a client
// that waits for every reply leaves none), and every departure from the
// script.
type scripted struct {
	Addr string
	done chan struct{}

	mu     sync.Mutex
	cmds   []string
	ahead  []int
	errs   []string
	finish bool // the script ran to its end
}

var testCert = sync.OnceValue(func() tls.Certificate {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "scripted.test"},
		DNSNames: []string{"scripted.test"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, _ := x509.CreateCertificate(rand.Reader, tpl, tpl, &key.PublicKey, key)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
})

func play(t *testing.T, script []exchange) *scripted {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &scripted{Addr: l.Addr().String(), done: make(chan struct{})}
	t.Cleanup(func() { l.Close() })
	go func() {
		defer close(s.done)
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(time.Minute))
		s.run(c, script)
	}()
	return s
}

func (s *scripted) fail(format string, args ...any) {
	s.mu.Lock()
	s.errs = append(s.errs, fmt.Sprintf(format, args...))
	s.mu.Unlock()
}

func (s *scripted) run(c net.Conn, script []exchange) {
	r := bufio.NewReader(c)
	for i, e := range script {
		if e.cmd != "" {
			line, err := r.ReadString('\n')
			if err != nil {
				s.fail("step %d: wanted %q, read error %v", i, e.cmd, err)
				return
			}
			cmd := strings.TrimSuffix(line, "\r\n")
			s.mu.Lock()
			s.cmds, s.ahead = append(s.cmds, cmd), append(s.ahead, r.Buffered())
			s.mu.Unlock()
			if p, ok := strings.CutSuffix(e.cmd, "*"); (ok && !strings.HasPrefix(cmd, p)) || (!ok && cmd != e.cmd) {
				s.fail("step %d: read %q, want %q", i, cmd, e.cmd)
				return
			}
			var msg []byte
			switch {
			case cmd == ".":
				// the data was read by the DATA step
			case strings.HasPrefix(cmd, "BDAT "):
				f := strings.Fields(cmd)
				n, _ := strconv.Atoi(f[1])
				msg = make([]byte, n)
				if _, err := io.ReadFull(r, msg); err != nil {
					s.fail("step %d: BDAT payload: %v", i, err)
					return
				}
			}
			if e.data != "" && string(msg) != e.data {
				s.fail("step %d: message %q, want %q", i, msg, e.data)
			}
		}
		if e.stall {
			io.Copy(io.Discard, r) // until the client hangs up
			break
		}
		io.WriteString(c, e.reply)
		if strings.HasPrefix(e.reply, "354") {
			var msg strings.Builder
			for {
				line, err := r.ReadString('\n')
				if err != nil {
					s.fail("step %d: data: %v", i, err)
					return
				}
				if line == ".\r\n" {
					break
				}
				msg.WriteString(line)
			}
			if i+1 < len(script) && script[i+1].data != "" && msg.String() != script[i+1].data {
				s.fail("step %d: message %q, want %q", i, msg.String(), script[i+1].data)
			}
			// The next step is the "." itself.
			s.mu.Lock()
			s.cmds, s.ahead = append(s.cmds, "."), append(s.ahead, r.Buffered())
			s.mu.Unlock()
			if i+1 < len(script) {
				script[i+1].cmd = ""
			}
		}
		if e.hangUp {
			break
		}
		if e.tls {
			tc := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{testCert()}})
			if err := tc.Handshake(); err != nil {
				s.fail("step %d: TLS handshake: %v", i, err)
				return
			}
			c, r = tc, bufio.NewReader(tc)
		}
	}
	s.mu.Lock()
	s.finish = true
	s.mu.Unlock()
}

// check waits for the server to finish and reports departures from the
// script.
func (s *scripted) check(t *testing.T) {
	t.Helper()
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		t.Fatal("the scripted server did not finish")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range s.errs {
		t.Error("server: " + e)
	}
	if !s.finish && len(s.errs) == 0 {
		t.Errorf("the script was not played to its end; commands read: %q", s.cmds)
	}
}

func (s *scripted) read() ([]string, []int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.cmds...), append([]int(nil), s.ahead...)
}

const (
	greet      = "220 scripted.test ESMTP\r\n"
	ehloPipe   = "250-scripted.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n"
	ehloChunk  = "250-scripted.test\r\n250-PIPELINING\r\n250 CHUNKING\r\n"
	ehloLock   = "250-scripted.test\r\n250 8BITMIME\r\n"
	ehloTLS    = "250-scripted.test\r\n250-PIPELINING\r\n250 STARTTLS\r\n"
	ehloAuth   = "250-scripted.test\r\n250-PIPELINING\r\n250 AUTH PLAIN LOGIN\r\n"
	ehloLogin  = "250-scripted.test\r\n250 AUTH LOGIN\r\n"
	msgHeader  = "Subject: hi\r\n\r\n"
	msgBody    = ".dot\r\nline\r\n"
	msgStuffed = "Subject: hi\r\n\r\n..dot\r\nline\r\n"
)

var testTimeouts = Timeouts{Greeting: 5 * time.Second, Command: 5 * time.Second, Mail: 5 * time.Second, Rcpt: 5 * time.Second,
	DataInit: 5 * time.Second, DataBlock: 5 * time.Second, DataEnd: 5 * time.Second}

func open(t *testing.T, addr string, tm Timeouts) *Client {
	t.Helper()
	c, err := Dial(context.Background(), addr, Options{Timeouts: tm})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestTransactions plays scripts of whole sessions: each case says what
// the server offers and answers, and what the client must send and make
// of it, message by message.
func TestTransactions(t *testing.T) {
	type msg struct {
		to       string
		code     int    // the reply that decides the message; 0: fate unknown
		enhanced string // of that reply
		broken   bool   // Send returns an error (the connection is done)
	}
	for _, c := range []struct {
		name      string
		ehlo      string
		script    []exchange
		msgs      []msg
		pipelined bool // MAIL arrives with RCPT behind it
		stale     bool // Stale after the last message
	}{
		{"pipelined DATA", ehloPipe, []exchange{
			{cmd: "MAIL FROM:<b@s.test>", reply: "250 2.1.0 ok\r\n"}, {cmd: "RCPT TO:<r@x.test>", reply: "250 2.1.5 ok\r\n"},
			{cmd: "DATA", reply: "354 go ahead\r\n"}, {cmd: ".", data: msgStuffed, reply: "250 2.0.0 queued as 7\r\n"},
			{cmd: "QUIT", reply: "221 bye\r\n"},
		}, []msg{{"r@x.test", 250, "2.0.0", false}}, true, false},
		{"SMTPUTF8", ehloPipe, []exchange{
			{cmd: "MAIL FROM:<b@s.test> SMTPUTF8", reply: "250 ok\r\n"}, {cmd: "RCPT TO:<rü@x.test>", reply: "250 ok\r\n"},
			{cmd: "DATA", reply: "354 go ahead\r\n"}, {cmd: ".", reply: "250 queued\r\n"},
			{cmd: "QUIT", reply: "221 bye\r\n"},
		}, []msg{{"rü@x.test", 250, "", false}}, true, false},
		{"lock step without PIPELINING", ehloLock, []exchange{
			{cmd: "MAIL FROM:<b@s.test>", reply: "250 ok\r\n"}, {cmd: "RCPT TO:<r@x.test>", reply: "250 ok\r\n"},
			{cmd: "DATA", reply: "354 go ahead\r\n"}, {cmd: ".", data: msgStuffed, reply: "250 queued\r\n"},
			{cmd: "QUIT", reply: "221 bye\r\n"},
		}, []msg{{"r@x.test", 250, "", false}}, false, false},
		{"CHUNKING", ehloChunk, []exchange{
			{cmd: "MAIL FROM:<b@s.test>", reply: "250 ok\r\n"}, {cmd: "RCPT TO:<r@x.test>", reply: "250 ok\r\n"},
			{cmd: "BDAT 27 LAST", data: msgHeader + msgBody, reply: "250 2.0.0 got it\r\n"},
			{cmd: "QUIT", reply: "221 bye\r\n"},
		}, []msg{{"r@x.test", 250, "2.0.0", false}}, true, false},
		{"refused MAIL, then RSET", ehloPipe, []exchange{
			{cmd: "MAIL FROM:<b@s.test>", reply: "550 5.7.1 sender blocked\r\n"}, {cmd: "RCPT TO:<r@x.test>", reply: "503 5.5.1 MAIL first\r\n"},
			{cmd: "DATA", reply: "503 5.5.1 no recipients\r\n"},
			{cmd: "RSET", reply: "250 ok\r\n"}, {cmd: "MAIL FROM:<b@s.test>", reply: "250 ok\r\n"}, {cmd: "RCPT TO:<r2@x.test>", reply: "250 ok\r\n"},
			{cmd: "DATA", reply: "354 go\r\n"}, {cmd: ".", reply: "250 ok\r\n"},
			{cmd: "QUIT", reply: "221 bye\r\n"},
		}, []msg{{"r@x.test", 550, "5.7.1", false}, {"r2@x.test", 250, "", false}}, true, false},
		{"refused RCPT with CHUNKING: the BDAT refusal is not the reply", ehloChunk, []exchange{
			{cmd: "MAIL FROM:<b@s.test>", reply: "250 ok\r\n"}, {cmd: "RCPT TO:<nobody@x.test>", reply: "550-5.1.1 no such user\r\n550 5.1.1 see docs\r\n"},
			{cmd: "BDAT 27 LAST", reply: "554 5.5.1 no valid recipients\r\n"},
			{cmd: "QUIT", reply: "221 bye\r\n"},
		}, []msg{{"nobody@x.test", 550, "5.1.1", false}}, true, false},
		{"refused DATA", ehloPipe, []exchange{
			{cmd: "MAIL FROM:<b@s.test>", reply: "250 ok\r\n"}, {cmd: "RCPT TO:<r@x.test>", reply: "250 ok\r\n"},
			{cmd: "DATA", reply: "451 4.3.0 try later\r\n"},
			{cmd: "QUIT", reply: "221 bye\r\n"},
		}, []msg{{"r@x.test", 451, "4.3.0", false}}, true, false},
		{"refused at the end of data", ehloPipe, []exchange{
			{cmd: "MAIL FROM:<b@s.test>", reply: "250 ok\r\n"}, {cmd: "RCPT TO:<r@x.test>", reply: "250 ok\r\n"},
			{cmd: "DATA", reply: "354 go\r\n"}, {cmd: ".", reply: "554 5.7.1 spam\r\n"},
			{cmd: "QUIT", reply: "221 bye\r\n"},
		}, []msg{{"r@x.test", 554, "5.7.1", false}}, true, false},
		{"refused RCPT, DATA accepted: empty message", ehloPipe, []exchange{
			{cmd: "MAIL FROM:<b@s.test>", reply: "250 ok\r\n"}, {cmd: "RCPT TO:<r@x.test>", reply: "550 5.1.1 unknown\r\n"},
			{cmd: "DATA", reply: "354 go\r\n"}, {cmd: ".", data: "", reply: "554 no recipients\r\n"},
			{cmd: "QUIT", reply: "221 bye\r\n"},
		}, []msg{{"r@x.test", 550, "5.1.1", false}}, true, false},
		{"hang-up after a refusal", ehloPipe, []exchange{
			{cmd: "MAIL FROM:<b@s.test>", reply: "250 ok\r\n"}, {cmd: "RCPT TO:<r@x.test>", reply: "250 ok\r\n"},
			{cmd: "DATA", reply: "354 go\r\n"}, {cmd: ".", reply: "554 5.7.1 go away\r\n", hangUp: true},
		}, []msg{{"r@x.test", 554, "5.7.1", false}}, true, true},
		{"421 to MAIL", ehloPipe, []exchange{
			{cmd: "MAIL FROM:<b@s.test>", reply: "421 4.7.0 closing\r\n", hangUp: true},
		}, []msg{{"r@x.test", 421, "4.7.0", true}}, true, false},
		{"no reply at all to the end of data", ehloChunk, []exchange{
			{cmd: "MAIL FROM:<b@s.test>", reply: "250 ok\r\n"}, {cmd: "RCPT TO:<r@x.test>", reply: "250 ok\r\n"},
			{cmd: "BDAT 27 LAST", hangUp: true},
		}, []msg{{"r@x.test", 0, "", true}}, true, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			script := append([]exchange{{reply: greet}, {cmd: "EHLO out.test", reply: c.ehlo}}, c.script...)
			srv := play(t, script)
			cl := open(t, srv.Addr, testTimeouts)
			if err := cl.Greeting(); err != nil {
				t.Fatal(err)
			}
			if err := cl.Hello("out.test"); err != nil {
				t.Fatal(err)
			}
			for i, m := range c.msgs {
				r, err := cl.SendWith(MailOptions{SMTPUTF8: strings.Contains(m.to, "ü")}, "b@s.test", m.to, []byte(msgHeader), []byte(msgBody))
				if r.Code != m.code || r.Enhanced != m.enhanced || (err != nil) != m.broken {
					t.Fatalf("message %d: Send() = %+v, %v; want %d %s, error %v", i, r, err, m.code, m.enhanced, m.broken)
				}
			}
			if c.stale {
				gone := cl.Stale()
				for end := time.Now().Add(5 * time.Second); !gone && time.Now().Before(end); gone = cl.Stale() {
					time.Sleep(5 * time.Millisecond)
				}
				if !gone {
					t.Error("Stale() = false after the server hung up")
				}
			} else if !c.msgs[len(c.msgs)-1].broken {
				if cl.Stale() {
					t.Error("Stale() = true on a connection in step")
				}
				cl.Quit()
			}
			cl.Close()
			srv.check(t)
			cmds, ahead := srv.read()
			for i, cmd := range cmds {
				if strings.HasPrefix(cmd, "MAIL") {
					if got := ahead[i] > 0; got != c.pipelined {
						t.Errorf("MAIL arrived with %d bytes behind it; want pipelined %v", ahead[i], c.pipelined)
					}
				}
				if !c.pipelined && ahead[i] != 0 {
					t.Errorf("%q arrived with %d bytes behind it; a server without PIPELINING gets one command at a time", cmd, ahead[i])
				}
			}
		})
	}
}

// TestGreetingRefused: a 421 or 554 greeting is an *Error with the reply.
func TestGreetingRefused(t *testing.T) {
	for _, code := range []int{421, 554} {
		srv := play(t, []exchange{{reply: fmt.Sprintf("%d 4.7.0 too busy\r\n", code), hangUp: true}})
		cl := open(t, srv.Addr, testTimeouts)
		err := cl.Greeting()
		var e *Error
		if !errors.As(err, &e) || e.Stage != "greeting" || e.Reply.Code != code {
			t.Errorf("Greeting() = %v; want a greeting *Error with %d", err, code)
		}
		srv.check(t)
	}
}

// TestSessionOpening: EHLO refused falls back to HELO; a refused EHLO of
// another kind is an error; STARTTLS upgrades and says EHLO again over
// TLS (the extensions are learned anew); AUTH uses PLAIN, or LOGIN when
// only that is offered, and never goes out without TLS.
func TestSessionOpening(t *testing.T) {
	t.Run("HELO fallback", func(t *testing.T) {
		srv := play(t, []exchange{{reply: greet}, {cmd: "EHLO out.test", reply: "502 5.5.2 what?\r\n"}, {cmd: "HELO out.test", reply: "250 hi\r\n"},
			{cmd: "MAIL FROM:<b@s.test>", reply: "250 ok\r\n"}, {cmd: "RCPT TO:<r@x.test>", reply: "250 ok\r\n"},
			{cmd: "DATA", reply: "354 go\r\n"}, {cmd: ".", reply: "250 ok\r\n"}})
		cl := open(t, srv.Addr, testTimeouts)
		if err := cl.Greeting(); err != nil {
			t.Fatal(err)
		}
		if err := cl.Hello("out.test"); err != nil {
			t.Fatalf("Hello() = %v", err)
		}
		if cl.Ext("PIPELINING") {
			t.Error("extensions after HELO")
		}
		if r, err := cl.Send("b@s.test", "r@x.test", []byte(msgHeader), []byte(msgBody)); err != nil || r.Code != 250 {
			t.Errorf("Send() = %+v, %v", r, err)
		}
		cl.Close()
		srv.check(t)
	})
	t.Run("EHLO refused", func(t *testing.T) {
		srv := play(t, []exchange{{reply: greet}, {cmd: "EHLO out.test", reply: "554 5.7.1 no thanks\r\n", hangUp: true}})
		cl := open(t, srv.Addr, testTimeouts)
		cl.Greeting()
		var e *Error
		if err := cl.Hello("out.test"); !errors.As(err, &e) || e.Stage != "EHLO" || e.Reply.Code != 554 {
			t.Errorf("Hello() = %v; want an EHLO *Error with 554", err)
		}
		srv.check(t)
	})
	for _, c := range []struct {
		name, ehlo string
		auth       []exchange
	}{
		{"STARTTLS and AUTH PLAIN", ehloAuth, []exchange{{cmd: "AUTH PLAIN AHUAcHc=", reply: "235 2.7.0 ok\r\n"}}},
		{"STARTTLS and AUTH LOGIN", ehloLogin, []exchange{{cmd: "AUTH LOGIN", reply: "334 VXNlcm5hbWU6\r\n"},
			{cmd: "dQ==", reply: "334 UGFzc3dvcmQ6\r\n"}, {cmd: "cHc=", reply: "235 ok\r\n"}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			script := []exchange{{reply: greet}, {cmd: "EHLO out.test", reply: ehloTLS}, {cmd: "STARTTLS", reply: "220 go ahead\r\n", tls: true},
				{cmd: "EHLO out.test", reply: c.ehlo}}
			script = append(script, c.auth...)
			script = append(script, exchange{cmd: "MAIL FROM:<b@s.test>", reply: "250 ok\r\n"}, exchange{cmd: "RCPT TO:<r@x.test>", reply: "250 ok\r\n"},
				exchange{cmd: "DATA", reply: "354 go\r\n"}, exchange{cmd: ".", data: msgStuffed, reply: "250 ok\r\n"}, exchange{cmd: "QUIT", reply: "221 bye\r\n"})
			srv := play(t, script)
			cl := open(t, srv.Addr, testTimeouts)
			if err := cl.Greeting(); err != nil {
				t.Fatal(err)
			}
			if err := cl.Hello("out.test"); err != nil {
				t.Fatal(err)
			}
			if err := cl.Auth("u", "pw"); err == nil {
				t.Fatal("Auth() without TLS succeeded; the password must not go out in plain text")
			}
			if !cl.Ext("starttls") {
				t.Fatal("STARTTLS not seen in the EHLO reply")
			}
			if err := cl.StartTLS(&tls.Config{InsecureSkipVerify: true}); err != nil {
				t.Fatalf("StartTLS() = %v", err)
			}
			if st, ok := cl.TLS(); !ok || st.Version < tls.VersionTLS12 {
				t.Fatalf("TLS() = %v, %v after STARTTLS", st.Version, ok)
			}
			if cl.Ext("STARTTLS") || !cl.Ext("AUTH") {
				t.Error("the extensions were not learned anew after STARTTLS")
			}
			if err := cl.Auth("u", "pw"); err != nil {
				t.Fatalf("Auth() = %v", err)
			}
			if r, err := cl.Send("b@s.test", "r@x.test", []byte(msgHeader), []byte(msgBody)); err != nil || r.Code != 250 {
				t.Fatalf("Send() = %+v, %v", r, err)
			}
			cl.Quit()
			cl.Close()
			srv.check(t)
		})
	}
	t.Run("handshake failure", func(t *testing.T) {
		srv := play(t, []exchange{{reply: greet}, {cmd: "EHLO out.test", reply: ehloTLS}, {cmd: "STARTTLS", reply: "220 go ahead\r\n", hangUp: true}})
		cl := open(t, srv.Addr, testTimeouts)
		cl.Greeting()
		cl.Hello("out.test")
		if err := cl.StartTLS(&tls.Config{InsecureSkipVerify: true}); !errors.Is(err, ErrHandshake) {
			t.Errorf("StartTLS() = %v; want ErrHandshake", err)
		}
		srv.check(t)
	})
}

func TestParseReply(t *testing.T) {
	for _, c := range []struct {
		code               int
		text               string
		enhanced, wantText string
	}{
		{250, "2.0.0 Ok: queued as 1", "2.0.0", "Ok: queued as 1"},
		{550, "5.7.1 [1.2.3.4] blocked\n5.7.1 see https://x.test", "5.7.1", "[1.2.3.4] blocked\nsee https://x.test"},
		{421, "mx.test closing", "", "mx.test closing"},
		{250, "2.0 is not a code", "", "2.0 is not a code"},
		{451, "4.7.650 The mail server has been temporarily rate limited", "4.7.650", "The mail server has been temporarily rate limited"},
	} {
		got := ParseReply(c.code, c.text)
		if got.Enhanced != c.enhanced || got.Text != c.wantText || got.Code != c.code {
			t.Errorf("ParseReply(%q) = %q %q; want %q %q", c.text, got.Enhanced, got.Text, c.enhanced, c.wantText)
		}
	}
}

func TestIsEnhancedCode(t *testing.T) {
	for s, want := range map[string]bool{"2.0.0": true, "5.1.1": true, "4.7.28": true, "5.100.999": true, "3.0.0": false, "5.1": false,
		"5.1.1.1": false, "5..1": false, "5.1.": false, "5.1000.1": false, "5.a.1": false, "5-1-1": false, "": false} {
		if got := IsEnhancedCode(s); got != want {
			t.Errorf("IsEnhancedCode(%q) = %v, want %v", s, got, want)
		}
	}
}

// TestReplyNamesItsCommand: the reply that decides a message says which
// command it answered, the stage the bounce classifier weighs it by (a 550
// to RCPT is about the recipient, one to MAIL about the sender).
func TestReplyNamesItsCommand(t *testing.T) {
	for _, c := range []struct {
		name, ehlo string
		script     []exchange
		want       string
	}{
		{"refused MAIL", ehloPipe, []exchange{
			{cmd: "MAIL FROM:<b@s.test>", reply: "550 5.7.1 sender blocked\r\n"}, {cmd: "RCPT TO:<r@x.test>", reply: "503 5.5.1 MAIL first\r\n"},
			{cmd: "DATA", reply: "503 5.5.1 no recipients\r\n"},
		}, "MAIL"},
		{"refused RCPT, BDAT refused behind it", ehloChunk, []exchange{
			{cmd: "MAIL FROM:<b@s.test>", reply: "250 ok\r\n"}, {cmd: "RCPT TO:<r@x.test>", reply: "550 no such user\r\n"},
			{cmd: "BDAT 27 LAST", reply: "554 5.5.1 no valid recipients\r\n"},
		}, "RCPT"},
		{"refused DATA", ehloPipe, []exchange{
			{cmd: "MAIL FROM:<b@s.test>", reply: "250 ok\r\n"}, {cmd: "RCPT TO:<r@x.test>", reply: "250 ok\r\n"},
			{cmd: "DATA", reply: "554 5.7.1 not from you\r\n"},
		}, "DATA"},
		{"refused at the end of data", ehloLock, []exchange{
			{cmd: "MAIL FROM:<b@s.test>", reply: "250 ok\r\n"}, {cmd: "RCPT TO:<r@x.test>", reply: "250 ok\r\n"},
			{cmd: "DATA", reply: "354 go\r\n"}, {cmd: ".", reply: "550 mailbox unavailable\r\n"},
		}, "end of data"},
		{"accepted with BDAT", ehloChunk, []exchange{
			{cmd: "MAIL FROM:<b@s.test>", reply: "250 ok\r\n"}, {cmd: "RCPT TO:<r@x.test>", reply: "250 ok\r\n"},
			{cmd: "BDAT 27 LAST", reply: "250 2.0.0 got it\r\n"},
		}, "BDAT"},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv := play(t, append([]exchange{{reply: greet}, {cmd: "EHLO out.test", reply: c.ehlo}}, append(c.script,
				exchange{cmd: "QUIT", reply: "221 bye\r\n"})...))
			cl := open(t, srv.Addr, testTimeouts)
			if err := cl.Greeting(); err != nil {
				t.Fatal(err)
			}
			if err := cl.Hello("out.test"); err != nil {
				t.Fatal(err)
			}
			r, err := cl.Send("b@s.test", "r@x.test", []byte(msgHeader), []byte(msgBody))
			if err != nil || r.Command != c.want {
				t.Errorf("Send() = %+v, %v; want the reply to %q", r, err, c.want)
			}
			cl.Quit()
			cl.Close()
			srv.check(t)
		})
	}
	srv := play(t, []exchange{{reply: "554 5.7.1 not you\r\n", hangUp: true}})
	cl := open(t, srv.Addr, testTimeouts)
	var e *Error
	if err := cl.Greeting(); !errors.As(err, &e) || e.Reply.Command != "greeting" {
		t.Errorf("Greeting() = %v; want an *Error whose reply answered the greeting", err)
	}
	srv.check(t)
}
