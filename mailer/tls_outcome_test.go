package mailer_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"testing"
	"time"

	"github.com/herald-mail/herald/internal/testdb"
	"github.com/herald-mail/herald/mailer"
	"github.com/herald-mail/herald/models"
)

// TestTLSOutcomeRecorded: a campaign by direct delivery to three go-smtp
// MX hosts, one offering STARTTLS with a certificate that verifies for
// its name, one with TLS 1.2 at most and a certificate for another name,
// one in plain text. Each delivery records how its message went, and the
// provider report counts them.
func TestTLSOutcomeRecorded(t *testing.T) {
	ctx := context.Background()
	s := testdb.SQLite(t)
	ns := startDNS(t)
	const port = 2526
	goodCert, _ := selfSigned(t, "mx.good.test")
	otherCert, _ := selfSigned(t, "somewhere-else.test")
	roots := x509.NewCertPool()
	roots.AddCert(goodCert.Leaf)
	roots.AddCert(otherCert.Leaf)
	mxs := []struct {
		domain, ip string
		cert       *tls.Certificate
		maxVersion uint16
		want       string // Reply.TLS
	}{
		{"good.test", "127.0.3.1", &goodCert, 0, "TLSv1.3 verified"},
		{"wrong.test", "127.0.3.2", &otherCert, tls.VersionTLS12, "TLSv1.2 unverified"},
		{"plain.test", "127.0.3.3", nil, 0, ""},
	}
	var domains []string
	for _, m := range mxs {
		mx := startTLSMX(t, fmt.Sprintf("%s:%d", m.ip, port), m.cert)
		if m.maxVersion != 0 {
			mx.srv.TLSConfig.MaxVersion = m.maxVersion // before any connection
		}
		ns.add(t, fmt.Sprintf("mx.%s. 300 IN A %s", m.domain, m.ip), fmt.Sprintf("%s. 300 IN MX 10 mx.%s.", m.domain, m.domain))
		domains = append(domains, m.domain)
	}
	list := seed(t, s, 6, domains)
	cid := campaign(t, s, list, "news@sender.test", nil, nil)
	// Opportunistic, as by default (a certificate that does not verify is
	// still used), with roots that trust the test's certificates.
	tr := mailer.NewDirect(mailer.DirectOptions{Resolver: mailer.NewResolver(ns.Addr), Port: port, HELO: "out.sender.test",
		RootCAs: roots})
	e := mailer.New(mailer.Options{Logger: testLogger(t), Secrets: []string{"tls secret"}, Transport: tr}, s)
	runEngine(t, e)
	if err := e.StartCampaign(ctx, cid); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "6 messages sent", func() bool { return progress(t, s, cid).Sent == 6 })

	rows, err := s.DB().Raw("SELECT domain, tls FROM deliveries WHERE campaign_id = ? ORDER BY id", cid).Rows()
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var domain string
		var code int16
		if err := rows.Scan(&domain, &code); err != nil {
			t.Fatal(err)
		}
		n++
		for _, m := range mxs {
			if m.domain == domain && code != models.TLSCode(m.want) {
				t.Errorf("delivery to %s: tls = %d (%q), want %d (%q)", domain, code, models.TLSText(code), models.TLSCode(m.want), models.TLSText(models.TLSCode(m.want)))
			}
		}
	}
	if n != 6 {
		t.Errorf("read %d deliveries, want 6", n)
	}
	provs, err := s.ProviderStatsOf(ctx, []int64{cid})
	if err != nil {
		t.Fatal(err)
	}
	var known, over, verified int64
	for _, p := range provs {
		known, over, verified = known+p.TLSKnown, over+p.OverTLS, verified+p.VerifiedTLS
	}
	if known != 6 || over != 4 || verified != 2 {
		t.Errorf("provider report: %d delivered with a known TLS state, %d over TLS, %d verified; want 6, 4, 2", known, over, verified)
	}
}

// A relay checks its certificate during the handshake; its replies say so.
func TestRelayReplyTLS(t *testing.T) {
	relay := startRelay(t, "herald", "pw", 0)
	tr := mailer.NewRelay(mailer.RelayOptions{Hosts: []mailer.RelayHost{relay.host("herald", "pw", 1)}, HELO: "out.sender.test"})
	ctx := context.Background()
	conn, err := tr.Dial(ctx, mailer.Route{Domain: "example.org"})
	if err != nil {
		t.Fatalf("Dial() = %v", err)
	}
	defer conn.Close()
	reply, err := conn.Send(ctx, &mailer.Envelope{From: "b-x@bounces.sender.test", To: "ann@example.org", Message: relayMessage})
	if err != nil || reply.Code != 250 {
		t.Fatalf("Send() = %+v, %v; want 250", reply, err)
	}
	if reply.TLS != "TLSv1.3 verified" {
		t.Errorf("Send() reply TLS = %q, want %q", reply.TLS, "TLSv1.3 verified")
	}
}
