package esp

import (
	"crypto/ecdsa"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/herald-mail/herald/mailer"
	"github.com/herald-mail/herald/mailer/bounce"
)

// verdict classifies a provider's report with the mailer's classifier for
// the category, keeping the provider's own hard/soft/complaint decision.
func verdict(kind bounce.Kind, rcpt string, code int, status, text string) bounce.Verdict {
	v := bounce.ClassifyReply(code, status, text)
	v.Kind, v.Recipient = kind, strings.ToLower(strings.TrimSpace(rcpt))
	return v
}

// ParseSendGridKey reads the public key SendGrid shows for a signed event
// webhook (base64 DER, as copied from the SendGrid console).
func ParseSendGridKey(b64 string) (*ecdsa.PublicKey, error) {
	der, err := base64.StdEncoding.DecodeString(strings.TrimSpace(b64))
	if err != nil {
		return nil, fmt.Errorf("esp: SendGrid public key is not base64: %w", err)
	}
	k, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, fmt.Errorf("esp: SendGrid public key: %w", err)
	}
	ek, ok := k.(*ecdsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("esp: SendGrid public key is not an ECDSA key")
	}
	return ek, nil
}

// VerifySendGrid checks the X-Twilio-Email-Event-Webhook-Signature (base64
// ASN.1 ECDSA over SHA-256 of timestamp + body) of a SendGrid event post.
func VerifySendGrid(pub *ecdsa.PublicKey, signature, timestamp string, body []byte) error {
	sig, err := base64.StdEncoding.DecodeString(signature)
	if err != nil || signature == "" || timestamp == "" {
		return fmt.Errorf("%w: missing or malformed SendGrid signature headers", ErrSignature)
	}
	h := sha256.New()
	h.Write([]byte(timestamp))
	h.Write(body)
	if !ecdsa.VerifyASN1(pub, h.Sum(nil), sig) {
		return fmt.Errorf("%w: SendGrid signature does not match", ErrSignature)
	}
	return nil
}

// SendGridEvents reads a SendGrid event webhook post (a JSON array):
// bounce (type bounce: hard; type blocked: soft) and spamreport events;
// other events (delivered, open, deferred, …) are skipped.
func SendGridEvents(body []byte) ([]mailer.Event, error) {
	var evs []struct {
		Email    string `json:"email"`
		Event    string `json:"event"`
		Type     string `json:"type"`
		Status   string `json:"status"`
		Reason   string `json:"reason"`
		SMTPID   string `json:"smtp-id"`
		BounceCl string `json:"bounce_classification"`
	}
	if err := json.Unmarshal(body, &evs); err != nil {
		return nil, fmt.Errorf("%w: a SendGrid post is a JSON array of events: %v", ErrMalformed, err)
	}
	var out []mailer.Event
	for _, e := range evs {
		if e.Email == "" {
			continue
		}
		ev := mailer.Event{MessageID: e.SMTPID, Source: mailer.Source{Via: "webhook:sendgrid"}}
		code, _ := bounce.ReplyCodes(e.Reason)
		switch {
		case e.Event == "bounce" && e.Type == "blocked":
			ev.Verdict = verdict(bounce.KindSoft, e.Email, code, e.Status, e.Reason)
		case e.Event == "bounce":
			ev.Verdict = verdict(bounce.KindHard, e.Email, code, e.Status, e.Reason)
		case e.Event == "spamreport":
			ev.Verdict, ev.FeedbackType = bounce.Verdict{Kind: bounce.KindComplaint, Recipient: strings.ToLower(e.Email)}, "abuse"
		default:
			continue
		}
		out = append(out, ev)
	}
	return out, nil
}

// PostmarkTokenOK compares a Postmark webhook secret (from the URL path or
// the basic-auth password) with the configured one in constant time.
func PostmarkTokenOK(got, want string) bool {
	return want != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// PostmarkEvents reads a Postmark bounce or spam-complaint webhook post.
func PostmarkEvents(body []byte) ([]mailer.Event, error) {
	var p struct {
		RecordType  string
		Type        string
		Email       string
		Description string
		Details     string
		MessageID   string
		Headers     []struct{ Name, Value string }
	}
	if err := json.Unmarshal(body, &p); err != nil {
		return nil, fmt.Errorf("%w: a Postmark post is one JSON object: %v", ErrMalformed, err)
	}
	if p.RecordType == "" || p.Email == "" {
		return nil, fmt.Errorf("%w: a Postmark post needs RecordType and Email", ErrMalformed)
	}
	ev := mailer.Event{Source: mailer.Source{Via: "webhook:postmark"}}
	for _, h := range p.Headers {
		if strings.EqualFold(h.Name, "Message-ID") {
			ev.MessageID = h.Value
		}
	}
	code, status := bounce.ReplyCodes(p.Details)
	text := strings.TrimSpace(p.Description + " " + p.Details)
	switch {
	case p.RecordType == "SpamComplaint" || p.Type == "SpamComplaint":
		ev.Verdict, ev.FeedbackType = bounce.Verdict{Kind: bounce.KindComplaint, Recipient: strings.ToLower(p.Email)}, "abuse"
	case p.RecordType != "Bounce":
		return nil, nil
	case p.Type == "HardBounce" || p.Type == "BadEmailAddress":
		ev.Verdict = verdict(bounce.KindHard, p.Email, code, status, text)
	case p.Type == "SoftBounce" || p.Type == "Transient" || p.Type == "DnsError" || p.Type == "Blocked":
		ev.Verdict = verdict(bounce.KindSoft, p.Email, code, status, text)
	default: // auto-responders, subscribe/unsubscribe requests, challenges…
		return nil, nil
	}
	return []mailer.Event{ev}, nil
}

// MailgunPost is a Mailgun webhook post: the signature block and one event.
type MailgunPost struct {
	Signature struct {
		Timestamp string `json:"timestamp"`
		Token     string `json:"token"`
		Signature string `json:"signature"`
	} `json:"signature"`
	EventData struct {
		Event     string `json:"event"`
		Severity  string `json:"severity"`
		Recipient string `json:"recipient"`
		Message   struct {
			Headers struct {
				MessageID string `json:"message-id"`
			} `json:"headers"`
		} `json:"message"`
		DeliveryStatus struct {
			Code        int    `json:"code"`
			Message     string `json:"message"`
			Description string `json:"description"`
		} `json:"delivery-status"`
	} `json:"event-data"`
}

// ParseMailgun reads a Mailgun webhook post.
func ParseMailgun(body []byte) (*MailgunPost, error) {
	var p MailgunPost
	if err := json.Unmarshal(body, &p); err != nil {
		return nil, fmt.Errorf("%w: a Mailgun post is one JSON object: %v", ErrMalformed, err)
	}
	if p.EventData.Event == "" {
		return nil, fmt.Errorf("%w: a Mailgun post needs event-data.event", ErrMalformed)
	}
	return &p, nil
}

// VerifyMailgun checks the post's HMAC-SHA256 of timestamp + token with the
// webhook signing key, and that the timestamp is within maxAge of now.
func VerifyMailgun(p *MailgunPost, key string, now time.Time, maxAge time.Duration) error {
	s := p.Signature
	mac := hmac.New(sha256.New, []byte(key))
	mac.Write([]byte(s.Timestamp + s.Token))
	want := hex.EncodeToString(mac.Sum(nil))
	if key == "" || s.Signature == "" || !hmac.Equal([]byte(want), []byte(strings.ToLower(s.Signature))) {
		return fmt.Errorf("%w: Mailgun signature does not match", ErrSignature)
	}
	ts, err := strconv.ParseInt(s.Timestamp, 10, 64)
	if err != nil || now.Sub(time.Unix(ts, 0)).Abs() > maxAge {
		return fmt.Errorf("%w: Mailgun timestamp is missing or too far from now", ErrSignature)
	}
	return nil
}

// Events returns the post's bounce or complaint: failed events (permanent:
// hard, temporary: soft) and complained events.
func (p *MailgunPost) Events() []mailer.Event {
	d := p.EventData
	ev := mailer.Event{MessageID: d.Message.Headers.MessageID, Source: mailer.Source{Via: "webhook:mailgun"}}
	text := strings.TrimSpace(d.DeliveryStatus.Message + " " + d.DeliveryStatus.Description)
	_, status := bounce.ReplyCodes(text)
	switch {
	case d.Event == "complained":
		ev.Verdict, ev.FeedbackType = bounce.Verdict{Kind: bounce.KindComplaint, Recipient: strings.ToLower(d.Recipient)}, "abuse"
	case d.Event == "failed" && d.Severity == "permanent":
		ev.Verdict = verdict(bounce.KindHard, d.Recipient, d.DeliveryStatus.Code, status, text)
	case d.Event == "failed" && d.Severity == "temporary":
		ev.Verdict = verdict(bounce.KindSoft, d.Recipient, d.DeliveryStatus.Code, status, text)
	default:
		return nil
	}
	if ev.Verdict.Recipient == "" {
		return nil
	}
	return []mailer.Event{ev}
}
