package mailer_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/herald-mail/herald/internal/testdb"
	"github.com/herald-mail/herald/mailer"
	"github.com/herald-mail/herald/models"
)

// testCA is a throwaway certificate authority.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	Pool *x509.CertPool
}

func newTestCA(t testing.TB) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Herald Test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageCertSign, IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, Pool: pool}
}

// issue makes a server certificate for names, signed by the CA.
func (ca *testCA) issue(t testing.TB, names ...string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: names[0]}, DNSNames: names,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// startPolicyServer serves an MTA-STS policy at https://ip:443 with a
// certificate for mta-sts.<domain>, and counts the fetches.
func startPolicyServer(t testing.TB, ca *testCA, ip, domain string, handler http.HandlerFunc) *atomic.Int32 {
	t.Helper()
	var hits atomic.Int32
	l, err := net.Listen("tcp", ip+":443")
	if err != nil {
		t.Fatalf("listen %s:443 (the tests run as root): %v", ip, err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if r.URL.Path != "/.well-known/mta-sts.txt" || r.Host != "mta-sts."+domain {
			http.NotFound(w, r)
			return
		}
		handler(w, r)
	}), TLSConfig: &tls.Config{Certificates: []tls.Certificate{ca.issue(t, "mta-sts."+domain)}}}
	go srv.ServeTLS(l, "", "")
	t.Cleanup(func() { srv.Close() })
	return &hits
}

func policy(body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprint(w, body)
	}
}

// startTLSMX starts a go-smtp receiver offering STARTTLS with cert (nil:
// no STARTTLS) on addr.
func startTLSMX(t testing.TB, addr string, cert *tls.Certificate) *fakeMX {
	t.Helper()
	m := startMX(t, addr, false, nil)
	if cert != nil {
		m.srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{*cert}}
	}
	return m
}

// tlsWorld is one recipient domain's DNS, policy server and MX hosts.
type tlsWorld struct {
	ns   *fakeDNS
	ca   *testCA
	port int
}

func newTLSWorld(t *testing.T) *tlsWorld {
	return &tlsWorld{ns: startDNS(t), ca: newTestCA(t)}
}

// mx starts an MX host for domain at ip (all on one port) and publishes
// it in DNS.
func (w *tlsWorld) mx(t *testing.T, domain, host, ip string, cert *tls.Certificate) *fakeMX {
	addr := ip + ":0"
	if w.port != 0 {
		addr = ip + ":" + strconv.Itoa(w.port)
	}
	m := startTLSMX(t, addr, cert)
	_, p, _ := net.SplitHostPort(m.Addr)
	w.port, _ = strconv.Atoi(p)
	w.ns.add(t, domain+". 300 IN MX 10 "+host+".", host+". 300 IN A "+ip)
	return m
}

// sts publishes domain's _mta-sts record and serves policy at ip.
func (w *tlsWorld) sts(t *testing.T, domain, ip, body string) *atomic.Int32 {
	w.ns.add(t, `_mta-sts.`+domain+`. 300 IN TXT "v=STSv1; id=20260101T000000;"`, "mta-sts."+domain+". 300 IN A "+ip)
	return startPolicyServer(t, w.ca, ip, domain, policy(body))
}

func (w *tlsWorld) direct(o mailer.DirectOptions) *mailer.Direct {
	o.Resolver, o.Port, o.RootCAs, o.HELO = mailer.NewResolver(w.ns.Addr), w.port, w.ca.Pool, "out.test"
	o.Timeouts = mailer.Timeouts{Command: 10 * time.Second}
	return mailer.NewDirect(o)
}

// sendOne dials the domain and sends one message; it returns the reply, or
// the dial error.
func sendOne(t *testing.T, d *mailer.Direct, r mailer.Route) (mailer.Reply, error) {
	t.Helper()
	ctx := context.Background()
	c, err := d.Dial(ctx, r)
	if err != nil {
		return mailer.Reply{}, err
	}
	defer c.Close()
	return c.Send(ctx, &mailer.Envelope{From: "b@sender.test", To: "reader@" + r.Domain, Message: []byte("Subject: x\r\n\r\nhi\r\n")})
}

// TestMTASTS: a recipient domain's MTA-STS policy, fetched over HTTPS
// from a local policy server found through the mailer's DNS: in enforce
// mode a valid certificate for a listed MX host delivers (and says
// "verified"); a certificate for the wrong name, or an MX host the policy
// does not list, is refused before any mail is sent, with a reason that
// says which, and never falls back to plain text; testing mode delivers
// and reports the failure; a domain without a policy delivers over TLS it
// could not verify, and says so.
func TestMTASTS(t *testing.T) {
	w := newTLSWorld(t)
	good := w.ca.issue(t, "mx.good.test")
	wrong := w.ca.issue(t, "wrong.example.net")
	mxGood := w.mx(t, "good.test", "mx.good.test", "127.0.3.1", &good)
	mxWrong := w.mx(t, "wrong.test", "mx.wrong.test", "127.0.3.2", &wrong)
	mxUnlisted := w.mx(t, "unlisted.test", "mx.unlisted.test", "127.0.3.3", &good)
	mxTesting := w.mx(t, "testing.test", "mx.testing.test", "127.0.3.4", &wrong)
	mxNone := w.mx(t, "nopolicy.test", "mx.nopolicy.test", "127.0.3.5", &wrong)
	hits := w.sts(t, "good.test", "127.0.3.101", "version: STSv1\r\nmode: enforce\r\nmx: mx.good.test\r\nmax_age: 86400\r\n")
	w.sts(t, "wrong.test", "127.0.3.102", "version: STSv1\nmode: enforce\nmx: *.wrong.test\nmax_age: 86400\n")
	w.sts(t, "unlisted.test", "127.0.3.103", "version: STSv1\nmode: enforce\nmx: mx.elsewhere.test\nmax_age: 86400\n")
	w.sts(t, "testing.test", "127.0.3.104", "version: STSv1\nmode: testing\nmx: mx.testing.test\nmax_age: 86400\n")
	d := w.direct(mailer.DirectOptions{})

	for _, c := range []struct {
		domain            string
		mx                *fakeMX
		delivered         bool
		tls, policy, fail string // Reply.TLS, Reply.TLSPolicy (substring), dial error (substring)
	}{
		{"good.test", mxGood, true, "TLSv1.3 verified", "", ""},
		{"wrong.test", mxWrong, false, "", "", "the MTA-STS policy of wrong.test (mode enforce) requires TLS with a valid certificate, and the certificate of mx.wrong.test is not valid"},
		{"unlisted.test", mxUnlisted, false, "", "", "MX host mx.unlisted.test is not listed in the MTA-STS policy of unlisted.test"},
		{"testing.test", mxTesting, true, "TLSv1.3 unverified", "MTA-STS (testing): the certificate of mx.testing.test is not valid", ""},
		{"nopolicy.test", mxNone, true, "TLSv1.3 unverified", "", ""},
	} {
		t.Run(c.domain, func(t *testing.T) {
			r, err := sendOne(t, d, mailer.Route{Domain: c.domain})
			if c.fail != "" {
				var de *mailer.DialError
				if !errors.As(err, &de) || de.Permanent || !strings.Contains(err.Error(), c.fail) {
					t.Fatalf("Dial() = %v; want a temporary DialError saying %q", err, c.fail)
				}
			} else if err != nil || r.Code != 250 {
				t.Fatalf("send = %+v, %v; want 250", r, err)
			}
			if r.TLS != c.tls || !strings.Contains(r.TLSPolicy, c.policy) || (c.policy == "" && r.TLSPolicy != "") {
				t.Errorf("reply TLS %q, TLS policy %q; want %q, %q", r.TLS, r.TLSPolicy, c.tls, c.policy)
			}
			if got := c.mx.count(); (got == 1) != c.delivered || got > 1 {
				t.Errorf("messages at %s's MX = %d; want delivered %v (and no plain-text fallback)", c.domain, got, c.delivered)
			}
		})
	}
	// The policy is cached (by id, for max_age): a second connection does
	// not fetch it again.
	if _, err := sendOne(t, d, mailer.Route{Domain: "good.test"}); err != nil {
		t.Fatal(err)
	}
	if n := hits.Load(); n != 1 {
		t.Errorf("policy fetched %d times for two connections; want 1 (cached)", n)
	}
}

// TestMTASTSBadPolicies: a policy that redirects, is too large, has the
// wrong content type or does not parse counts as no policy (RFC 8461
// 3.3): mail is delivered opportunistically, not held.
func TestMTASTSBadPolicies(t *testing.T) {
	w := newTLSWorld(t)
	wrong := w.ca.issue(t, "wrong.example.net")
	for i, c := range []struct {
		name    string
		handler http.HandlerFunc
	}{
		{"redirect", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "https://elsewhere.test/.well-known/mta-sts.txt", http.StatusFound)
		}},
		{"too large", policy("version: STSv1\nmode: enforce\nmx: mx.x.test\nmax_age: 86400\n" + strings.Repeat("# padding\n", 7000))},
		{"content type", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			fmt.Fprint(w, "version: STSv1\nmode: enforce\nmx: mx.x.test\nmax_age: 86400\n")
		}},
		{"no version", policy("mode: enforce\nmx: mx.x.test\nmax_age: 86400\n")},
	} {
		t.Run(c.name, func(t *testing.T) {
			domain := fmt.Sprintf("bad%d.test", i)
			ip := fmt.Sprintf("127.0.4.%d", 10+i)
			mx := w.mx(t, domain, "mx."+domain, fmt.Sprintf("127.0.4.%d", 100+i), &wrong)
			w.ns.add(t, `_mta-sts.`+domain+`. 300 IN TXT "v=STSv1; id=1;"`, "mta-sts."+domain+". 300 IN A "+ip)
			hits := startPolicyServer(t, w.ca, ip, domain, c.handler)
			r, err := sendOne(t, w.direct(mailer.DirectOptions{}), mailer.Route{Domain: domain})
			if err != nil || r.Code != 250 || r.TLS != "TLSv1.3 unverified" {
				t.Fatalf("send = %+v, %v; want 250 over unverified TLS (the bad policy ignored)", r, err)
			}
			if hits.Load() != 1 || mx.count() != 1 {
				t.Errorf("policy fetches %d, messages %d; want 1, 1", hits.Load(), mx.count())
			}
		})
	}
}

// TestRequireTLSRule: a domain rule that requires TLS with a valid
// certificate defers (no plain text, no unverified TLS) where the
// receiver offers no STARTTLS or a certificate for another name, and
// delivers where the certificate is valid.
func TestRequireTLSRule(t *testing.T) {
	w := newTLSWorld(t)
	good := w.ca.issue(t, "mx.ok.test")
	wrong := w.ca.issue(t, "wrong.example.net")
	ok := w.mx(t, "ok.test", "mx.ok.test", "127.0.5.1", &good)
	plain := w.mx(t, "plain.test", "mx.plain.test", "127.0.5.2", nil)
	bad := w.mx(t, "bad.test", "mx.bad.test", "127.0.5.3", &wrong)
	d := w.direct(mailer.DirectOptions{})
	for _, c := range []struct {
		domain string
		mx     *fakeMX
		fail   string
	}{
		{"ok.test", ok, ""},
		{"plain.test", plain, "the domain rule for plain.test requires TLS with a valid certificate, and mx.plain.test does not offer STARTTLS"},
		{"bad.test", bad, "the domain rule for bad.test requires TLS with a valid certificate, and the certificate of mx.bad.test is not valid"},
	} {
		r, err := sendOne(t, d, mailer.Route{Domain: c.domain, RequireTLS: true})
		switch {
		case c.fail == "" && (err != nil || r.Code != 250 || r.TLS != "TLSv1.3 verified"):
			t.Errorf("%s: send = %+v, %v; want 250 over verified TLS", c.domain, r, err)
		case c.fail != "" && (err == nil || !strings.Contains(err.Error(), c.fail)):
			t.Errorf("%s: send = %+v, %v; want a dial error saying %q", c.domain, r, err, c.fail)
		}
		if want := map[bool]int{true: 1, false: 0}[c.fail == ""]; c.mx.count() != want {
			t.Errorf("%s: %d messages received; want %d", c.domain, c.mx.count(), want)
		}
	}
	// Without the rule the same receivers get their mail: plain text
	// says "", a wrong name "unverified".
	for domain, want := range map[string]string{"plain.test": "", "bad.test": "TLSv1.3 unverified"} {
		r, err := sendOne(t, d, mailer.Route{Domain: domain})
		if err != nil || r.Code != 250 || r.TLS != want {
			t.Errorf("%s without the rule: send = %+v, %v; want 250 with TLS %q", domain, r, err, want)
		}
	}
}

// TestHandshakeFallback: when the TLS handshake after STARTTLS fails and
// nothing requires TLS, the message goes out in plain text on a new
// connection and the reply says so; when a rule requires TLS, it does
// not go out at all.
func TestHandshakeFallback(t *testing.T) {
	w := newTLSWorld(t)
	m := w.mx(t, "broken.test", "mx.broken.test", "127.0.6.1", nil)
	var conns atomic.Int32
	m.srv.TLSConfig = &tls.Config{GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
		conns.Add(1)
		return nil, errors.New("no certificate here")
	}}
	d := w.direct(mailer.DirectOptions{})
	r, err := sendOne(t, d, mailer.Route{Domain: "broken.test"})
	if err != nil || r.Code != 250 || !strings.HasPrefix(r.TLS, "plain text after a failed STARTTLS handshake") {
		t.Fatalf("send = %+v, %v; want 250 with TLS saying plain text after a failed handshake", r, err)
	}
	if conns.Load() != 1 || m.count() != 1 {
		t.Errorf("handshakes %d, messages %d; want 1, 1 (the second connection stays in plain text)", conns.Load(), m.count())
	}
	_, err = sendOne(t, d, mailer.Route{Domain: "broken.test", RequireTLS: true})
	if err == nil || !strings.Contains(err.Error(), "requires TLS") || m.count() != 1 {
		t.Errorf("with TLS required: %v, %d messages; want a dial error and no new message", err, m.count())
	}
}

// TestMTASTSPerRecipient: a connection opened for one domain of a
// destination that serves several (one MX provider) carries another
// domain's mail only when that domain's policy allows the connection: an
// enforce policy refuses it (451 4.7.5, nothing sent) when the
// certificate does not verify.
func TestMTASTSPerRecipient(t *testing.T) {
	w := newTLSWorld(t)
	wrong := w.ca.issue(t, "wrong.example.net")
	mx := w.mx(t, "shared-a.test", "mx.shared.test", "127.0.3.50", &wrong)
	w.ns.add(t, "shared-b.test. 300 IN MX 10 mx.shared.test.")
	w.sts(t, "shared-b.test", "127.0.3.150", "version: STSv1\nmode: enforce\nmx: mx.shared.test\nmax_age: 86400\n")
	ctx := context.Background()
	c, err := w.direct(mailer.DirectOptions{}).Dial(ctx, mailer.Route{Domain: "shared-a.test", MX: []string{"mx.shared.test"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	msg := []byte("Subject: x\r\n\r\nhi\r\n")
	r, err := c.Send(ctx, &mailer.Envelope{From: "b@sender.test", To: "reader@shared-b.test", Message: msg})
	if err != nil || r.Code != 451 || r.Enhanced != "4.7.5" || !strings.Contains(r.Text, "the MTA-STS policy of shared-b.test (mode enforce) requires TLS with a valid certificate") {
		t.Errorf("Send(shared-b.test) = %+v, %v; want 451 4.7.5 naming the policy", r, err)
	}
	r, err = c.Send(ctx, &mailer.Envelope{From: "b@sender.test", To: "reader@shared-a.test", Message: msg})
	if err != nil || r.Code != 250 || r.TLS != "TLSv1.3 unverified" {
		t.Errorf("Send(shared-a.test) = %+v, %v; want 250 over unverified TLS", r, err)
	}
	if got := mx.count(); got != 1 {
		t.Errorf("%d messages received; want 1 (shared-a's only)", got)
	}
}

// TestMTASTSOneFetch: connections opened to one domain at once share one
// policy fetch.
func TestMTASTSOneFetch(t *testing.T) {
	w := newTLSWorld(t)
	good := w.ca.issue(t, "mx.many.test")
	mx := w.mx(t, "many.test", "mx.many.test", "127.0.3.60", &good)
	hits := w.sts(t, "many.test", "127.0.3.160", "version: STSv1\nmode: enforce\nmx: mx.many.test\nmax_age: 86400\n")
	d := w.direct(mailer.DirectOptions{})
	errs := make(chan error, 8)
	for range 8 {
		go func() {
			r, err := sendOne(t, d, mailer.Route{Domain: "many.test"})
			if err == nil && r.Code != 250 {
				err = fmt.Errorf("reply %+v", r)
			}
			errs <- err
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if hits.Load() != 1 || mx.count() != 8 {
		t.Errorf("policy fetches %d, messages %d; want 1, 8", hits.Load(), mx.count())
	}
}

// TestRequireTLSRuleInEngine: a domain rule stored with RequireTLS reaches
// the transport through the engine: its destination's receiver, which
// offers no STARTTLS, gets nothing and the delivery is deferred with the
// reason, while another destination's plain-text receiver gets its mail.
func TestRequireTLSRuleInEngine(t *testing.T) {
	ctx := context.Background()
	s := testdb.SQLite(t)
	setDefaultRule(t, s, 0, 2)
	w := newTLSWorld(t)
	strict := w.mx(t, "strict.test", "mx.strict.test", "127.0.7.1", nil)
	open := w.mx(t, "open.test", "mx.open.test", "127.0.7.2", nil)
	if err := s.CreateDomainRule(ctx, &models.DomainRule{Name: "strict", Domains: "strict.test", RequireTLS: true,
		BackoffMinSeconds: 60, BackoffMaxSeconds: 120}); err != nil {
		t.Fatal(err)
	}
	list := seed(t, s, 2, []string{"strict.test", "open.test"})
	cid := campaign(t, s, list, "news@sender.test", nil, nil)
	e := mailer.New(mailer.Options{Logger: testLogger(t), Secrets: []string{"s"}, Transport: w.direct(mailer.DirectOptions{})}, s)
	runEngine(t, e)
	if err := e.StartCampaign(ctx, cid); err != nil {
		t.Fatal(err)
	}
	var d models.Delivery
	waitFor(t, 30*time.Second, "open.test delivered and strict.test deferred", func() bool {
		if err := s.DB().Where("campaign_id = ? AND domain = ?", cid, "strict.test").First(&d).Error; err != nil {
			return false
		}
		return open.count() == 1 && d.Status == models.DeliveryDeferred
	})
	const reason = "the domain rule for strict.test requires TLS with a valid certificate, and mx.strict.test does not offer STARTTLS"
	if !strings.Contains(d.LastText, reason) || strict.count() != 0 {
		t.Errorf("strict.test delivery: %q, %d messages at its MX; want deferred saying %q, 0 messages", d.LastText, strict.count(), reason)
	}
}
