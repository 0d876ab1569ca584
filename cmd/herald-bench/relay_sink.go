package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Credentials the relay sink accepts.
const relaySinkUser, relaySinkPass = "bench", "bench-pass"

// runRelaySink is a submission relay for send -relay: go-smtp on loopback
// offering STARTTLS with the certificate and key in files (args), AUTH
// PLAIN over TLS, mail only when signed in. It prints its address first
// and, when stdin closes, the messages it accepted, the recipient domains
// they went to and the connections it took.
func runRelaySink(args []string, stdin io.Reader, stdout io.Writer) error {
	if len(args) != 2 {
		return errors.New("relay sink: want the certificate and key files")
	}
	cert, err := tls.LoadX509KeyPair(args[0], args[1])
	if err != nil {
		return err
	}
	b := &relaySinkBackend{domains: map[string]bool{}}
	s := smtp.NewServer(b)
	s.Domain = "relay.bench.test"
	s.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	s.ReadTimeout, s.WriteTimeout = time.Minute, time.Minute
	s.MaxMessageBytes = 10 << 20
	s.EnableSMTPUTF8 = true
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	go s.Serve(&relaySinkListener{Listener: l, n: &b.conns})
	fmt.Fprintln(stdout, l.Addr().String())
	io.Copy(io.Discard, stdin)
	s.Close()
	b.mu.Lock()
	defer b.mu.Unlock()
	fmt.Fprintln(stdout, b.msgs.Load(), len(b.domains), b.conns.Load())
	return nil
}

type relaySinkBackend struct {
	msgs, conns atomic.Int64
	mu          sync.Mutex
	domains     map[string]bool
}

func (b *relaySinkBackend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	return &relaySinkSession{b: b}, nil
}

type relaySinkListener struct {
	net.Listener
	n *atomic.Int64
}

func (l *relaySinkListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

type relaySinkSession struct {
	b      *relaySinkBackend
	authed bool
	domain string
}

var _ smtp.AuthSession = (*relaySinkSession)(nil)

func (s *relaySinkSession) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *relaySinkSession) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		if user != relaySinkUser || pass != relaySinkPass {
			return &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}, Message: "Authentication credentials invalid"}
		}
		s.authed = true
		return nil
	}), nil
}

func (s *relaySinkSession) Mail(string, *smtp.MailOptions) error {
	if !s.authed {
		return &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "Authentication required"}
	}
	return nil
}

func (s *relaySinkSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	_, s.domain, _ = strings.Cut(strings.ToLower(to), "@")
	return nil
}

func (s *relaySinkSession) Data(r io.Reader) error {
	if _, err := io.Copy(io.Discard, r); err != nil {
		return err
	}
	s.b.msgs.Add(1)
	s.b.mu.Lock()
	s.b.domains[s.domain] = true
	s.b.mu.Unlock()
	return nil
}

func (s *relaySinkSession) Reset()        {}
func (s *relaySinkSession) Logout() error { return nil }

// relaySinkCA makes a throwaway CA and a certificate it signs for
// 127.0.0.1, in dir: ca.pem (for SSL_CERT_FILE), cert.pem and key.pem.
func relaySinkCA(dir string) (caFile, certFile, keyFile string, err error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", "", err
	}
	now := time.Now()
	caTpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "herald-bench throwaway CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	caDER, err := x509.CreateCertificate(rand.Reader, caTpl, caTpl, &caKey.PublicKey, caKey)
	if err != nil {
		return "", "", "", err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return "", "", "", err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", "", err
	}
	tpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "relay.bench.test"},
		DNSNames: []string{"relay.bench.test"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return "", "", "", err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return "", "", "", err
	}
	caFile, certFile, keyFile = filepath.Join(dir, "ca.pem"), filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	for _, f := range []struct {
		path, typ string
		der       []byte
	}{{caFile, "CERTIFICATE", caDER}, {certFile, "CERTIFICATE", der}, {keyFile, "EC PRIVATE KEY", keyDER}} {
		if err := os.WriteFile(f.path, pem.EncodeToMemory(&pem.Block{Type: f.typ, Bytes: f.der}), 0o600); err != nil {
			return "", "", "", err
		}
	}
	return caFile, certFile, keyFile, nil
}
