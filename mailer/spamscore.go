package mailer

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/herald-mail/herald/mailer/spamc"
	"github.com/herald-mail/herald/models"
)

// Content scoring: before a campaign starts, its message, rendered and
// signed as a subscriber would receive it, is shown to SpamAssassin's
// spamd, and the checklist reports the score and the rules that hit.

// Setting keys of content scoring.
const (
	// SettingSpamLimit is the score (SpamAssassin points) from which the
	// checklist's content score fails; "" means DefaultSpamLimit.
	SettingSpamLimit = "spam_score_limit"
	// SettingSpamAction is what a score at or over the limit does:
	// SpamActionWarn ("" reads as it) or SpamActionBlock.
	SettingSpamAction = "spam_score_action"
)

// What a high score does.
const (
	SpamActionWarn  = "warn"  // the checklist shows a warning; the campaign may start
	SpamActionBlock = "block" // the campaign cannot start
)

// DefaultSpamLimit is the default limit: SpamAssassin's own spam threshold
// is 5, and many receivers act on less, so a warning comes earlier.
const DefaultSpamLimit = 3.0

// SpamLimit reads the limit and the action from the settings.
func SpamLimit(settings map[string]string) (limit float64, action string) {
	limit = DefaultSpamLimit
	if v, err := strconv.ParseFloat(strings.TrimSpace(settings[SettingSpamLimit]), 64); err == nil && v > 0 {
		limit = v
	}
	action = SpamActionWarn
	if settings[SettingSpamAction] == SpamActionBlock {
		action = SpamActionBlock
	}
	return limit, action
}

// ParseSpamLimit validates a limit typed into the settings form.
func ParseSpamLimit(s string) (float64, error) {
	v, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || v <= 0 || v > 100 {
		return 0, errors.New("enter a score between 0.1 and 100, e.g. 3 or 5")
	}
	return v, nil
}

// SpamScoring is the Readiness option that scores a campaign's message.
type SpamScoring struct {
	// Client is the spamd to ask.
	Client *spamc.Client
	// Message builds the message a subscriber of the campaign would
	// receive (Engine.SampleMessage).
	Message func(ctx context.Context, campaignID int64) ([]byte, error)
}

// SpamScoring is the engine's content scoring for Readiness: its spamd
// (Options.Spamd) and its SampleMessage. Nil when no spamd is set.
func (e *Engine) SpamScoring() *SpamScoring {
	if e.o.Spamd == nil {
		return nil
	}
	return &SpamScoring{Client: e.o.Spamd, Message: e.SampleMessage}
}

// sampleRecipient stands in for a subscriber in a sample message: a
// delivery id no real delivery has, so its signed links lead nowhere.
var sampleRecipient = recipient{deliveryID: 1<<53 - 1, email: "ada@example.com", name: "Ada Lovelace",
	attributes: map[string]any{"city": "London"}}

// SampleMessage is the message one subscriber of campaign id would receive
// if it were sent now: compiled with the campaign's tracking, rendered with
// its headers (List-Unsubscribe, Feedback-ID) and DKIM-signed with its
// sending domain's key, by the code that renders and signs every delivery.
// Only the recipient is made up. It writes nothing to the store.
func (e *Engine) SampleMessage(ctx context.Context, id int64) ([]byte, error) {
	c, err := e.store.Campaign(ctx, id)
	if err != nil {
		return nil, err
	}
	return e.SampleMessageOf(ctx, c)
}

// SampleMessageOf is SampleMessage for a campaign that need not be
// stored: a template's preview scores the template as a campaign from a
// given sender would send it (c.ID 0).
func (e *Engine) SampleMessageOf(ctx context.Context, c *models.Campaign) ([]byte, error) {
	env := e.env.Load()
	if env == nil {
		return nil, errors.New("mailer: the mailer has not started yet")
	}
	comp, p, _, _, err := e.campaignMessage(ctx, c)
	if err != nil {
		return nil, err
	}
	// Links get made-up ids: the real ones are written when it starts.
	comp.linkIDs = make([]int64, len(comp.links))
	for i := range comp.linkIDs {
		comp.linkIDs[i] = int64(i + 1)
	}
	rc := sampleRecipient
	rc.listID = 1
	if ls, ok := e.store.(interface {
		CampaignLists(ctx context.Context, id int64) ([]int64, error)
	}); ok && c.ID != 0 {
		if ids, err := ls.CampaignLists(ctx, c.ID); err == nil && len(ids) > 0 {
			rc.listID = ids[0]
		}
	}
	msg, err := env.render(comp, p, &rc, time.Now())
	if err != nil {
		return nil, err
	}
	defer msg.release()
	if msg.sig, err = p.signer.sign(msg.buf.Bytes()); err != nil {
		return nil, err
	}
	return append(append([]byte(nil), msg.sig...), msg.buf.Bytes()...), nil
}

// ScoreRules turns spamd's rules into ScoredRules with our hints, the
// costliest first.
func ScoreRules(rules []spamc.Rule) []ScoredRule {
	out := make([]ScoredRule, 0, len(rules))
	for _, rule := range rules {
		out = append(out, ScoredRule{Name: rule.Name, Score: rule.Score, Description: rule.Description, Hint: RuleHint(rule.Name)})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Score > out[j].Score })
	return out
}

// ScoredRule is one SpamAssassin rule that hit, with what it means for
// the sender.
type ScoredRule struct {
	Name        string
	Score       float64
	Description string // SpamAssassin's
	Hint        string // ours, in plain words; "" when we have none
}

// spamCheck asks spamd about the campaign's message.
func (r *Readiness) spamCheck(ctx context.Context, id int64, settings map[string]string) Check {
	limit, action := SpamLimit(settings)
	c := Check{ID: "campaign.spam_score", Title: fmt.Sprintf("SpamAssassin scores the message under %s", fmtScore(limit)),
		Blocking: action == SpamActionBlock}
	msg, err := r.Spam.Message(ctx, id)
	if err != nil {
		// The message does not render: the template check says why.
		c.Blocking, c.Detail = false, "The message could not be built for scoring: "+err.Error()
		return c
	}
	rep, err := r.Spam.Client.Report(ctx, msg)
	if err != nil {
		// A scanner that is down must not stop sending.
		c.Blocking = false
		c.Detail = "spamd at " + r.Spam.Client.Addr + " did not answer: " + err.Error()
		c.FixHint = "Check that spamd runs and listens there (HERALD_SPAMD), then reload this page."
		return c
	}
	c.Score = &rep.Score
	c.OK = rep.Score < limit
	c.Rules = ScoreRules(rep.Rules)
	c.Detail = fmt.Sprintf("Score %s (SpamAssassin treats %s or more as spam; your limit is %s), %d rules hit.",
		fmtScore(rep.Score), fmtScore(rep.Threshold), fmtScore(limit), len(rep.Rules))
	if !c.OK {
		c.FixHint = "Look at the rules with the most points below and change what they point at; the score is measured again each time this page loads."
		if action == SpamActionWarn {
			c.Detail += " This only warns (Settings → Content scoring)."
		}
	}
	return c
}

func fmtScore(f float64) string { return strconv.FormatFloat(f, 'f', 1, 64) }

// ruleHints explain the rules a newsletter most often hits. Keys ending in
// "_" match every rule with that prefix.
var ruleHints = map[string]string{
	"HTML_IMAGE_ONLY_":        "The HTML has images but few words. Write the message in text; do not let a picture carry it.",
	"HTML_IMAGE_RATIO_":       "A lot of image area for little text. Add words or use fewer or smaller images.",
	"HTML_SHORT_LINK_IMG_":    "A short HTML message whose image is a link: typical of spam. Add text around it.",
	"MIME_HTML_ONLY":          "There is no text part. Herald adds one unless the message is plain HTML sent by hand.",
	"MPART_ALT_DIFF":          "The text and HTML parts say different things. Let Herald derive the text part, or keep yours in step.",
	"HTML_MIME_NO_HTML_TAG":   "The HTML part has no <html> tag. Use a full HTML document.",
	"SUBJ_ALL_CAPS":           "The subject is in capitals. Write it in sentence case.",
	"SUBJ_EXCESS_QP":          "The subject is mostly encoded characters.",
	"EMPTY_MESSAGE":           "The message has no text.",
	"MISSING_SUBJECT":         "The message has no subject.",
	"HTML_FONT_LOW_CONTRAST":  "Text in a colour close to its background: a trick spammers use to hide words.",
	"HTML_FONT_SIZE_TINY":     "Very small text: a trick spammers use to hide words.",
	"TINY_FONT":               "Very small text: a trick spammers use to hide words.",
	"HTML_FONT_SIZE_HUGE":     "Very large text, as in shouting adverts.",
	"T_REMOTE_IMAGE":          "An image loaded from the web (such as the open pixel). Counted for information.",
	"HTTPS_HTTP_MISMATCH":     "A link's text shows one address and its target is another.",
	"URI_NOVOWEL":             "A link's domain has no vowels, as made-up spam domains often have.",
	"BODY_URI_ONLY":           "The message is little more than a link.",
	"FREEMAIL_FROM":           "Sent from a free mailbox (Gmail, Yahoo…). Send from your own domain.",
	"FREEMAIL_FORGED_REPLYTO": "The Reply-To is a free mailbox different from the sender.",
	"DKIM_SIGNED":             "The message carries a DKIM signature.",
	"DKIM_VALID":              "The DKIM signature verifies.",
	"DKIM_VALID_AU":           "The DKIM signature verifies and is the From domain's.",
	"DKIM_VALID_EF":           "The DKIM signature verifies and is the envelope sender's domain.",
	"DKIM_INVALID":            "The DKIM signature does not verify: publish the DKIM record Herald shows under Sending domains (a spamd without DNS cannot look it up).",
	"T_DKIM_INVALID":          "The DKIM signature does not verify: publish the DKIM record Herald shows under Sending domains (a spamd without DNS cannot look it up).",
	"DKIM_ADSP_NXDOMAIN":      "The From domain does not exist in DNS.",
	"SPF_FAIL":                "SPF fails: the sending address is not allowed by the domain's SPF record.",
	"SPF_SOFTFAIL":            "SPF soft-fails: add Herald's sending addresses to the domain's SPF record.",
	"DMARC_":                  "DMARC: check the From domain's DMARC record and alignment under Sending domains.",
	"MISSING_DATE":            "The message has no Date header.",
	"MISSING_MID":             "The message has no Message-ID.",
	"MSGID_SHORT":             "The Message-ID is unusually short.",
	"NO_RECEIVED":             "No Received header: scored as it leaves Herald, before any server relays it. For information.",
	"NO_RELAYS":               "Not yet relayed by any server: scored as it leaves Herald. For information.",
	"HTML_MESSAGE":            "The message has an HTML part. For information.",
	"URIBL_":                  "A link points at a domain on a URI blocklist. Remove that link.",
	"LOTS_OF_MONEY":           "Large sums of money in the text.",
	"ADVANCE_FEE_":            "Wording typical of advance-fee fraud.",
	"FREE_":                   "Wording like “free” that spam filters weigh.",
	"MONEY_":                  "Wording about money that spam filters weigh.",
	"SHORTENED_URL_SRC":       "A link goes through a URL shortener. Link to the real address.",
	"URI_TRUNCATED":           "A link is so long spamd truncated it.",
}

// RuleHint is our plain-language explanation of a SpamAssassin rule, ""
// when we have none (SpamAssassin's own description is shown then).
func RuleHint(name string) string {
	if h, ok := ruleHints[name]; ok {
		return h
	}
	best := ""
	for k := range ruleHints {
		if strings.HasSuffix(k, "_") && strings.HasPrefix(name, k) && len(k) > len(best) {
			best = k
		}
	}
	return ruleHints[best]
}
