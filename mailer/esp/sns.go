// Package esp authenticates and reads the bounce and complaint webhooks of
// email service providers (Amazon SES through SNS, SendGrid, Postmark,
// Mailgun) and turns them into mailer.Events, which the mailer's Recorder
// applies like bounces received by mail.
package esp

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/herald-mail/herald/mailer"
	"github.com/herald-mail/herald/mailer/bounce"
)

// ErrSignature is returned (wrapped) when a webhook's authentication fails.
var ErrSignature = errors.New("esp: signature check failed")

// ErrMalformed is returned (wrapped) when a webhook's body cannot be read.
var ErrMalformed = errors.New("esp: malformed body")

// SNSMessage is an Amazon SNS HTTP(S) delivery.
type SNSMessage struct {
	Type             string
	MessageID        string `json:"MessageId"`
	Token            string
	TopicArn         string
	Subject          string
	Message          string
	SubscribeURL     string
	Timestamp        string
	SignatureVersion string
	Signature        string
	SigningCertURL   string
}

// ParseSNS reads an SNS delivery.
func ParseSNS(body []byte) (*SNSMessage, error) {
	var m SNSMessage
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, fmt.Errorf("%w: not an SNS message: %v", ErrMalformed, err)
	}
	if m.Type == "" || m.Signature == "" || m.SigningCertURL == "" {
		return nil, fmt.Errorf("%w: an SNS message needs Type, Signature and SigningCertURL", ErrMalformed)
	}
	return &m, nil
}

// stringToSign builds the text SNS signs: the message's fields, in a fixed
// order for each message type, each as "Name\nvalue\n".
func (m *SNSMessage) stringToSign() (string, error) {
	var fields []string
	switch m.Type {
	case "Notification":
		fields = []string{"Message", m.Message, "MessageId", m.MessageID}
		if m.Subject != "" {
			fields = append(fields, "Subject", m.Subject)
		}
		fields = append(fields, "Timestamp", m.Timestamp, "TopicArn", m.TopicArn, "Type", m.Type)
	case "SubscriptionConfirmation", "UnsubscribeConfirmation":
		fields = []string{"Message", m.Message, "MessageId", m.MessageID, "SubscribeURL", m.SubscribeURL,
			"Timestamp", m.Timestamp, "Token", m.Token, "TopicArn", m.TopicArn, "Type", m.Type}
	default:
		return "", fmt.Errorf("%w: unknown SNS message type %q", ErrMalformed, m.Type)
	}
	var b strings.Builder
	for i := 0; i < len(fields); i += 2 {
		b.WriteString(fields[i] + "\n" + fields[i+1] + "\n")
	}
	return b.String(), nil
}

// DefaultSNSHost matches the hosts SNS signing certificates and
// subscription URLs live on.
var DefaultSNSHost = regexp.MustCompile(`^sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$`)

// SNSOptions configure an SNS verifier.
type SNSOptions struct {
	// TopicARNs are the topics whose messages are accepted; messages of
	// any other topic are refused even when correctly signed (anyone can
	// sign messages of their own topic). Zero: every message is refused.
	TopicARNs []string
	// Host matches the host (with port, if the URL has one) of
	// SigningCertURL and SubscribeURL; only HTTPS URLs on matching hosts
	// are fetched. Zero: DefaultSNSHost.
	Host *regexp.Regexp
	// Client fetches signing certificates and confirms subscriptions.
	// Zero: a client with a 10-second timeout.
	Client *http.Client
	// MaxAge refuses messages whose Timestamp is older (replays). Zero:
	// one hour.
	MaxAge time.Duration
	// Now is the clock. Zero: time.Now.
	Now func() time.Time
}

// SNSVerifier checks SNS message signatures, caching certificates by URL.
type SNSVerifier struct {
	o     SNSOptions
	mu    sync.Mutex
	certs map[string]*x509.Certificate
}

// NewSNSVerifier returns a verifier with o's defaults filled in.
func NewSNSVerifier(o SNSOptions) *SNSVerifier {
	if o.Host == nil {
		o.Host = DefaultSNSHost
	}
	if o.Client == nil {
		o.Client = &http.Client{Timeout: 10 * time.Second}
	}
	if o.MaxAge <= 0 {
		o.MaxAge = time.Hour
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &SNSVerifier{o: o, certs: map[string]*x509.Certificate{}}
}

// allowedURL reports whether raw is an HTTPS URL on an allowed host.
func (v *SNSVerifier) allowedURL(raw string) (*url.URL, bool) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "https" || u.User != nil || !v.o.Host.MatchString(strings.ToLower(u.Host)) {
		return nil, false
	}
	return u, true
}

// Verify checks m's topic, age and signature (SignatureVersion 1:
// SHA1withRSA, 2: SHA256withRSA) against the certificate at
// SigningCertURL, fetched only from an allowed host.
func (v *SNSVerifier) Verify(ctx context.Context, m *SNSMessage) error {
	if !slices.Contains(v.o.TopicARNs, m.TopicArn) {
		return fmt.Errorf("%w: topic %q is not configured", ErrSignature, m.TopicArn)
	}
	if ts, err := time.Parse(time.RFC3339, m.Timestamp); err != nil || v.o.Now().Sub(ts) > v.o.MaxAge {
		return fmt.Errorf("%w: timestamp %q is missing or too old", ErrSignature, m.Timestamp)
	}
	var (
		hash crypto.Hash
		sum  []byte
	)
	text, err := m.stringToSign()
	if err != nil {
		return err
	}
	switch m.SignatureVersion {
	case "1":
		h := sha1.Sum([]byte(text))
		hash, sum = crypto.SHA1, h[:]
	case "2":
		h := sha256.Sum256([]byte(text))
		hash, sum = crypto.SHA256, h[:]
	default:
		return fmt.Errorf("%w: unknown SignatureVersion %q", ErrSignature, m.SignatureVersion)
	}
	sig, err := base64.StdEncoding.DecodeString(m.Signature)
	if err != nil {
		return fmt.Errorf("%w: signature is not base64", ErrSignature)
	}
	cert, err := v.cert(ctx, m.SigningCertURL)
	if err != nil {
		return err
	}
	pub, ok := cert.PublicKey.(*rsa.PublicKey)
	if !ok {
		return fmt.Errorf("%w: signing certificate has no RSA key", ErrSignature)
	}
	if err := rsa.VerifyPKCS1v15(pub, hash, sum, sig); err != nil {
		return fmt.Errorf("%w: %v", ErrSignature, err)
	}
	return nil
}

// cert returns the signing certificate at raw, from the cache or fetched.
func (v *SNSVerifier) cert(ctx context.Context, raw string) (*x509.Certificate, error) {
	u, ok := v.allowedURL(raw)
	if !ok || !strings.HasSuffix(u.Path, ".pem") {
		return nil, fmt.Errorf("%w: signing certificate URL %q is not an HTTPS .pem on an SNS host", ErrSignature, raw)
	}
	v.mu.Lock()
	c := v.certs[raw]
	v.mu.Unlock()
	if c != nil {
		return c, nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := v.o.Client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("esp: fetch SNS signing certificate: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil || resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("esp: fetch SNS signing certificate: status %d: %v", resp.StatusCode, err)
	}
	block, _ := pem.Decode(body)
	if block == nil {
		return nil, fmt.Errorf("%w: signing certificate is not PEM", ErrSignature)
	}
	c, err = x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: signing certificate: %v", ErrSignature, err)
	}
	if now := v.o.Now(); now.Before(c.NotBefore) || now.After(c.NotAfter) {
		return nil, fmt.Errorf("%w: signing certificate is not valid now", ErrSignature)
	}
	v.mu.Lock()
	v.certs[raw] = c
	v.mu.Unlock()
	return c, nil
}

// Confirm visits a verified SubscriptionConfirmation's SubscribeURL when it
// is on an allowed host, and reports whether it did.
func (v *SNSVerifier) Confirm(ctx context.Context, m *SNSMessage) (bool, error) {
	u, ok := v.allowedURL(m.SubscribeURL)
	if !ok {
		return false, nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return false, err
	}
	resp, err := v.o.Client.Do(req)
	if err != nil {
		return false, fmt.Errorf("esp: confirm SNS subscription: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return false, fmt.Errorf("esp: confirm SNS subscription: status %d", resp.StatusCode)
	}
	return true, nil
}

// SESEvents reads the SES bounce or complaint notification an SNS
// Notification carries, with the same SES parser as SES notifications
// received by mail, and returns one event per recipient. Delivery
// notifications give no events.
func SESEvents(m *SNSMessage) ([]mailer.Event, error) {
	var probe struct {
		NotificationType string `json:"notificationType"`
	}
	if err := json.Unmarshal([]byte(m.Message), &probe); err != nil || probe.NotificationType == "" {
		return nil, fmt.Errorf("%w: the SNS Message is not an SES notification", ErrMalformed)
	}
	msg := append([]byte("Content-Type: text/plain; charset=utf-8\r\n\r\n"), m.Message...)
	rep, err := bounce.Parse(bytes.NewReader(msg))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return reportEvents(rep, "webhook:ses"), nil
}

// reportEvents turns a parsed report's verdicts into events (the recorder
// ignores those that are neither bounces nor complaints).
func reportEvents(rep *bounce.Report, via string) []mailer.Event {
	var out []mailer.Event
	for _, v := range rep.Recipients {
		out = append(out, mailer.Event{Verdict: v, FeedbackType: rep.FeedbackType, MessageID: rep.MessageID,
			RemoteMTA: rep.ReportingMTA, Source: mailer.Source{Via: via}})
	}
	return out
}
