package e2e_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/herald-mail/herald/internal/e2e"
	"github.com/herald-mail/herald/models"
)

// TestMTASTSEnforce: two recipient domains publish MTA-STS policies in
// enforce mode (TXT record in the local DNS, policy on a local HTTPS server
// whose certificate comes from a throwaway CA named by SSL_CERT_FILE). The
// built binary delivers to the receiver whose certificate is valid for its
// MX name, over verified TLS, and defers the message to the receiver whose
// certificate is for another name, with a reason that says so; that
// receiver gets nothing, in plain text or otherwise.
func TestMTASTSEnforce(t *testing.T) {
	t.Parallel() // functional: no rate or clock is measured, so it may share the machine
	if testing.Short() {
		t.Skip("starts the built binary")
	}
	ca := newCA(t)
	dns := e2e.StartDNS(t)
	port := e2e.FreePort(t)
	good := e2e.StartReceiver(t, "127.0.0.21", port, e2e.ReceiverOptions{TLS: ca.serverTLS(t, "mx.good.test")})
	wrong := e2e.StartReceiver(t, "127.0.0.22", port, e2e.ReceiverOptions{TLS: ca.serverTLS(t, "wrong.example.net")})
	dns.Provider(t, "mx.good.test", "127.0.0.21", "good.test")
	dns.Provider(t, "mx.wrong.test", "127.0.0.22", "wrong.test")
	goodHits := startPolicy(t, ca, dns, "127.0.0.23", "good.test", "version: STSv1\nmode: enforce\nmx: mx.good.test\nmax_age: 86400\n")
	wrongHits := startPolicy(t, ca, dns, "127.0.0.24", "wrong.test", "version: STSv1\nmode: enforce\nmx: *.wrong.test\nmax_age: 86400\n")

	h := e2e.Start(t, e2e.Options{Transport: "direct", DNS: dns, MXPort: port, Env: []string{"SSL_CERT_FILE=" + ca.file}})
	h.SendingDomain(t, dns, "news.example")
	list := h.List(t, "MTA-STS readers", "ann@good.test", "bob@wrong.test")
	id := h.NewCampaign(t, e2e.Campaign{FromEmail: "hello@news.example", Lists: []int64{list}})
	h.StartCampaign(t, id)

	var bob models.Delivery
	e2e.Eventually(t, 60*time.Second, "ann delivered and bob deferred", func() bool {
		if err := h.Store(t).DB().Where("campaign_id = ? AND domain = ?", id, "wrong.test").First(&bob).Error; err != nil {
			return false
		}
		return good.Count() == 1 && bob.Status == models.DeliveryDeferred
	})
	const reason = "the MTA-STS policy of wrong.test (mode enforce) requires TLS with a valid certificate, and the certificate of mx.wrong.test is not valid"
	if !strings.Contains(bob.LastText, reason) {
		t.Errorf("bob's deferral says %q; want it to say %q", bob.LastText, reason)
	}
	if m := good.Messages()[0]; !m.TLS || m.To[0] != "ann@good.test" {
		t.Errorf("good receiver got a message for %v over TLS %v; want ann over TLS", m.To, m.TLS)
	}
	if wrong.Count() != 0 {
		t.Errorf("the receiver with the wrong-name certificate got %d messages; want 0", wrong.Count())
	}
	if goodHits.Load() == 0 || wrongHits.Load() == 0 {
		t.Errorf("policy fetches: good %d, wrong %d; want both fetched", goodHits.Load(), wrongHits.Load())
	}
	st := h.WaitCampaign(t, id, 10*time.Second, "running")
	if st.Counters["sent"] != 1 {
		t.Errorf("counters %v; want 1 sent", st.Counters)
	}
}

type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	file string // PEM, for SSL_CERT_FILE
}

func newCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Herald E2E CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageCertSign, IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	file := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key, file: file}
}

func (ca *testCA) serverTLS(t *testing.T, name string) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
}

// startPolicy publishes domain's _mta-sts record and serves body as its
// policy on https://mta-sts.<domain> at ip:443, counting fetches.
func startPolicy(t *testing.T, ca *testCA, dns *e2e.DNS, ip, domain, body string) *atomic.Int32 {
	t.Helper()
	dns.AddTXT(t, "_mta-sts."+domain, "v=STSv1; id=20261205;")
	dns.Add(t, fmt.Sprintf("mta-sts.%s. 300 IN A %s", domain, ip))
	l, err := net.Listen("tcp", ip+":443")
	if err != nil {
		t.Fatalf("listen %s:443 (the tests run as root): %v", ip, err)
	}
	var hits atomic.Int32
	srv := &http.Server{TLSConfig: ca.serverTLS(t, "mta-sts."+domain),
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			hits.Add(1)
			if r.URL.Path != "/.well-known/mta-sts.txt" {
				http.NotFound(w, r)
				return
			}
			w.Header().Set("Content-Type", "text/plain")
			fmt.Fprint(w, body)
		})}
	go srv.ServeTLS(l, "", "")
	t.Cleanup(func() { srv.Close() })
	return &hits
}
