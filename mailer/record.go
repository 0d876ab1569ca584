package mailer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-smtp"

	"github.com/herald-mail/herald/internal/token"
	"github.com/herald-mail/herald/mailer/authreport"
	"github.com/herald-mail/herald/mailer/bounce"
	"github.com/herald-mail/herald/models"
)

// Recorder applies what comes back from the world to the store: bounce,
// complaint and unsubscribe messages (received by the inbound SMTP server
// or fetched from a mailbox by the Poller) and ESP events (webhooks). Every
// way in ends in the same attribution and the same models calls.
type Recorder struct {
	store    InboundStore
	keys     *token.Keyring
	log      *slog.Logger
	domains  map[string]bool
	feedback string
	reports  ReportStore // nil: the store keeps no reports
	resolver *Resolver   // reverse names of report sources; nil: none
	limits   authreport.Limits
}

// NewRecorder returns a recorder into store. Of o it uses Keys (required),
// BounceDomains, FeedbackAddress, Resolver, ReportLimits and Logger. When
// store is also a ReportStore, DMARC aggregate and TLS reports are
// accepted and stored.
func NewRecorder(store InboundStore, o InboundOptions) (*Recorder, error) {
	if o.Keys == nil {
		return nil, errors.New("mailer: inbound: Keys are required to verify VERP addresses")
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	r := &Recorder{store: store, keys: o.Keys, log: o.Logger, domains: map[string]bool{},
		feedback: strings.ToLower(strings.TrimSpace(o.FeedbackAddress)), resolver: o.Resolver, limits: o.ReportLimits}
	r.reports, _ = store.(ReportStore)
	for _, d := range o.BounceDomains {
		r.domains[strings.ToLower(strings.TrimSpace(d))] = true
	}
	return r, nil
}

// Source says where an inbound message or event came from, for the log and
// the evidence of unsubscribes.
type Source struct {
	Via  string // smtp, imap, webhook:sendgrid, …
	IP   string
	HELO string
	From string // envelope sender, or the mailbox's From
}

// InboundMessage is one message to process.
type InboundMessage struct {
	Raw []byte
	// Rcpts are the addresses it was sent to: the SMTP envelope, or for a
	// message fetched from a mailbox the Delivered-To, X-Original-To and
	// To fields. Addresses that are not Herald's are ignored; when none
	// is, the message is matched to a delivery by its content.
	Rcpts  []string
	Source Source
}

// rcptKind is what an accepted recipient address is for.
type rcptKind int

const (
	rcptBounce      rcptKind = iota + 1 // VERP return path of one delivery
	rcptUnsubscribe                     // mailto one-click unsubscribe of one delivery
	rcptFeedback                        // the feedback-loop address, or a report to match by content
	rcptDMARC                           // the rua address of the advised DMARC record
	rcptTLS                             // the rua address of the advised TLS-RPT record
)

type inboundRcpt struct {
	kind       rcptKind
	deliveryID int64
	addr       string
}

// classify decides whether addr is one of ours; the error is the RCPT reply.
func (r *Recorder) classify(ctx context.Context, addr string) (inboundRcpt, error) {
	lower := strings.ToLower(addr)
	if r.feedback != "" && lower == r.feedback {
		return inboundRcpt{kind: rcptFeedback, addr: addr}, nil
	}
	switch kind, err := r.reportAddress(ctx, addr); {
	case err != nil:
		r.log.Error("inbound report address not checked", "rcpt", addr, "err", err)
		return inboundRcpt{}, errTryLater
	case kind != 0:
		return inboundRcpt{kind: kind, addr: addr}, nil
	}
	at := strings.LastIndexByte(addr, '@')
	if at <= 0 {
		return inboundRcpt{}, errNoSuchUser
	}
	local, domain := addr[:at], strings.ToLower(addr[at+1:])
	ours := r.domains[domain] || (r.feedback != "" && strings.HasSuffix(r.feedback, "@"+domain))
	prefix := strings.ToLower(local[:min(2, len(local))])
	tokenish := prefix == "b-" || prefix == "u-"
	if !ours && !(len(r.domains) == 0 && tokenish) {
		return inboundRcpt{}, errRelayDenied
	}
	switch prefix {
	case "b-":
		id, err := r.keys.AddressDelivery(local[2:], token.Bounce)
		if err != nil {
			return inboundRcpt{}, errBadToken
		}
		return inboundRcpt{kind: rcptBounce, deliveryID: id, addr: addr}, nil
	case "u-":
		id, err := r.keys.AddressDelivery(local[2:], token.Unsubscribe)
		if err != nil {
			return inboundRcpt{}, errBadToken
		}
		return inboundRcpt{kind: rcptUnsubscribe, deliveryID: id, addr: addr}, nil
	}
	return inboundRcpt{}, errNoSuchUser
}

// Process applies one message, as the inbound SMTP server would have had it
// come in by SMTP. Only a database failure is an error: a message that
// attributes to nothing, or is no bounce at all, is logged and dropped.
func (r *Recorder) Process(ctx context.Context, m InboundMessage) error {
	var rcpts []inboundRcpt
	seen := map[string]bool{}
	for _, a := range m.Rcpts {
		a = strings.Trim(strings.TrimSpace(a), "<>")
		if seen[strings.ToLower(a)] {
			continue
		}
		seen[strings.ToLower(a)] = true
		if rc, err := r.classify(ctx, a); err == nil {
			rcpts = append(rcpts, rc)
		}
	}
	if len(rcpts) == 0 {
		rcpts = []inboundRcpt{{kind: rcptFeedback, addr: strings.Join(m.Rcpts, ",")}}
	}
	err := r.process(ctx, m.Raw, rcpts, m.Source)
	if se := (*smtp.SMTPError)(nil); errors.As(err, &se) && se.Code >= 500 {
		return nil // a refused report, logged: fetching it again changes nothing
	}
	return err
}

// process applies a message to each of its accepted recipients.
func (r *Recorder) process(ctx context.Context, raw []byte, rcpts []inboundRcpt, src Source) (err error) {
	defer func() {
		// The message is hostile input; a bug in handling it must cost us
		// this message, not the server.
		if p := recover(); p != nil {
			r.log.Error("inbound message panic", "via", src.Via, "ip", src.IP, "from", src.From, "panic", fmt.Sprint(p))
			err = errTryLater
		}
	}()
	var rep *bounce.Report
	for _, rc := range rcpts {
		if rc.kind == rcptDMARC || rc.kind == rcptTLS {
			// Every report address gets the same message: store it once.
			return r.handleReport(ctx, raw, src)
		}
	}
	if r.reports != nil && rcpts[0].kind == rcptFeedback {
		// A mailbox collects bounces and reports alike: a message with a
		// report attached is one, whatever address it came to.
		found, err := r.storeReports(ctx, raw, src)
		if found {
			if authreport.IsRefused(err) {
				return nil // logged; polling it again would not help
			}
			return err
		}
	}
	for _, rc := range rcpts {
		if rc.kind != rcptUnsubscribe && rep == nil {
			if rep, err = bounce.Parse(bytes.NewReader(raw)); err != nil {
				return err
			}
		}
		if err := r.handle(ctx, src, rc, rep); err != nil {
			r.log.Error("inbound message not recorded", "via", src.Via, "ip", src.IP, "from", src.From, "rcpt", rc.addr,
				"delivery", rc.deliveryID, "err", err)
			return err
		}
	}
	return nil
}

// handle applies one accepted message to one of its recipients.
func (r *Recorder) handle(ctx context.Context, src Source, rc inboundRcpt, rep *bounce.Report) error {
	log := r.log.With("via", src.Via, "ip", src.IP, "helo", src.HELO, "from", src.From, "rcpt", rc.addr)
	if rc.kind == rcptUnsubscribe {
		n, err := r.store.UnsubscribeDelivery(ctx, rc.deliveryID, models.Evidence{
			Source: models.SourceOneClick, IP: src.IP, Actor: "subscriber", Note: "mailto unsubscribe from " + src.From,
		})
		if errors.Is(err, models.ErrNotFound) {
			log.Warn("inbound unsubscribe for unknown delivery", "delivery", rc.deliveryID)
			return nil
		}
		if err != nil {
			return err
		}
		log.Info("inbound unsubscribe", "delivery", rc.deliveryID, "lists", n)
		return nil
	}

	v, ok := strongest(rep)
	if !ok {
		log.Info("inbound message ignored: no bounce or complaint", "delivery", rc.deliveryID, "message_id", rep.MessageID)
		return nil
	}
	if v.Kind == bounce.KindComplaint && !isComplaint(rep.FeedbackType) {
		log.Info("inbound feedback report ignored", "feedback_type", rep.FeedbackType, "message_id", rep.MessageID)
		return nil
	}
	ev := Event{Verdict: v, FeedbackType: rep.FeedbackType, MessageID: rep.MessageID, RemoteMTA: rep.ReportingMTA, Source: src}
	if ev.RemoteMTA == "" && src.Via == "smtp" {
		ev.RemoteMTA = src.HELO + " [" + src.IP + "]"
	}
	deliveryID := rc.deliveryID
	if deliveryID == 0 {
		var err error
		if deliveryID, err = r.attribute(ctx, rep.MessageID, rep.Original); err != nil {
			return err
		}
	}
	_, err := r.record(ctx, log, deliveryID, ev, false)
	return err
}

// Event is a bounce or complaint reported by an ESP's webhook (or found in
// a message), to be applied like one received by mail.
type Event struct {
	// Verdict says what happened; its Recipient is the address concerned.
	Verdict bounce.Verdict
	// FeedbackType is the complaint's type (abuse, fraud, …) for
	// complaints; "" reads as abuse.
	FeedbackType string
	// MessageID is the Message-ID Herald gave the message, when the
	// provider reports it; it attributes the event to a delivery.
	MessageID string
	// RemoteMTA is the reporting host, for the bounces row.
	RemoteMTA string
	Source    Source
}

// ApplyEvent records an authenticated provider event. The delivery is found
// by Message-ID, else as the recipient's latest delivery. A hard bounce or
// complaint about an address Herald never mailed still suppresses it; a
// soft bounce that matches no delivery is dropped (the result is nil).
func (r *Recorder) ApplyEvent(ctx context.Context, ev Event) (*models.BounceResult, error) {
	log := r.log.With("via", ev.Source.Via, "ip", ev.Source.IP, "rcpt", ev.Verdict.Recipient)
	if ev.Verdict.Kind == bounce.KindComplaint && !isComplaint(ev.FeedbackType) {
		log.Info("provider feedback ignored", "feedback_type", ev.FeedbackType, "message_id", ev.MessageID)
		return nil, nil
	}
	if ev.Verdict.Kind != bounce.KindHard && ev.Verdict.Kind != bounce.KindSoft && ev.Verdict.Kind != bounce.KindComplaint {
		return nil, nil
	}
	deliveryID, err := r.attribute(ctx, ev.MessageID, mail.Header{})
	if err != nil {
		return nil, err
	}
	if deliveryID == 0 && ev.Verdict.Recipient != "" {
		d, err := r.store.DeliveryByRecipient(ctx, ev.Verdict.Recipient)
		switch {
		case err == nil:
			deliveryID = d.ID
		case !errors.Is(err, models.ErrNotFound):
			return nil, err
		}
	}
	return r.record(ctx, log, deliveryID, ev, true)
}

// record applies a verdict to a delivery (0: none found). trusted says the
// recipient address comes from an authenticated source, so a hard bounce
// that matches no delivery may still suppress it.
func (r *Recorder) record(ctx context.Context, log *slog.Logger, deliveryID int64, ev Event, trusted bool) (*models.BounceResult, error) {
	v := ev.Verdict
	n := models.BounceNotice{
		DeliveryID: deliveryID, Kind: string(v.Kind), Category: string(v.Category), Status: v.Status,
		Diagnostic: v.Diagnostic, RemoteMTA: ev.RemoteMTA, Reason: v.Explain(),
	}
	var (
		res *models.BounceResult
		err error
	)
	switch {
	case v.Kind == bounce.KindComplaint:
		n.Category = ev.FeedbackType
		if n.Category == "" {
			n.Category = "abuse"
		}
		if deliveryID == 0 {
			n.Email = v.Recipient
		}
		if deliveryID == 0 && n.Email == "" {
			log.Warn("inbound complaint matches no delivery", "message_id", ev.MessageID, "feedback_type", ev.FeedbackType)
			return nil, nil
		}
		res, err = r.store.RecordComplaint(ctx, n)
	case deliveryID == 0 && trusted && v.Kind == bounce.KindHard && v.Recipient != "":
		addr, aerr := models.NormalizeEmail(v.Recipient)
		if aerr != nil {
			log.Warn("provider hard bounce for an invalid address", "recipient", v.Recipient)
			return nil, nil
		}
		note := strings.TrimSpace(v.Status + " " + v.Diagnostic + " (via " + ev.Source.Via + ")")
		if err := r.store.AddSuppression(ctx, addr, models.SuppressHardBounce, note); err != nil {
			return nil, err
		}
		log.Info("hard bounce of an address with no delivery: suppressed", "recipient", addr, "status", v.Status)
		return &models.BounceResult{Suppressed: true}, nil
	case deliveryID == 0:
		log.Warn("inbound bounce matches no delivery", "message_id", ev.MessageID, "recipient", v.Recipient, "status", v.Status)
		return nil, nil
	default:
		res, err = r.store.RecordBounce(ctx, n)
	}
	if errors.Is(err, models.ErrNotFound) {
		log.Warn("inbound "+n.Kind+" for unknown delivery", "delivery", deliveryID, "message_id", ev.MessageID, "status", v.Status)
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	log.Info("inbound "+n.Kind, "campaign", res.CampaignID, "delivery", deliveryID, "subscriber", res.SubscriberID,
		"message_id", ev.MessageID, "status", v.Status, "category", n.Category, "remote_mta", n.RemoteMTA,
		"suppressed", res.Suppressed, "unsubscribed", res.Unsubscribed, "duplicate", res.Duplicate)
	return res, nil
}

// strongest picks the verdict that matters most: a complaint over a hard
// bounce over a soft one. Auto-replies and non-bounces count for nothing.
func strongest(rep *bounce.Report) (bounce.Verdict, bool) {
	rank := map[bounce.Kind]int{bounce.KindSoft: 1, bounce.KindHard: 2, bounce.KindComplaint: 3}
	var best bounce.Verdict
	for _, v := range rep.Recipients {
		if rank[v.Kind] > rank[best.Kind] {
			best = v
		}
	}
	return best, rank[best.Kind] > 0
}

// isComplaint reports whether an ARF feedback type is a person's complaint;
// auth-failure reports (DMARC, DKIM) and not-spam are not.
func isComplaint(feedbackType string) bool {
	switch strings.ToLower(feedbackType) {
	case "auth-failure", "not-spam":
		return false
	}
	return true
}

// attribute finds the delivery a report without a VERP address is about:
// by the signed Message-ID Herald writes, by the Message-ID stored on the
// delivery, or by a VERP or unsubscribe token in the quoted original
// headers. It returns 0 when nothing matches.
func (r *Recorder) attribute(ctx context.Context, messageID string, h mail.Header) (int64, error) {
	if id := strings.Trim(strings.TrimSpace(messageID), "<>"); id != "" {
		local := id
		if at := strings.LastIndexByte(id, '@'); at > 0 {
			local = id[:at]
		}
		if d, err := r.keys.Delivery(local, token.MessageID); err == nil {
			return d, nil
		}
		// Signed with a secret since retired: the token still names its
		// delivery, whose stored Message-ID must match.
		if ids, err := token.Peek(local, token.MessageID, 1); err == nil {
			d, err := r.store.DeliveryWithMessageID(ctx, ids[0], id)
			switch {
			case err == nil:
				return d.ID, nil
			case !errors.Is(err, models.ErrNotFound):
				return 0, err
			}
		}
	}
	for _, f := range []struct {
		field, prefix string
		kind          token.Kind
	}{
		{"Return-Path", "b-", token.Bounce},
		{"List-Unsubscribe", "u-", token.Unsubscribe},
	} {
		v := h.Get(f.field)
		for {
			i := strings.Index(strings.ToLower(v), f.prefix)
			if i < 0 {
				break
			}
			v = v[i+2:]
			end := strings.IndexAny(v, "@?> ,")
			if end < 0 {
				end = len(v)
			}
			if d, err := r.keys.AddressDelivery(v[:end], f.kind); err == nil {
				return d, nil
			}
		}
	}
	return 0, nil
}
