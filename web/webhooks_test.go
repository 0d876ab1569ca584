package web

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/herald-mail/herald/internal/testdb"
	"github.com/herald-mail/herald/internal/token"
	"github.com/herald-mail/herald/mailer"
	"github.com/herald-mail/herald/mailer/esp"
	"github.com/herald-mail/herald/models"
)

// hookWorld is a database where one campaign went to six people, and a
// webhook server in front of it.
type hookWorld struct {
	s   *models.Store
	url string
	del map[string][]int64
}

func newHookWorld(t *testing.T, s *models.Store, o WebhookOptions) *hookWorld {
	t.Helper()
	w := &hookWorld{s: s}
	w.del = sendTo(t, s, []string{"alice@example.net", "bob@example.net", "carol@example.org", "dave@example.org", "erin@example.org"}, 1)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	rec, err := mailer.NewRecorder(s, mailer.InboundOptions{Keys: token.NewKeyring("webhook test"), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	e := echo.New()
	MountWebhooks(e, NewWebhooks(rec, o, log))
	hs := httptest.NewServer(e)
	t.Cleanup(hs.Close)
	w.url = hs.URL
	return w
}

func (w *hookWorld) msgID(email string) string {
	return sentMessageID(w.del[email][0])
}

func (w *hookWorld) post(t *testing.T, path, body string, hdr map[string]string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", w.url+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	if u, p, ok := strings.Cut(hdr["basic"], ":"); ok {
		req.SetBasicAuth(u, p)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (w *hookWorld) suppression(t *testing.T, email string) string {
	t.Helper()
	var r []string
	if err := w.s.DB().Raw("SELECT reason FROM suppressions WHERE value_hash = ?", models.SuppressionHash(email)).Scan(&r).Error; err != nil {
		t.Fatal(err)
	}
	if len(r) == 0 {
		return ""
	}
	return r[0]
}

func (w *hookWorld) bounces(t *testing.T) int64 {
	t.Helper()
	var n int64
	w.s.DB().Raw("SELECT COUNT(*) FROM bounces").Scan(&n)
	return n
}

// snsSigner is a stand-in for Amazon SNS: its own RSA key and a
// self-signed certificate served over TLS.
type snsSigner struct {
	key      *rsa.PrivateKey
	certURL  string
	srv      *httptest.Server
	confirms atomic.Int32
}

func newSNSSigner(t *testing.T) *snsSigner {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "sns.us-east-1.amazonaws.com"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	s := &snsSigner{key: key}
	s.srv = httptest.NewTLSServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/SimpleNotificationService-test.pem":
			rw.Write(certPEM)
		case "/confirm":
			s.confirms.Add(1)
			rw.Write([]byte("<ConfirmSubscriptionResponse/>"))
		default:
			http.NotFound(rw, r)
		}
	}))
	t.Cleanup(s.srv.Close)
	s.certURL = s.srv.URL + "/SimpleNotificationService-test.pem"
	return s
}

// sign fills in the signature fields exactly as SNS does.
func (s *snsSigner) sign(t *testing.T, m map[string]string, version string) string {
	t.Helper()
	keys := []string{"Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"}
	if m["Type"] != "Notification" {
		keys = []string{"Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"}
	}
	var b strings.Builder
	for _, k := range keys {
		if v, ok := m[k]; ok && !(k == "Subject" && v == "") {
			b.WriteString(k + "\n" + v + "\n")
		}
	}
	var sig []byte
	var err error
	if version == "1" {
		h := sha1.Sum([]byte(b.String()))
		sig, err = rsa.SignPKCS1v15(rand.Reader, s.key, crypto.SHA1, h[:])
	} else {
		h := sha256.Sum256([]byte(b.String()))
		sig, err = rsa.SignPKCS1v15(rand.Reader, s.key, crypto.SHA256, h[:])
	}
	if err != nil {
		t.Fatal(err)
	}
	m["SignatureVersion"], m["Signature"] = version, base64.StdEncoding.EncodeToString(sig)
	if _, ok := m["SigningCertURL"]; !ok {
		m["SigningCertURL"] = s.certURL
	}
	out, _ := json.Marshal(m)
	return string(out)
}

const topic = "arn:aws:sns:us-east-1:123456789012:herald-bounces"

func snsNotification(message string) map[string]string {
	return map[string]string{"Type": "Notification", "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324", "TopicArn": topic,
		"Message": message, "Timestamp": time.Now().UTC().Format("2006-01-02T15:04:05.000Z"),
		"UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe"}
}

func TestSESWebhook(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		sns := newSNSSigner(t)
		w := newHookWorld(t, s, WebhookOptions{SNS: esp.SNSOptions{TopicARNs: []string{topic},
			Host: regexp.MustCompile(`^127\.0\.0\.1:\d+$`), Client: sns.srv.Client()}})

		bounceJSON := `{"notificationType":"Bounce","bounce":{"feedbackId":"0100017a-1","bounceType":"Permanent","bounceSubType":"General",` +
			`"bouncedRecipients":[{"emailAddress":"alice@example.net","action":"failed","status":"5.1.1","diagnosticCode":"smtp; 550 5.1.1 user unknown"}],` +
			`"timestamp":"2025-03-04T09:12:44.000Z","reportingMTA":"dsn; a8-1.smtp-out.amazonses.com"},` +
			`"mail":{"timestamp":"2025-03-04T09:12:40.000Z","source":"news@example.com","messageId":"0100017a-ses",` +
			`"destination":["alice@example.net"],"commonHeaders":{"from":["news@example.com"],"to":["alice@example.net"],"messageId":"` + w.msgID("alice@example.net") + `","subject":"March news"}}}`
		// SignatureVersion 1 (SHA1withRSA).
		if code, body := w.post(t, "/webhooks/ses", sns.sign(t, snsNotification(bounceJSON), "1"), nil); code != 200 {
			t.Fatalf("SES bounce: %d %s", code, body)
		}
		if got := w.suppression(t, "alice@example.net"); got != models.SuppressHardBounce {
			t.Errorf("alice suppression = %q, want hard_bounce", got)
		}
		if st, _ := s.CampaignBounceStats(context.Background(), mustCampaign(t, s, w.del["alice@example.net"][0])); st.Hard != 1 {
			t.Errorf("campaign hard bounces = %+v, want 1", st)
		}

		// SignatureVersion 2 (SHA256withRSA); a complaint with no Message-ID
		// is matched by the recipient's latest delivery.
		complaintJSON := `{"notificationType":"Complaint","complaint":{"feedbackId":"0100017a-2","complaintSubType":null,` +
			`"complainedRecipients":[{"emailAddress":"bob@example.net"}],"timestamp":"2025-03-05T14:20:11.000Z","userAgent":"ExampleCorp Feedback Loop (V0.01)",` +
			`"complaintFeedbackType":"abuse","arrivalDate":"2025-03-05T14:19:58.000Z"},"mail":{"timestamp":"2025-03-05T14:19:55.000Z","source":"news@example.com",` +
			`"messageId":"0100017a-ses2","destination":["bob@example.net"]}}`
		if code, body := w.post(t, "/webhooks/ses", sns.sign(t, snsNotification(complaintJSON), "2"), nil); code != 200 {
			t.Fatalf("SES complaint: %d %s", code, body)
		}
		if got := w.suppression(t, "bob@example.net"); got != models.SuppressComplaint {
			t.Errorf("bob suppression = %q, want complaint", got)
		}

		before := w.bounces(t)
		carol := strings.ReplaceAll(bounceJSON, "alice@example.net", "carol@example.org")
		// Tampered after signing.
		tampered := sns.sign(t, snsNotification(bounceJSON), "2")
		tampered = strings.Replace(tampered, "alice@example.net", "carol@example.org", 1)
		// Signed by someone else's key.
		other := newSNSSigner(t)
		forged := other.sign(t, snsNotification(carol), "2")
		forged = strings.Replace(forged, jsonEscape(other.certURL), jsonEscape(sns.certURL), 1)
		// A certificate on a host that is not SNS's.
		m := snsNotification(carol)
		m["SigningCertURL"] = "https://attacker.example/SimpleNotificationService-test.pem"
		offHost := sns.sign(t, m, "2")
		// Plain HTTP certificate URL.
		m = snsNotification(carol)
		m["SigningCertURL"] = strings.Replace(sns.certURL, "https://", "http://", 1)
		plain := sns.sign(t, m, "2")
		// A topic that is not ours, correctly signed.
		m = snsNotification(carol)
		m["TopicArn"] = "arn:aws:sns:us-east-1:999999999999:someone-else"
		wrongTopic := sns.sign(t, m, "2")
		// An old message (replay).
		m = snsNotification(carol)
		m["Timestamp"] = time.Now().Add(-3 * time.Hour).UTC().Format(time.RFC3339)
		old := sns.sign(t, m, "1")
		for name, body := range map[string]string{"tampered": tampered, "forged": forged, "off-host certificate": offHost,
			"http certificate": plain, "wrong topic": wrongTopic, "replayed": old} {
			if code, resp := w.post(t, "/webhooks/ses", body, nil); code != 401 {
				t.Errorf("%s: status %d (%s), want 401", name, code, resp)
			}
		}
		if got := w.suppression(t, "carol@example.org"); got != "" || w.bounces(t) != before {
			t.Errorf("a refused message changed something: carol = %q, bounces %d → %d", got, before, w.bounces(t))
		}
		for name, body := range map[string]string{"not JSON": "{nope", "no signature": `{"Type":"Notification"}`,
			"not SES": sns.sign(t, snsNotification(`{"hello":"world"}`), "2")} {
			if code, resp := w.post(t, "/webhooks/ses", body, nil); code != 400 || !strings.Contains(resp, "message") {
				t.Errorf("%s: status %d (%s), want 400 with a message", name, code, resp)
			}
		}

		// Subscription confirmations: visited only on an allowed host.
		sub := map[string]string{"Type": "SubscriptionConfirmation", "MessageId": "165545c9-2a5c-472c-8df2-7ff2be2b3b1b",
			"Token": "2336412f37f", "TopicArn": topic, "Message": "You have chosen to subscribe to the topic.",
			"SubscribeURL": sns.srv.URL + "/confirm?Action=ConfirmSubscription&Token=2336412f37f", "Timestamp": time.Now().UTC().Format(time.RFC3339)}
		if code, _ := w.post(t, "/webhooks/ses", sns.sign(t, sub, "1"), nil); code != 200 || sns.confirms.Load() != 1 {
			t.Errorf("confirmation: status %d, confirms %d; want 200 and 1", code, sns.confirms.Load())
		}
		evil := map[string]string{}
		for k, v := range sub {
			evil[k] = v
		}
		evil["SubscribeURL"] = other.srv.URL + "/confirm"
		if code, _ := w.post(t, "/webhooks/ses", sns.sign(t, evil, "1"), nil); code != 200 || sns.confirms.Load() != 1 {
			t.Errorf("confirmation to another host: status %d, confirms %d", code, sns.confirms.Load())
		}
	})
}

func jsonEscape(s string) string {
	b, _ := json.Marshal(s)
	return strings.Trim(string(b), `"`)
}

// mustCampaign returns a delivery's campaign.
func mustCampaign(t *testing.T, s *models.Store, deliveryID int64) int64 {
	t.Helper()
	d, err := s.Delivery(context.Background(), deliveryID)
	if err != nil || d.CampaignID == nil {
		t.Fatalf("delivery %d: %v", deliveryID, err)
	}
	return *d.CampaignID
}

func TestSendGridWebhook(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		der, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
		w := newHookWorld(t, s, WebhookOptions{SendGridKey: base64.StdEncoding.EncodeToString(der)})
		sign := func(ts, body string) map[string]string {
			h := sha256.Sum256([]byte(ts + body))
			sig, _ := ecdsa.SignASN1(rand.Reader, key, h[:])
			return map[string]string{"X-Twilio-Email-Event-Webhook-Signature": base64.StdEncoding.EncodeToString(sig),
				"X-Twilio-Email-Event-Webhook-Timestamp": ts}
		}
		body := `[{"email":"carol@example.org","timestamp":1741079564,"smtp-id":"` + w.msgID("carol@example.org") + `","event":"bounce",` +
			`"category":["newsletter"],"sg_event_id":"6g4ZI7SA-xmRDv57GoPIPw==","sg_message_id":"14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0",` +
			`"reason":"550 5.1.1 The email account that you tried to reach does not exist.","status":"5.1.1","type":"bounce","tls":1},` +
			`{"email":"erin@example.org","timestamp":1741079565,"smtp-id":"<x@y>","event":"delivered","response":"250 OK"},` +
			`{"email":"dave@example.org","timestamp":1741079566,"event":"spamreport","sg_event_id":"x","sg_message_id":"y"}]`
		ts := fmt.Sprint(time.Now().Unix())
		code, resp := w.post(t, "/webhooks/sendgrid", body, sign(ts, body))
		if code != 200 || !strings.Contains(resp, `"applied":2`) {
			t.Fatalf("SendGrid post: %d %s", code, resp)
		}
		if got := w.suppression(t, "carol@example.org"); got != models.SuppressHardBounce {
			t.Errorf("carol = %q, want hard_bounce", got)
		}
		if got := w.suppression(t, "dave@example.org"); got != models.SuppressComplaint {
			t.Errorf("dave = %q, want complaint", got)
		}
		if got := w.suppression(t, "erin@example.org"); got != "" {
			t.Errorf("delivered erin suppressed: %q", got)
		}
		before := w.bounces(t)
		evil := strings.ReplaceAll(body, "carol@example.org", "alice@example.net")
		for name, hdr := range map[string]map[string]string{"signature of another body": sign(ts, body), "no headers": nil,
			"other timestamp": func() map[string]string {
				h := sign(ts, evil)
				h["X-Twilio-Email-Event-Webhook-Timestamp"] = "1"
				return h
			}()} {
			if code, _ := w.post(t, "/webhooks/sendgrid", evil, hdr); code != 401 {
				t.Errorf("%s: status %d, want 401", name, code)
			}
		}
		if w.suppression(t, "alice@example.net") != "" || w.bounces(t) != before {
			t.Error("a refused post changed something")
		}
		if code, resp := w.post(t, "/webhooks/sendgrid", `{"not":"an array"}`, sign(ts, `{"not":"an array"}`)); code != 400 || !strings.Contains(resp, "JSON array") {
			t.Errorf("malformed: %d %s, want 400 with a message", code, resp)
		}
	})
}

func TestPostmarkWebhook(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		w := newHookWorld(t, s, WebhookOptions{PostmarkToken: "pm-secret-123"})
		hard := `{"RecordType":"Bounce","MessageStream":"outbound","ID":4323372036854775807,"Type":"HardBounce","TypeCode":1,"Name":"Hard bounce",` +
			`"Tag":"Test","MessageID":"883953f4-6105-42a2-a16a-77a8eac79483","Metadata":{"a_key":"a_value"},"ServerID":23,` +
			`"Description":"The server was unable to deliver your message (ex: unknown user, mailbox not found).",` +
			`"Details":"smtp;550 5.1.1 The email account that you tried to reach does not exist","Email":"alice@example.net","From":"news@example.com",` +
			`"BouncedAt":"2025-03-04T16:33:54.9070259Z","DumpAvailable":true,"Inactive":true,"CanActivate":true,"Subject":"March news","Content":"<dump>"}`
		complaint := `{"RecordType":"SpamComplaint","MessageStream":"outbound","ID":42,"Type":"SpamComplaint","TypeCode":512,"Name":"Spam complaint",` +
			`"Tag":"Test","MessageID":"00000000-0000-0000-0000-000000000000","Metadata":{},"ServerID":1234,"Description":"",` +
			`"Details":"Test spam complaint details","Email":"bob@example.net","From":"news@example.com","BouncedAt":"2025-03-05T16:33:54.9070259Z",` +
			`"DumpAvailable":true,"Inactive":true,"CanActivate":false,"Subject":"March news","Content":"<Abuse report dump>"}`
		if code, resp := w.post(t, "/webhooks/postmark/pm-secret-123", hard, nil); code != 200 {
			t.Fatalf("Postmark bounce: %d %s", code, resp)
		}
		if code, resp := w.post(t, "/webhooks/postmark", complaint, map[string]string{"basic": "postmark:pm-secret-123"}); code != 200 {
			t.Fatalf("Postmark complaint (basic auth): %d %s", code, resp)
		}
		if got := w.suppression(t, "alice@example.net"); got != models.SuppressHardBounce {
			t.Errorf("alice = %q, want hard_bounce", got)
		}
		if got := w.suppression(t, "bob@example.net"); got != models.SuppressComplaint {
			t.Errorf("bob = %q, want complaint", got)
		}
		evil := strings.ReplaceAll(hard, "alice@example.net", "carol@example.org")
		for name, c := range map[string]struct {
			path string
			hdr  map[string]string
		}{"wrong token": {"/webhooks/postmark/pm-secret-124", nil}, "no auth": {"/webhooks/postmark", nil},
			"wrong password": {"/webhooks/postmark", map[string]string{"basic": "postmark:nope"}}} {
			if code, _ := w.post(t, c.path, evil, c.hdr); code != 401 {
				t.Errorf("%s: status %d, want 401", name, code)
			}
		}
		if w.suppression(t, "carol@example.org") != "" {
			t.Error("a refused post suppressed carol")
		}
		if code, resp := w.post(t, "/webhooks/postmark/pm-secret-123", `{"RecordType":`, nil); code != 400 || !strings.Contains(resp, "Postmark") {
			t.Errorf("malformed: %d %s, want 400 with a message", code, resp)
		}
	})
}

func TestMailgunWebhook(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		const key = "key-3ax6xnjp29jd6fds4gc373sgvjxteol0"
		w := newHookWorld(t, s, WebhookOptions{MailgunSigningKey: key})
		post := func(signKey, event string) string {
			ts, tok := fmt.Sprint(time.Now().Unix()), fmt.Sprintf("c0a5d1c3e3d1a4f1b56ad3f5d1b2a9e1f0c7e5a4b3%d", time.Now().UnixNano()) // a new token per post, as Mailgun sends
			mac := hmac.New(sha256.New, []byte(signKey))
			mac.Write([]byte(ts + tok))
			return `{"signature":{"timestamp":"` + ts + `","token":"` + tok + `","signature":"` + hex.EncodeToString(mac.Sum(nil)) + `"},"event-data":` + event + `}`
		}
		failed := `{"event":"failed","id":"G9Bn5sl1TC6nu79C8C0bwg","timestamp":1521233123.501324,"log-level":"error","severity":"permanent",` +
			`"reason":"bounce","recipient":"erin@example.org","recipient-domain":"example.org","envelope":{"sender":"bounce@herald.test","transport":"smtp","targets":"erin@example.org"},` +
			`"message":{"headers":{"to":"Erin <erin@example.org>","message-id":"` + strings.Trim(w.msgID("erin@example.org"), "<>") + `","from":"news@example.com","subject":"March news"},"attachments":[],"size":111},` +
			`"delivery-status":{"attempt-no":1,"message":"550 5.1.1 No such user","code":550,"description":"","session-seconds":0.4,"mx-host":"mx.example.org"},"flags":{"is-routed":false}}`
		complained := `{"event":"complained","id":"-Agny091SquKnsrW2NEKUA","timestamp":1521233123.501324,"log-level":"warn","recipient":"dave@example.org",` +
			`"message":{"headers":{"to":"dave@example.org","message-id":"20130503192659.13651.20287@herald.test","from":"news@example.com","subject":"March news"},"size":111}}`
		if code, resp := w.post(t, "/webhooks/mailgun", post(key, failed), nil); code != 200 {
			t.Fatalf("Mailgun failed: %d %s", code, resp)
		}
		if code, resp := w.post(t, "/webhooks/mailgun", post(key, complained), nil); code != 200 {
			t.Fatalf("Mailgun complained: %d %s", code, resp)
		}
		if got := w.suppression(t, "erin@example.org"); got != models.SuppressHardBounce {
			t.Errorf("erin = %q, want hard_bounce", got)
		}
		if got := w.suppression(t, "dave@example.org"); got != models.SuppressComplaint {
			t.Errorf("dave = %q, want complaint", got)
		}
		if d, _ := s.Delivery(context.Background(), w.del["erin@example.org"][0]); d.Status != models.DeliveryBounced {
			t.Errorf("erin's delivery status = %q, want bounced (matched by Message-ID)", d.Status)
		}
		evil := strings.ReplaceAll(failed, "erin@example.org", "carol@example.org")
		if code, _ := w.post(t, "/webhooks/mailgun", post("wrong key", evil), nil); code != 401 {
			t.Errorf("wrong key: status %d, want 401", code)
		}
		if w.suppression(t, "carol@example.org") != "" {
			t.Error("a refused post suppressed carol")
		}
		if code, resp := w.post(t, "/webhooks/mailgun", `{"signature":{}}`, nil); code != 400 || !strings.Contains(resp, "event-data") {
			t.Errorf("malformed: %d %s, want 400 with a message", code, resp)
		}
	})
}

// A provider without a configured secret has no endpoint at all.
func TestWebhooksOffWithoutSecrets(t *testing.T) {
	w := newHookWorld(t, testdb.SQLite(t), WebhookOptions{})
	for _, p := range []string{"/webhooks/ses", "/webhooks/sendgrid", "/webhooks/postmark/x", "/webhooks/mailgun"} {
		if code, _ := w.post(t, p, "{}", nil); code != 404 {
			t.Errorf("POST %s without configuration: status %d, want 404", p, code)
		}
	}
}

// Signed posts older than five minutes are refused, and a post accepted
// once is refused when it comes again (remembered in the database, so on
// every node).
func TestWebhookReplays(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		der, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
		const mgKey = "key-replay"
		w := newHookWorld(t, s, WebhookOptions{SendGridKey: base64.StdEncoding.EncodeToString(der), MailgunSigningKey: mgKey, Replays: s})
		sgSign := func(ts, body string) map[string]string {
			h := sha256.Sum256([]byte(ts + body))
			sig, _ := ecdsa.SignASN1(rand.Reader, key, h[:])
			return map[string]string{"X-Twilio-Email-Event-Webhook-Signature": base64.StdEncoding.EncodeToString(sig),
				"X-Twilio-Email-Event-Webhook-Timestamp": ts}
		}
		sg := `[{"email":"carol@example.org","smtp-id":"` + w.msgID("carol@example.org") + `","event":"bounce","reason":"550 5.1.1 no such user","status":"5.1.1","type":"bounce"}]`
		mgPost := func(ts time.Time, tok string) string {
			mac := hmac.New(sha256.New, []byte(mgKey))
			mac.Write([]byte(fmt.Sprint(ts.Unix()) + tok))
			return `{"signature":{"timestamp":"` + fmt.Sprint(ts.Unix()) + `","token":"` + tok + `","signature":"` + hex.EncodeToString(mac.Sum(nil)) +
				`"},"event-data":{"event":"complained","recipient":"dave@example.org","message":{"headers":{"message-id":"` + strings.Trim(w.msgID("dave@example.org"), "<>") + `"}}}}`
		}
		now := time.Now()
		old := fmt.Sprint(now.Add(-6 * time.Minute).Unix())
		fresh := fmt.Sprint(now.Unix())
		steps := []struct {
			name, path, body string
			hdr              map[string]string
			want             int
		}{
			{"SendGrid, six minutes old", "/webhooks/sendgrid", sg, sgSign(old, sg), 401},
			{"SendGrid, fresh", "/webhooks/sendgrid", sg, sgSign(fresh, sg), 200},
			{"SendGrid, the same post again", "/webhooks/sendgrid", sg, sgSign(fresh, sg), 401},
			{"Mailgun, six minutes old", "/webhooks/mailgun", mgPost(now.Add(-6*time.Minute), "tok-1"), nil, 401},
			{"Mailgun, fresh", "/webhooks/mailgun", mgPost(now, "tok-2"), nil, 200},
			{"Mailgun, the same token again", "/webhooks/mailgun", mgPost(now, "tok-2"), nil, 401},
			{"Mailgun, a new token", "/webhooks/mailgun", mgPost(now, "tok-3"), nil, 200},
		}
		for _, st := range steps {
			if code, resp := w.post(t, st.path, st.body, st.hdr); code != st.want {
				t.Errorf("%s: status %d %s, want %d", st.name, code, resp, st.want)
			}
		}
	})
}
