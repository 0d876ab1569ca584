package web

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/herald-mail/herald/internal/config"
	"github.com/herald-mail/herald/mailer"
	"github.com/herald-mail/herald/mailer/esp"
)

// newWebhooks receives the ESP bounce and complaint webhooks; nil when
// they cannot start (the routes then answer 404).
func (s *app) newWebhooks() *Webhooks {
	rec, err := mailer.NewRecorder(s.store, mailer.InboundOptions{Keys: s.tracking.keys, Logger: s.log})
	if err != nil {
		s.log.Error("webhooks disabled", "err", err)
		return nil
	}
	o := webhookOptions(s.cfg)
	o.Replays = s.store
	return NewWebhooks(rec, o, s.log)
}

// webhookOptions takes the webhook secrets from the configuration.
func webhookOptions(cfg *config.Config) WebhookOptions {
	var topics []string
	for _, t := range strings.Split(cfg.WebhookSESTopics, ",") {
		if t = strings.TrimSpace(t); t != "" {
			topics = append(topics, t)
		}
	}
	return WebhookOptions{
		SNS:               esp.SNSOptions{TopicARNs: topics},
		SendGridKey:       cfg.WebhookSendGridKey,
		PostmarkToken:     cfg.WebhookPostmarkToken,
		MailgunSigningKey: cfg.WebhookMailgunKey,
	}
}

// WebhookOptions configure the ESP webhooks. A provider whose secret is
// zero has its endpoint answer 404.
type WebhookOptions struct {
	// SNS configures Amazon SES notifications through SNS; endpoint
	// /webhooks/ses. Zero TopicARNs: off.
	SNS esp.SNSOptions
	// SendGridKey is the signed event webhook's public key (base64, from
	// the SendGrid console); endpoint /webhooks/sendgrid.
	SendGridKey string
	// PostmarkToken is the secret in the webhook URL
	// (/webhooks/postmark/TOKEN) or the basic-auth password (any user) of
	// /webhooks/postmark.
	PostmarkToken string
	// MailgunSigningKey is the HTTP webhook signing key; endpoint
	// /webhooks/mailgun.
	MailgunSigningKey string
	// MaxBody caps a post's size. Zero: 1 MB.
	MaxBody int64
	// Now is the clock for timestamp checks. Zero: time.Now.
	Now func() time.Time
	// Replays remembers accepted SendGrid and Mailgun posts, so a
	// captured post cannot be applied again. Zero: in memory, this
	// process only.
	Replays ReplayStore
}

// Webhooks receives ESP events and applies them through a mailer.Recorder.
type Webhooks struct {
	rec *mailer.Recorder
	o   WebhookOptions
	sns *esp.SNSVerifier
	sg  *ecdsa.PublicKey
	log *slog.Logger
}

// NewWebhooks builds the webhook handlers. A SendGrid key that does not
// parse is logged and turns that endpoint off.
func NewWebhooks(rec *mailer.Recorder, o WebhookOptions, log *slog.Logger) *Webhooks {
	if o.MaxBody <= 0 {
		o.MaxBody = 1 << 20
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Replays == nil {
		o.Replays = &memoryReplays{}
	}
	if o.SNS.Now == nil {
		o.SNS.Now = o.Now
	}
	w := &Webhooks{rec: rec, o: o, log: log, sns: esp.NewSNSVerifier(o.SNS)}
	if o.SendGridKey != "" {
		k, err := esp.ParseSendGridKey(o.SendGridKey)
		if err != nil {
			log.Error("SendGrid webhook off", "err", err)
		}
		w.sg = k
	}
	return w
}

// answer writes a webhook reply as JSON; providers show it in their logs.
func answer(c echo.Context, code int, msg string) error {
	return c.JSON(code, map[string]string{"message": msg})
}

// body reads the post, refusing oversized ones.
func (w *Webhooks) body(c echo.Context) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(c.Request().Body, w.o.MaxBody+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > w.o.MaxBody {
		return nil, errors.New("too large")
	}
	return b, nil
}

// refuse answers a failed check: 401 for authentication, 400 for a body
// that cannot be read, 503 for anything else (the provider retries).
func (w *Webhooks) refuse(c echo.Context, provider string, err error) error {
	w.log.Warn("webhook refused", "provider", provider, "ip", c.RealIP(), "err", err)
	switch {
	case errors.Is(err, esp.ErrSignature):
		return answer(c, http.StatusUnauthorized, "authentication failed: check the webhook's signing key or token in Herald's configuration")
	case errors.Is(err, esp.ErrMalformed):
		return answer(c, http.StatusBadRequest, err.Error())
	}
	return answer(c, http.StatusServiceUnavailable, "temporary failure, retry later")
}

// apply records events and answers 200, or 503 so the provider retries.
func (w *Webhooks) apply(c echo.Context, provider string, evs []mailer.Event) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), 30*time.Second)
	defer cancel()
	applied := 0
	for _, ev := range evs {
		ev.Source.IP = c.RealIP()
		res, err := w.rec.ApplyEvent(ctx, ev)
		if err != nil {
			w.log.Error("webhook event not recorded", "provider", provider, "rcpt", ev.Verdict.Recipient, "err", err)
			return answer(c, http.StatusServiceUnavailable, "temporary failure recording the event, retry later")
		}
		if res != nil {
			applied++
		}
	}
	return c.JSON(http.StatusOK, map[string]int{"events": len(evs), "applied": applied})
}

func (w *Webhooks) ses(c echo.Context) error {
	if len(w.o.SNS.TopicARNs) == 0 {
		return echo.ErrNotFound
	}
	b, err := w.body(c)
	if err != nil {
		return answer(c, http.StatusRequestEntityTooLarge, "the post is too large")
	}
	m, err := esp.ParseSNS(b)
	if err != nil {
		return w.refuse(c, "ses", err)
	}
	if err := w.sns.Verify(c.Request().Context(), m); err != nil {
		return w.refuse(c, "ses", err)
	}
	switch m.Type {
	case "SubscriptionConfirmation":
		ok, err := w.sns.Confirm(c.Request().Context(), m)
		w.log.Info("SNS subscription confirmation", "topic", m.TopicArn, "subscribe_url", m.SubscribeURL, "confirmed", ok, "err", err)
		return answer(c, http.StatusOK, "subscription confirmation received")
	case "UnsubscribeConfirmation":
		w.log.Warn("SNS unsubscribe confirmation", "topic", m.TopicArn)
		return answer(c, http.StatusOK, "noted")
	}
	evs, err := esp.SESEvents(m)
	if err != nil {
		return w.refuse(c, "ses", err)
	}
	return w.apply(c, "ses", evs)
}

func (w *Webhooks) sendgrid(c echo.Context) error {
	if w.sg == nil {
		return echo.ErrNotFound
	}
	b, err := w.body(c)
	if err != nil {
		return answer(c, http.StatusRequestEntityTooLarge, "the post is too large")
	}
	h := c.Request().Header
	ts := h.Get("X-Twilio-Email-Event-Webhook-Timestamp")
	if err := esp.VerifySendGrid(w.sg, h.Get("X-Twilio-Email-Event-Webhook-Signature"), ts, b); err != nil {
		return w.refuse(c, "sendgrid", err)
	}
	// Keyed by what was signed, not by the signature: an ECDSA signature
	// has a second valid form.
	if err := w.checkFresh(c.Request().Context(), "sendgrid", ts, ts+"\x00"+string(b)); err != nil {
		return w.refuse(c, "sendgrid", err)
	}
	evs, err := esp.SendGridEvents(b)
	if err != nil {
		return w.refuse(c, "sendgrid", err)
	}
	return w.apply(c, "sendgrid", evs)
}

func (w *Webhooks) postmark(c echo.Context) error {
	if w.o.PostmarkToken == "" {
		return echo.ErrNotFound
	}
	got := c.Param("token")
	if got == "" {
		_, got, _ = c.Request().BasicAuth()
	}
	if !esp.PostmarkTokenOK(got, w.o.PostmarkToken) {
		return w.refuse(c, "postmark", esp.ErrSignature)
	}
	b, err := w.body(c)
	if err != nil {
		return answer(c, http.StatusRequestEntityTooLarge, "the post is too large")
	}
	evs, err := esp.PostmarkEvents(b)
	if err != nil {
		return w.refuse(c, "postmark", err)
	}
	return w.apply(c, "postmark", evs)
}

func (w *Webhooks) mailgun(c echo.Context) error {
	if w.o.MailgunSigningKey == "" {
		return echo.ErrNotFound
	}
	b, err := w.body(c)
	if err != nil {
		return answer(c, http.StatusRequestEntityTooLarge, "the post is too large")
	}
	p, err := esp.ParseMailgun(b)
	if err != nil {
		return w.refuse(c, "mailgun", err)
	}
	if err := esp.VerifyMailgun(p, w.o.MailgunSigningKey, w.o.Now(), webhookMaxAge); err != nil {
		return w.refuse(c, "mailgun", err)
	}
	if err := w.checkFresh(c.Request().Context(), "mailgun", p.Signature.Timestamp, p.Signature.Token); err != nil {
		return w.refuse(c, "mailgun", err)
	}
	return w.apply(c, "mailgun", p.Events())
}
