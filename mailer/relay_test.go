package mailer_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/herald-mail/herald/internal/testdb"
	"github.com/herald-mail/herald/mailer"
	"github.com/herald-mail/herald/models"
)

// selfSigned makes a certificate for host and 127.0.0.1, and the pool that
// trusts it.
func selfSigned(t testing.TB, host string) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: host},
		DNSNames: []string{host}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA: true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}, pool
}

// fakeRelay is a submission server: STARTTLS offered, AUTH PLAIN only over
// TLS (go-smtp does not offer it in plain text), mail only when signed in.
type fakeRelay struct {
	Addr       string
	Port       int
	Pool       *x509.CertPool
	user, pass string
	dataDelay  time.Duration

	mu     sync.Mutex
	msgs   []relayMsg
	active int // connections open now
	conns  int // TCP connections accepted
	inTx   int // transactions (MAIL to the end of DATA) under way now
	peakTx int // most transactions under way at once
	auths  int // failed AUTH attempts
}

type relayMsg struct {
	From, To, User string
	TLS            bool
	Data           []byte
}

func startRelay(t testing.TB, user, pass string, dataDelay time.Duration) *fakeRelay {
	t.Helper()
	cert, pool := selfSigned(t, "relay.test")
	r := &fakeRelay{Pool: pool, user: user, pass: pass, dataDelay: dataDelay}
	s := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		r.mu.Lock()
		r.active++
		r.mu.Unlock()
		return &relaySession{r: r, conn: c}, nil
	}))
	s.Domain = "relay.test"
	s.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	s.AllowInsecureAuth = false
	s.ReadTimeout, s.WriteTimeout = 30*time.Second, 30*time.Second
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r.Addr = l.Addr().String()
	r.Port = l.Addr().(*net.TCPAddr).Port
	go s.Serve(countConns{l, r})
	t.Cleanup(func() { s.Close() })
	return r
}

// countConns counts the connections a fakeRelay accepts (go-smtp starts a
// new session after STARTTLS, so sessions do not tell).
type countConns struct {
	net.Listener
	r *fakeRelay
}

func (l countConns) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.r.mu.Lock()
		l.r.conns++
		l.r.mu.Unlock()
	}
	return c, err
}

func (r *fakeRelay) messages() []relayMsg {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]relayMsg(nil), r.msgs...)
}

type relaySession struct {
	r        *fakeRelay
	conn     *smtp.Conn
	user     string
	from, to string
}

var _ smtp.AuthSession = (*relaySession)(nil)

func (s *relaySession) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *relaySession) Auth(mech string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(identity, user, pass string) error {
		if user != s.r.user || pass != s.r.pass {
			s.r.mu.Lock()
			s.r.auths++
			s.r.mu.Unlock()
			return &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}, Message: "Authentication credentials invalid"}
		}
		s.user = user
		return nil
	}), nil
}

func (s *relaySession) Mail(from string, _ *smtp.MailOptions) error {
	if s.user == "" {
		return &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "Authentication required"}
	}
	s.from = from
	s.r.mu.Lock()
	s.r.inTx++
	s.r.peakTx = max(s.r.peakTx, s.r.inTx)
	s.r.mu.Unlock()
	return nil
}

func (s *relaySession) Rcpt(to string, _ *smtp.RcptOptions) error { s.to = to; return nil }

func (s *relaySession) Data(r io.Reader) error {
	defer func() {
		s.r.mu.Lock()
		s.r.inTx--
		s.r.mu.Unlock()
	}()
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	time.Sleep(s.r.dataDelay)
	_, isTLS := s.conn.TLSConnectionState()
	s.r.mu.Lock()
	s.r.msgs = append(s.r.msgs, relayMsg{From: s.from, To: s.to, User: s.user, TLS: isTLS, Data: b})
	s.r.mu.Unlock()
	return nil
}

func (s *relaySession) Reset() { s.from, s.to = "", "" }

func (s *relaySession) Logout() error {
	s.r.mu.Lock()
	s.r.active--
	s.r.mu.Unlock()
	return nil
}

// relaySend sends relayMessage to one recipient through tr, as the
// engine would: a handle on the pool, one message.
func relaySend(tr *mailer.Relay, to string) (mailer.Reply, error) {
	ctx := context.Background()
	c, err := tr.Dial(ctx, mailer.Route{Domain: "example.org"})
	if err != nil {
		return mailer.Reply{}, err
	}
	defer c.Close()
	return c.Send(ctx, &mailer.Envelope{From: "b@bounces.sender.test", To: to, Message: relayMessage})
}

func (r *fakeRelay) host(user, pass string, conns int) mailer.RelayHost {
	return mailer.RelayHost{Host: "127.0.0.1", Port: r.Port, Username: user, Password: pass, MaxConnections: conns,
		TLSConfig: &tls.Config{RootCAs: r.Pool, ServerName: "relay.test", MinVersion: tls.VersionTLS12}}
}

// relayMessage has what SMTP transparency and line handling could damage:
// a line starting with a dot, a lone dot line, trailing spaces, UTF-8.
var relayMessage = []byte("From: Herald <news@sender.test>\r\nTo: <ann@example.org>\r\nSubject: Relay test\r\n" +
	"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" +
	".a line starting with a dot\r\n.\r\n..two dots\r\ntrailing spaces   \r\nnaïve café — ünïcödé\r\n")

var relaySignature = []byte("DKIM-Signature: v=1; a=rsa-sha256; d=sender.test; s=herald; b=abc\r\n")

func TestRelayUpgradesAuthenticatesAndDeliversIntact(t *testing.T) {
	relay := startRelay(t, "herald", "s3cret pass", 0)
	tr := mailer.NewRelay(mailer.RelayOptions{Hosts: []mailer.RelayHost{relay.host("herald", "s3cret pass", 2)}, HELO: "out.sender.test"})
	ctx := context.Background()
	conn, err := tr.Dial(ctx, mailer.Route{Domain: "example.org"})
	if err != nil {
		t.Fatalf("Dial() = %v", err)
	}
	for i := range 2 { // two transactions on one connection
		to := "ann" + strconv.Itoa(i) + "@example.org"
		reply, err := conn.Send(ctx, &mailer.Envelope{From: "b+1@bounces.sender.test", To: to, Signature: relaySignature, Message: relayMessage})
		if err != nil || reply.Code != 250 || reply.TLS != "TLSv1.3 verified" {
			t.Fatalf("Send() = %+v, %v; want 250 over TLSv1.3 verified", reply, err)
		}
	}
	conn.Close()
	msgs := relay.messages()
	if len(msgs) != 2 {
		t.Fatalf("relay received %d messages, want 2", len(msgs))
	}
	want := append(append([]byte(nil), relaySignature...), relayMessage...)
	for i, m := range msgs {
		if !m.TLS {
			t.Errorf("message %d: sent in plain text, want after STARTTLS", i)
		}
		if m.User != "herald" {
			t.Errorf("message %d: authenticated as %q, want herald", i, m.User)
		}
		if m.From != "b+1@bounces.sender.test" || m.To != "ann"+strconv.Itoa(i)+"@example.org" {
			t.Errorf("message %d: envelope %s → %s", i, m.From, m.To)
		}
		if !bytes.Equal(m.Data, want) {
			t.Errorf("message %d: relay received\n%q\nwant\n%q", i, m.Data, want)
		}
	}
}

// A relay whose certificate does not verify is not sent to: the
// credentials never leave over an unauthenticated channel.
func TestRelayRefusesUnverifiedCertificate(t *testing.T) {
	relay := startRelay(t, "herald", "pw", 0)
	h := relay.host("herald", "pw", 1)
	h.TLSConfig = &tls.Config{ServerName: "relay.test"} // system roots: the self-signed cert fails
	tr := mailer.NewRelay(mailer.RelayOptions{Hosts: []mailer.RelayHost{h}, HELO: "out.sender.test"})
	_, err := relaySend(tr, "ann@example.org")
	if err == nil {
		t.Fatal("Send() with an untrusted certificate = nil error")
	}
	var de *mailer.DialError
	if !errors.As(err, &de) || de.Permanent || de.Reply.Code != 0 {
		t.Errorf("Send() = %#v, want a temporary DialError without a reply (defer, never bounce)", err)
	}
	relay.mu.Lock()
	defer relay.mu.Unlock()
	if relay.auths != 0 || len(relay.msgs) != 0 {
		t.Errorf("relay saw %d auth attempts, %d messages; want none", relay.auths, len(relay.msgs))
	}
}

// The pool's connections are shared: eight senders at once (as eight
// domains' workers would be) go through two connections, one message at a
// time on each, and the connections close once idle.
func TestRelayRespectsItsConnectionLimit(t *testing.T) {
	relay := startRelay(t, "herald", "pw", 100*time.Millisecond)
	tr := mailer.NewRelay(mailer.RelayOptions{Hosts: []mailer.RelayHost{relay.host("herald", "pw", 2)}, HELO: "out.sender.test",
		IdleTimeout: 300 * time.Millisecond})
	ctx := context.Background()

	// Eight senders at once never have more than two messages under way
	// (one per connection; the relay's own count of open connections
	// cannot be exact, as it notices a closed one only after a moment).
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := tr.Dial(ctx, mailer.Route{Domain: "d" + strconv.Itoa(i) + ".example"})
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			r, err := c.Send(ctx, &mailer.Envelope{From: "b@bounces.sender.test", To: "u@d" + strconv.Itoa(i) + ".example", Message: relayMessage})
			if err == nil && r.Code != 250 {
				err = errors.New(r.Text)
			}
			if err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("send: %v", err)
	}
	waitFor(t, 5*time.Second, "the idle connections to be closed", func() bool {
		relay.mu.Lock()
		defer relay.mu.Unlock()
		return relay.active == 0
	})
	relay.mu.Lock()
	defer relay.mu.Unlock()
	if len(relay.msgs) != 8 {
		t.Errorf("relay received %d messages, want 8", len(relay.msgs))
	}
	if relay.peakTx != 2 {
		t.Errorf("relay had at most %d messages under way at once, want exactly the limit of 2 connections", relay.peakTx)
	}
	if relay.conns != 2 {
		t.Errorf("relay saw %d connections for 8 messages, want the pool's 2, reused", relay.conns)
	}
}

// Wrong credentials come back at once as a RelayError: permanent for the
// configuration (535), but a temporary DialError for the message, which
// must be deferred rather than bounced; the connection slot is returned.
func TestRelayWrongCredentials(t *testing.T) {
	relay := startRelay(t, "herald", "right", 0)
	tr := mailer.NewRelay(mailer.RelayOptions{Hosts: []mailer.RelayHost{relay.host("herald", "wrong", 1)}, HELO: "out.sender.test"})
	for attempt := range 2 { // a leaked slot would make the second attempt wait
		start := time.Now()
		_, err := relaySend(tr, "ann@example.org")
		// The second attempt waits out the pause the first one caused.
		if took := time.Since(start); took > 5*time.Second {
			t.Errorf("attempt %d: Send() took %v with wrong credentials, want a prompt answer", attempt, took)
		}
		var de *mailer.DialError
		var re *mailer.RelayError
		switch {
		case !errors.As(err, &de):
			t.Fatalf("attempt %d: Send() = %v, want a *DialError", attempt, err)
		case de.Permanent || de.Reply.Code != 0:
			t.Errorf("attempt %d: DialError{Permanent: %v, Reply: %d}, want temporary and no reply (the engine would bounce the recipient)", attempt, de.Permanent, de.Reply.Code)
		case !errors.As(err, &re):
			t.Fatalf("attempt %d: Send() = %v, want a *RelayError inside", attempt, err)
		case re.Stage != "auth" || re.Reply.Code != 535 || re.Reply.Enhanced != "5.7.8" || !re.Permanent():
			t.Errorf("attempt %d: RelayError = %+v, want stage auth, 535 5.7.8, permanent", attempt, re)
		}
	}
	relay.mu.Lock()
	defer relay.mu.Unlock()
	if relay.auths != 2 || len(relay.msgs) != 0 {
		t.Errorf("relay saw %d failed logins and %d messages, want 2 and 0", relay.auths, len(relay.msgs))
	}
}

// A relay that accepts the connection and says nothing does not hang the
// sender past its command timeout.
func TestRelaySilentServerTimesOut(t *testing.T) {
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
			t.Cleanup(func() { c.Close() })
		}
	}()
	port := l.Addr().(*net.TCPAddr).Port
	tr := mailer.NewRelay(mailer.RelayOptions{HELO: "out.sender.test", Timeouts: mailer.Timeouts{Command: 500 * time.Millisecond},
		Hosts: []mailer.RelayHost{{Host: "127.0.0.1", Port: port, TLSConfig: &tls.Config{ServerName: "relay.test"}}}})
	start := time.Now()
	_, err = relaySend(tr, "ann@example.org")
	if took := time.Since(start); err == nil || took > 5*time.Second {
		t.Fatalf("Send() to a silent relay = %v after %v, want an error within the 500ms command timeout (5s margin)", err, took)
	}
	var de *mailer.DialError
	if !errors.As(err, &de) || de.Permanent {
		t.Errorf("Send() = %#v, want a temporary DialError", err)
	}
}

// Through the engine, a relay refusing the credentials defers the
// campaign's messages; no recipient is bounced or suppressed.
func TestRelayWrongCredentialsDefersCampaign(t *testing.T) {
	ctx := context.Background()
	s := testdb.SQLite(t)
	relay := startRelay(t, "herald", "right", 0)
	list := seed(t, s, 3, []string{"example.org"})
	cid := campaign(t, s, list, "news@sender.test", nil, nil)
	tr := mailer.NewRelay(mailer.RelayOptions{Hosts: []mailer.RelayHost{relay.host("herald", "wrong", 1)}, HELO: "out.sender.test"})
	e := mailer.New(mailer.Options{Logger: quietLogger(), Secrets: []string{"s"}, Transport: tr}, s)
	runEngine(t, e)
	if err := e.StartCampaign(ctx, cid); err != nil {
		t.Fatal(err)
	}
	// The first refused login defers its message and suspends the relay;
	// messages still waiting are put back for when it reopens (queued) or
	// deferred too, depending on how far the workers got. None may bounce.
	waitFor(t, 15*time.Second, "the campaign's messages to be deferred", func() bool {
		p := progress(t, s, cid)
		return p.Deferred >= 1 || p.Bounced+p.Failed+p.Sent > 0
	})
	time.Sleep(500 * time.Millisecond) // let any wrong outcome land
	p := progress(t, s, cid)
	if p.Bounced != 0 || p.Failed != 0 || p.Sent != 0 || p.Deferred < 1 || p.Deferred+p.Queued+p.Sending != 3 {
		t.Errorf("progress = %d deferred, %d queued, %d sending, %d bounced, %d failed, %d sent; want all 3 deferred or waiting, none bounced",
			p.Deferred, p.Queued, p.Sending, p.Bounced, p.Failed, p.Sent)
	}
	var n int64
	if err := s.DB().Model(&models.Suppression{}).Count(&n).Error; err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("suppressions = %d after a relay login failure, want 0", n)
	}
	var text string
	if err := s.DB().Raw("SELECT last_text FROM deliveries WHERE campaign_id = ? LIMIT 1", cid).Scan(&text).Error; err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains([]byte(text), []byte("535")) || !bytes.Contains([]byte(text), []byte("credentials")) {
		t.Errorf("delivery last_text = %q, want the relay's 535 and a word about the credentials", text)
	}
}

// Failover: while the first relay refuses connections it is paused, and
// the mail goes to the relay of the next priority; the refused message
// itself comes back as a temporary DialError for the engine to retry.
func TestRelayFailsOver(t *testing.T) {
	backup := startRelay(t, "herald", "pw", 0)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadPort := l.Addr().(*net.TCPAddr).Port
	l.Close() // nothing listens there now: connections are refused
	primary := backup.host("herald", "pw", 2)
	primary.Port = deadPort
	second := backup.host("herald", "pw", 2)
	second.Priority = 1
	tr := mailer.NewRelay(mailer.RelayOptions{Hosts: []mailer.RelayHost{second, primary}, HELO: "out.sender.test", Logger: quietLogger()})

	_, err = relaySend(tr, "first@example.org")
	var de *mailer.DialError
	if !errors.As(err, &de) || de.Permanent {
		t.Fatalf("Send() through a relay refusing connections = %v, want a temporary DialError", err)
	}
	for i := range 3 {
		r, err := relaySend(tr, "u"+strconv.Itoa(i)+"@example.org")
		if err != nil || r.Code != 250 {
			t.Fatalf("Send() %d while the first relay is paused = %+v, %v; want 250 from the backup relay", i, r, err)
		}
	}
	if n := len(backup.messages()); n != 3 {
		t.Errorf("backup relay received %d messages, want 3", n)
	}
}

// The relay's quota and its cap of messages per connection hold whatever
// the recipient domains: 30 messages at 20 a second take about a second
// and a half, and with 5 per connection they need 6 connections.
func TestRelayPacesItsRateAndRotatesConnections(t *testing.T) {
	relay := startRelay(t, "herald", "pw", 0)
	h := relay.host("herald", "pw", 1)
	h.PerSecond, h.MaxPerConnection = 20, 5
	tr := mailer.NewRelay(mailer.RelayOptions{Hosts: []mailer.RelayHost{h}, HELO: "out.sender.test"})
	start := time.Now()
	sendAtOnce(t, tr, 30)
	// 29 intervals of 50 ms after the first message.
	if took := time.Since(start); took < 1400*time.Millisecond {
		t.Errorf("30 messages at 20/s took %v, want at least 1.4s", took)
	}
	relay.mu.Lock()
	defer relay.mu.Unlock()
	if len(relay.msgs) != 30 || relay.conns != 6 {
		t.Errorf("relay got %d messages over %d connections, want 30 over 6 (5 per connection)", len(relay.msgs), relay.conns)
	}
}

// Relays of one priority share the mail by their weights.
func TestRelayWeights(t *testing.T) {
	a := startRelay(t, "herald", "pw", 0)
	b := startRelay(t, "herald", "pw", 0)
	ha, hb := a.host("herald", "pw", 2), b.host("herald", "pw", 2)
	ha.Weight, hb.Weight = 3, 1
	tr := mailer.NewRelay(mailer.RelayOptions{Hosts: []mailer.RelayHost{ha, hb}, HELO: "out.sender.test"})
	for i := range 40 {
		if r, err := relaySend(tr, "u"+strconv.Itoa(i)+"@example.org"); err != nil || r.Code != 250 {
			t.Fatalf("Send() = %+v, %v", r, err)
		}
	}
	if na, nb := len(a.messages()), len(b.messages()); na != 30 || nb != 10 {
		t.Errorf("relays of weights 3 and 1 got %d and %d of 40 messages, want 30 and 10", na, nb)
	}
}

// Nodes sharing a relay account each take a part of its quota and
// connections: with two nodes, a relay of 20 a second over 4 connections
// gets 10 a second over 2 from this one.
func TestRelaySharedAmongNodes(t *testing.T) {
	relay := startRelay(t, "herald", "pw", 0)
	h := relay.host("herald", "pw", 4)
	h.PerSecond = 20
	tr := mailer.NewRelay(mailer.RelayOptions{Hosts: []mailer.RelayHost{h}, HELO: "out.sender.test"})
	tr.ShareAmong(2)
	start := time.Now()
	sendAtOnce(t, tr, 20)
	// 19 intervals of 100 ms after the first message.
	if took := time.Since(start); took < 1800*time.Millisecond {
		t.Errorf("20 messages at half of 20/s took %v, want at least 1.8s", took)
	}
	relay.mu.Lock()
	defer relay.mu.Unlock()
	if len(relay.msgs) != 20 || relay.conns > 2 {
		t.Errorf("relay got %d messages over %d connections, want 20 over at most 2", len(relay.msgs), relay.conns)
	}
}

// sendAtOnce sends n messages through tr at once, each to its own domain,
// and waits for them all to be accepted.
func sendAtOnce(t *testing.T, tr *mailer.Relay, n int) {
	t.Helper()
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if r, err := relaySend(tr, "u@d"+strconv.Itoa(i)+".example"); err != nil || r.Code != 250 {
				t.Errorf("Send() = %+v, %v", r, err)
			}
		}()
	}
	wg.Wait()
}
