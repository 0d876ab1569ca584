package mailer_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/miekg/dns"

	"github.com/herald-mail/herald/internal/testdb"
	"github.com/herald-mail/herald/mailer"
	"github.com/herald-mail/herald/models"
)

// received is one message a fake provider accepted.
type received struct {
	From, To string
	Data     []byte
	Remote   string // the client's address as the server saw it
	HELO     string
	At       time.Time
}

// behaviour decides a fake provider's answer to a message; nil accepts.
type behaviour func(rcpt string, n int64) *smtp.SMTPError

// stallErr makes the fake server stop answering.
var stallErr = &smtp.SMTPError{Code: -1}

// dropErr makes the fake server close the connection mid-DATA.
var dropErr = &smtp.SMTPError{Code: -2}

// fakeMX is a go-smtp server standing in for one provider.
type fakeMX struct {
	Addr string
	srv  *smtp.Server
	keep bool // keep message bodies

	mu       sync.Mutex
	msgs     []received
	refusals []time.Time
	n        int64
	behave   behaviour
}

func startMX(t testing.TB, addr string, keep bool, b behaviour) *fakeMX {
	t.Helper()
	m := &fakeMX{keep: keep, behave: b}
	s := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &fakeSession{m: m, conn: c}, nil
	}))
	s.Domain = "mx.test"
	s.AllowInsecureAuth = true
	s.ReadTimeout, s.WriteTimeout = 30*time.Second, 30*time.Second
	s.MaxMessageBytes = 10 << 20
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen %s: %v", addr, err)
	}
	m.Addr, m.srv = l.Addr().String(), s
	go s.Serve(l)
	t.Cleanup(func() { s.Close() })
	return m
}

func (m *fakeMX) messages() []received {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]received(nil), m.msgs...)
}

func (m *fakeMX) count() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.msgs)
}

type fakeSession struct {
	m    *fakeMX
	conn *smtp.Conn
	from string
	to   string
}

func (s *fakeSession) Reset()        { s.from, s.to = "", "" }
func (s *fakeSession) Logout() error { return nil }
func (s *fakeSession) Mail(from string, _ *smtp.MailOptions) error {
	s.from = from
	return nil
}
func (s *fakeSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.to = to
	return nil
}

func (s *fakeSession) Data(r io.Reader) error {
	m := s.m
	m.mu.Lock()
	m.n++
	n := m.n
	b := m.behave
	m.mu.Unlock()
	var verdict *smtp.SMTPError
	if b != nil {
		verdict = b(s.to, n)
	}
	switch verdict {
	case stallErr:
		time.Sleep(3 * time.Second)
		return io.ErrUnexpectedEOF
	case dropErr:
		io.CopyN(io.Discard, r, 100)
		s.conn.Conn().Close()
		return io.ErrUnexpectedEOF
	}
	var data []byte
	if m.keep {
		data, _ = io.ReadAll(r)
	} else {
		io.Copy(io.Discard, r)
	}
	if verdict != nil {
		m.mu.Lock()
		m.refusals = append(m.refusals, time.Now())
		m.mu.Unlock()
		return verdict
	}
	m.mu.Lock()
	m.msgs = append(m.msgs, received{From: s.from, To: s.to, Data: data, Remote: s.conn.Conn().RemoteAddr().String(),
		HELO: s.conn.Hostname(), At: time.Now()})
	m.mu.Unlock()
	return nil
}

// fakeDNS is a small authoritative DNS server for tests.
type fakeDNS struct {
	Addr string
	mu   sync.Mutex
	rrs  map[string][]dns.RR // by "TYPE name."
}

func startDNS(t testing.TB) *fakeDNS {
	t.Helper()
	f := &fakeDNS{rrs: map[string][]dns.RR{}}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.Addr = pc.LocalAddr().String()
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(f.serve)}
	go srv.ActivateAndServe()
	t.Cleanup(func() { srv.Shutdown() })
	return f
}

// add adds records in zone-file syntax, e.g. "p1.test. 300 IN MX 10 mx.p1.test.".
func (f *fakeDNS) add(t testing.TB, lines ...string) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, l := range lines {
		rr, err := dns.NewRR(l)
		if err != nil {
			t.Fatalf("dns record %q: %v", l, err)
		}
		k := dns.TypeToString[rr.Header().Rrtype] + " " + strings.ToLower(rr.Header().Name)
		f.rrs[k] = append(f.rrs[k], rr)
	}
}

func (f *fakeDNS) serve(w dns.ResponseWriter, r *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(r)
	m.Authoritative = true
	q := r.Question[0]
	name := strings.ToLower(q.Name)
	f.mu.Lock()
	m.Answer = append(m.Answer, f.rrs[dns.TypeToString[q.Qtype]+" "+name]...)
	exists := false
	for k := range f.rrs {
		if strings.HasSuffix(k, " "+name) {
			exists = true
		}
	}
	f.mu.Unlock()
	if !exists {
		m.Rcode = dns.RcodeNameError
	}
	w.WriteMsg(m)
}

// txtLookup serves go-msgauth's verifier from the fake DNS.
func (f *fakeDNS) txtLookup(domain string) ([]string, error) {
	return mailer.NewResolver(f.Addr).LookupTXT(context.Background(), domain)
}

// publish adds a sending domain's DKIM key records to the fake DNS.
func (f *fakeDNS) publish(t testing.TB, sd *models.SendingDomain) {
	for _, r := range dkimRecords(sd) {
		f.add(t, r.ZoneLine())
	}
}

// dkimRecords are a sending domain's DKIM key records, as its page shows
// them.
func dkimRecords(sd *models.SendingDomain) []models.DNSRecord {
	var out []models.DNSRecord
	for _, r := range sd.DNSRecords(models.DNSRecordOptions{}) {
		if r.Purpose == "dkim" || r.Purpose == "dkim-ed25519" {
			out = append(out, r)
		}
	}
	return out
}

// seed creates a list and n subscribers on it with addresses
// user{i}@{domains[i % len]}, confirmed, in bulk.
func seed(t testing.TB, s *models.Store, n int, domains []string) int64 {
	t.Helper()
	return testdb.Readers(t, s, fmt.Sprintf("list-%d", time.Now().UnixNano()), n, func(k int) testdb.Reader {
		return testdb.Reader{Email: fmt.Sprintf("user%d@%s", k, domains[k%len(domains)]), Name: fmt.Sprintf("User %d", k),
			Attributes: fmt.Sprintf(`{"city":"City %d","plan":"pro"}`, k%7)}
	})
}

const testHTML = `<!doctype html><html><head><title>News</title><style>p{color:red}</style></head><body>
<h1>Hello {{.Subscriber.Name}}</h1>
<p>News for {{.Subscriber.Attributes.city}} from {{.Org.Name}}.</p>
<p><a href="https://example.com/one">One</a> and <a href="https://example.com/two?a=1&amp;b=2">Two</a>.</p>
<ul><li><a href="https://example.com/three">Three</a></li><li><a href="https://example.com/four">Four</a></li></ul>
<p><a href='https://example.com/five'>Five</a> <a href="mailto:hi@example.com">mail us</a></p>
<p><a href="{{.UnsubscribeURL}}">Unsubscribe</a> · <a href="{{.PreferencesURL}}">Preferences</a></p>
</body></html>`

// campaign creates a template and a campaign to the list.
func campaign(t testing.TB, s *models.Store, listID int64, from string, sdID *int64, mod func(*models.Campaign)) int64 {
	t.Helper()
	ctx := context.Background()
	tpl := &models.Template{Kind: models.TemplateCampaign, Name: fmt.Sprintf("tpl-%d", time.Now().UnixNano()),
		Subject: "News for {{.Subscriber.Name}}", HTML: testHTML}
	if err := s.CreateTemplate(ctx, tpl); err != nil {
		t.Fatal(err)
	}
	c := &models.Campaign{Name: "Spring news", TemplateID: &tpl.ID, FromName: "Herald Test", FromEmail: from,
		SendingDomainID: sdID, TrackOpens: true, TrackClicks: true}
	if mod != nil {
		mod(c)
	}
	if err := s.CreateCampaign(ctx, c, []int64{listID}); err != nil {
		t.Fatal(err)
	}
	return c.ID
}

// runEngine runs an engine until the test ends.
func runEngine(t testing.TB, e *mailer.Engine) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run() = %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Errorf("Run() did not return after cancel")
		}
	})
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// testLogger writes warnings and errors to the test log.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(string(bytes.TrimRight(b, "\n")))
	return len(b), nil
}

func progress(t testing.TB, s *models.Store, id int64) *models.CampaignProgress {
	t.Helper()
	p, err := s.CampaignProgress(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
