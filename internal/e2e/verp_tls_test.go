package e2e_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"
	"github.com/emersion/go-smtp"

	"github.com/herald-mail/herald/internal/e2e"
	"github.com/herald-mail/herald/models"
)

// TestRecasedVERPAndTLSReport runs the built binary with direct delivery
// and its inbound SMTP server. The receiver offers STARTTLS with a
// certificate no public root signs. Bounces to the return paths it got,
// uppercased and in mixed case, suppress exactly those two recipients;
// the campaign report shows all delivered mail over TLS, none verified.
func TestRecasedVERPAndTLSReport(t *testing.T) {
	t.Parallel() // functional: no rate or clock is measured, so it may share the machine
	if testing.Short() {
		t.Skip("starts the built binary")
	}
	dns := e2e.StartDNS(t)
	port := e2e.FreePort(t)
	rcv := e2e.StartReceiver(t, "127.0.0.2", port, e2e.ReceiverOptions{
		TLS: &tls.Config{Certificates: []tls.Certificate{selfSigned(t, "mx.alpha.test")}}})
	dns.Provider(t, "mx.alpha.test", "127.0.0.2", "alpha.test")
	inbound := "127.0.0.1:" + strconv.Itoa(e2e.FreePort(t))
	h := e2e.Start(t, e2e.Options{Transport: "direct", DNS: dns, MXPort: port, Env: []string{"HERALD_INBOUND_LISTEN=" + inbound}})
	h.SendingDomain(t, dns, "news.example")
	list := h.List(t, "E2E readers", "ann@alpha.test", "bob@alpha.test", "cat@alpha.test")
	id := h.NewCampaign(t, e2e.Campaign{FromEmail: "hello@news.example", Lists: []int64{list}})
	h.StartCampaign(t, id)
	h.WaitCampaign(t, id, 60*time.Second, "finished")
	msgs := rcv.Messages()
	if len(msgs) != 3 {
		t.Fatalf("receiver got %d messages, want 3", len(msgs))
	}
	for _, m := range msgs {
		if !m.TLS {
			t.Errorf("message to %v went in plain text, want STARTTLS", m.To)
		}
	}

	fixture, err := os.ReadFile("../../mailer/testdata/inbound/dsn-hard.eml")
	if err != nil {
		t.Fatal(err)
	}
	recase := map[string]func(string) string{"ann@alpha.test": strings.ToUpper, "bob@alpha.test": mixedCase}
	for _, m := range msgs {
		f := recase[m.To[0]]
		if f == nil {
			continue
		}
		verp := f(m.From)
		if verp == m.From {
			t.Fatalf("return path %q does not change case; the test proves nothing", m.From)
		}
		dsn := strings.NewReplacer("{{VERP}}", verp, "{{RCPT}}", m.To[0], "{{MESSAGE_ID}}", "<unrelated@example.com>").Replace(string(fixture))
		if err := sendPlain(inbound, verp, dsn); err != nil {
			t.Errorf("bounce to %s (return path %s): %v", verp, m.From, err)
		}
	}
	s := h.Store(t)
	suppressed := func(email string) string {
		var reasons []string
		if err := s.DB().Raw("SELECT reason FROM suppressions WHERE value_hash = ?", models.SuppressionHash(email)).Scan(&reasons).Error; err != nil {
			t.Fatal(err)
		}
		return strings.Join(reasons, ",")
	}
	e2e.Eventually(t, 20*time.Second, "ann and bob suppressed", func() bool {
		return suppressed("ann@alpha.test") != "" && suppressed("bob@alpha.test") != ""
	})
	for email, want := range map[string]string{"ann@alpha.test": models.SuppressHardBounce, "bob@alpha.test": models.SuppressHardBounce, "cat@alpha.test": ""} {
		if got := suppressed(email); got != want {
			t.Errorf("suppression of %s = %q, want %q", email, got, want)
		}
	}

	// Two of the three bounced after delivery; the TLS shares are of the
	// one still delivered, as the transport recorded it.
	status, body := h.Dashboard(t).Get(t, fmt.Sprintf("/campaigns/%d/report", id))
	if status != 200 {
		t.Fatalf("GET report = %d", status)
	}
	doc, err := goquery.NewDocumentFromReader(strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for col, want := range map[string]string{"tls": "100.0%", "tls-verified": "0.0%"} {
		sel := fmt.Sprintf(`[data-provider="%s"] [data-col="%s"]`, models.ProviderOther, col)
		if got := strings.TrimSpace(doc.Find(sel).First().Text()); got != want {
			t.Errorf("report %s = %q, want %q", sel, got, want)
		}
	}
}

// sendPlain delivers msg from the null sender to rcpt over plain SMTP, as
// a remote MTA returning a bounce would.
func sendPlain(addr, rcpt, msg string) error {
	c, err := smtp.Dial(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Hello("mx.alpha.test"); err != nil {
		return err
	}
	if err := c.Mail("", nil); err != nil {
		return err
	}
	if err := c.Rcpt(rcpt, nil); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write([]byte(msg)); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}

// mixedCase upper-cases every other byte.
func mixedCase(s string) string {
	b := []byte(s)
	for i := 0; i < len(b); i += 2 {
		if 'a' <= b[i] && b[i] <= 'z' {
			b[i] -= 'a' - 'A'
		}
	}
	return string(b)
}

// selfSigned makes a certificate for host that no public root signs.
func selfSigned(t *testing.T, host string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: host}, DNSNames: []string{host},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}
