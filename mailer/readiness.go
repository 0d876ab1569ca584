package mailer

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"net/textproto"
	"net/url"
	"regexp"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/herald-mail/herald/internal/token"
	"github.com/herald-mail/herald/mailer/defaults"
	"github.com/herald-mail/herald/models"
)

// Check is one sending-readiness rule and how the organisation or a
// campaign fares against it. The pre-send checklist of a campaign and the
// readiness panel are both lists of Checks made by Readiness, so the rules
// exist once.
type Check struct {
	ID       string // stable key, e.g. "campaign.unsubscribe"
	Title    string // the rule, as people read it
	OK       bool
	Blocking bool   // a failing blocking check stops a campaign from starting
	Detail   string // what was found
	FixHint  string // what to do when it fails; "" when OK
	// Score and Rules are SpamAssassin's verdict (campaign.spam_score
	// only): nil and none for every other check.
	Score *float64
	Rules []ScoredRule
}

// Failed returns the first failing blocking check, nil when none fails.
func Failed(checks []Check) *Check {
	for i := range checks {
		if !checks[i].OK && checks[i].Blocking {
			return &checks[i]
		}
	}
	return nil
}

// blockingRule checks a campaign against the sending rules when the engine
// itself starts it (a scheduled one): the failed blocking rule, or nil.
// A store that cannot answer the rules (one made for tests of the engine
// alone) blocks nothing.
func (e *Engine) blockingRule(ctx context.Context, id int64) (*Check, error) {
	rs, ok := e.store.(ReadinessStore)
	if !ok {
		return nil, nil
	}
	t := e.defaultTransport()
	_, captures := t.(*Capture)
	checks, err := (&Readiness{Store: rs, DefaultCaptures: captures, DirectTransport: isDirect(t), RootURL: e.o.RootURL,
		RelaySigns: RelaySigning(t)}).CampaignChecks(ctx, id)
	if err != nil {
		return nil, err
	}
	return Failed(checks), nil
}

// ReadinessStore is what the readiness rules read; *models.Store
// implements it.
type ReadinessStore interface {
	Settings(ctx context.Context) (map[string]string, error)
	Templates(ctx context.Context, kind string) ([]models.Template, error)
	Template(ctx context.Context, id int64) (*models.Template, error)
	Campaign(ctx context.Context, id int64) (*models.Campaign, error)
	CampaignLists(ctx context.Context, id int64) ([]int64, error)
	CampaignsByStatus(ctx context.Context, statuses ...string) ([]models.Campaign, error)
	CountEligibleRecipients(ctx context.Context, listIDs []int64) (int64, error)
	CountCampaignAudience(ctx context.Context, id int64) (int64, error)
	SendingDomains(ctx context.Context) ([]models.SendingDomain, error)
	SendingDomain(ctx context.Context, id int64) (*models.SendingDomain, error)
	ComplaintStats(ctx context.Context, since time.Time) (sent, complaints int64, err error)
}

var _ ReadinessStore = (*models.Store)(nil)

// Readiness evaluates the rules against the store.
type Readiness struct {
	// Store is where settings, templates, campaigns and domains are read.
	Store ReadinessStore
	// DefaultCaptures says the default transport only captures mail into
	// the outbox (nothing leaves the machine). Campaigns on it may start
	// without DKIM and DNS: those rules then warn instead of blocking.
	DefaultCaptures bool
	// DirectTransport says the default transport delivers straight to
	// the recipients' MX hosts: a campaign on it cannot start while its
	// From domain's DNS check fails or never ran, unless an admin
	// overrode that for the campaign. False: the DNS rule only warns.
	DirectTransport bool
	// Hostname is the EHLO name of direct delivery, checked for being
	// fully qualified. "": not checked.
	Hostname string
	// Resolver answers the reverse DNS questions of the panel (FCrDNS of
	// each sending address). Nil: the panel asks no DNS question.
	Resolver *Resolver
	// RootURL is the public base of unsubscribe links. Zero: the root_url
	// setting.
	RootURL string
	// Now is the clock. Zero: time.Now.
	Now func() time.Time
	// RelaySigns says the default transport's relays sign with DKIM for
	// the sender (RelaySigning): a campaign on it without a key in Herald
	// then needs the From domain's DKIM record in DNS, and the rule only
	// warns. Nil: a key in Herald is required.
	RelaySigns *RelayDKIM
	// Spam scores the campaign's message with SpamAssassin (HERALD_SPAMD).
	// Nil: the checklist has no content score.
	Spam *SpamScoring
}

// ComplaintLimit is the complaint rate above which mailbox providers
// (Gmail, Yahoo) start rejecting a sender's mail.
const ComplaintLimit = 0.003

const (
	probeUnsubscribe = "https://readiness.herald.invalid/u/probe"
	probePreferences = "https://readiness.herald.invalid/p/probe"
	probeAddress     = "Readiness Probe, 1 Nowhere Street"
)

var shorteners = map[string]bool{"bit.ly": true, "tinyurl.com": true, "t.co": true, "goo.gl": true, "ow.ly": true,
	"is.gd": true, "buff.ly": true, "rebrand.ly": true, "cutt.ly": true, "shorturl.at": true, "tiny.cc": true,
	"bl.ink": true, "t.ly": true, "rb.gy": true, "s.id": true, "lnkd.in": true}

var urlRE = regexp.MustCompile(`https?://[^\s"'<>()]+`)

func (r *Readiness) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// footer is what a template shows when rendered for a probe recipient.
type footer struct {
	err         error
	subject     string
	body        string // the HTML part, or the text part of a text-only template
	text        string
	hasText     bool // the text part is written, not derived
	placeholder bool // the default template's stand-in text is still there
	unsubscribe bool
	address     bool
}

// probeTemplate renders a template for a made-up recipient and looks for
// the unsubscribe link and the postal address (the real one when set, so
// an address typed into the template counts too).
func probeTemplate(t *models.Template, org OrgData) footer {
	return probeContent(Content{Subject: t.Subject, Body: t.HTML, Text: t.Text}, org)
}

// probeContent is probeTemplate for a campaign's own content.
func probeContent(ct Content, org OrgData) footer {
	addr := org.PostalAddress
	if strings.TrimSpace(addr) == "" {
		org.PostalAddress = probeAddress
		addr = probeAddress
	}
	d := SampleData()
	d.UnsubscribeURL, d.PreferencesURL, d.Org = probeUnsubscribe, probePreferences, org
	p, err := RenderContent(ct, d, false)
	if err != nil {
		return footer{err: err}
	}
	f := footer{subject: p.Subject, body: p.HTML, text: p.Text, hasText: !ct.TextDerived()}
	if f.body == "" {
		f.body = p.Text
	}
	squash := func(s string) string { return strings.Join(strings.Fields(s), " ") }
	f.unsubscribe = strings.Contains(f.body, probeUnsubscribe)
	f.address = strings.Contains(squash(html.UnescapeString(f.body)), squash(addr))
	f.placeholder = strings.Contains(squash(html.UnescapeString(f.body)), defaults.Placeholder) || strings.Contains(squash(f.text), defaults.Placeholder)
	return f
}

// OrgChecks are the organisation-wide rules of the readiness panel.
func (r *Readiness) OrgChecks(ctx context.Context) ([]Check, error) {
	settings, err := r.Store.Settings(ctx)
	if err != nil {
		return nil, err
	}
	org := OrgData{Name: settings[models.SettingOrgName], PostalAddress: strings.TrimSpace(settings[models.SettingPostalAddress])}
	var out []Check

	c := Check{ID: "org.postal_address", Title: "The organisation's postal address is set", Blocking: true, OK: org.PostalAddress != ""}
	if c.OK {
		c.Detail = org.PostalAddress
	} else {
		c.Detail, c.FixHint = "No postal address.", "Laws such as CAN-SPAM require a physical postal address in every campaign: set it under Settings."
	}
	out = append(out, c)

	tmpls, err := r.Store.Templates(ctx, models.TemplateCampaign)
	if err != nil {
		return nil, err
	}
	c = Check{ID: "org.template_footers", Title: "Every campaign template has an unsubscribe link and the postal address", Blocking: true, OK: true}
	var bad []string
	for i := range tmpls {
		f := probeTemplate(&tmpls[i], org)
		if missing := f.missing(); missing != "" {
			bad = append(bad, fmt.Sprintf("“%s” (%s)", tmpls[i].Name, missing))
		}
	}
	switch {
	case len(bad) > 0:
		c.OK, c.Detail = false, "Missing in "+strings.Join(bad, ", ")+"."
		c.FixHint = "Add {{.UnsubscribeURL}} as a link and {{.Org.PostalAddress}} to the footer of these templates (the default template shows how)."
	case len(tmpls) == 0:
		c.Detail = "No campaign template yet."
	default:
		c.Detail = fmt.Sprintf("%d templates checked.", len(tmpls))
	}
	out = append(out, c)

	root := r.RootURL
	if root == "" {
		root = settings[models.SettingRootURL]
	}
	if root == "" {
		root = "http://localhost:8080"
	}
	out = append(out, oneClickCheck(strings.TrimSuffix(root, "/"), org))
	c = Check{ID: "org.https", Title: "Unsubscribe links use HTTPS", OK: strings.HasPrefix(root, "https://"), Detail: "Public URL: " + root}
	if !c.OK {
		c.FixHint = "Gmail and Yahoo honour one-click unsubscribe only over HTTPS: serve Herald over HTTPS and set its public URL (root URL) to https://…"
	}
	out = append(out, c)

	out = append(out, Check{ID: "org.unsubscribe_honoured", Title: "Unsubscribes are honoured at once", OK: true,
		Detail: "By construction: an unsubscribe updates the subscription in the same request; a campaign's recipients are chosen when it starts " +
			"from confirmed (or single opt-in) subscriptions only, and every message is checked again when it is taken from the queue, " +
			"so someone who unsubscribes while a campaign is sending is skipped (delivery recorded as suppressed)."})

	domains, err := r.Store.SendingDomains(ctx)
	if err != nil {
		return nil, err
	}
	out = append(out, r.senderCheck(ctx, domains))
	out = append(out, r.dnsChecks(domains)...)
	out = append(out, r.hostChecks(ctx)...)
	if c, ok := r.blocklistCheck(ctx); ok {
		out = append(out, c)
	}

	sent, complaints, err := r.Store.ComplaintStats(ctx, r.now().Add(-30*24*time.Hour))
	if err != nil {
		return nil, err
	}
	c = Check{ID: "org.complaints", Title: "Complaint rate under 0.3% over 30 days", Blocking: true, OK: true}
	if sent > 0 {
		rate := float64(complaints) / float64(sent)
		c.OK = rate < ComplaintLimit
		c.Detail = fmt.Sprintf("%d complaints for %d messages sent: %.2f%%.", complaints, sent, rate*100)
	} else {
		c.Detail = "Nothing sent in the last 30 days."
	}
	if !c.OK {
		c.FixHint = "Mail only people who asked for it, make the unsubscribe link easy to find, and remove inactive subscribers before the next campaign."
	}
	out = append(out, c)
	return out, nil
}

func (f footer) missing() string {
	switch {
	case f.err != nil:
		return "does not render: " + f.err.Error()
	case !f.unsubscribe && !f.address:
		return "no unsubscribe link, no postal address"
	case !f.unsubscribe:
		return "no unsubscribe link"
	case !f.address:
		return "no postal address"
	}
	return ""
}

// oneClickCheck renders a probe message through the real renderer and
// reads its headers back.
func oneClickCheck(root string, org OrgData) Check {
	c := Check{ID: "org.one_click", Title: "Campaign messages carry one-click List-Unsubscribe headers (RFC 8058)", Blocking: true}
	env := &renderEnv{root: root, org: org, keys: token.NewKeyring("readiness probe key, never used for real mail"), feedbackID: "herald"}
	comp, err := compileTemplate("probe", "Probe", "<p>probe</p>", "", compileOptions{})
	if err == nil {
		var msg *rendered
		snd, _ := newSender("", "probe@example.com", "")
		p := &msgParams{campaignID: 1, sender: snd, domain: "example.com", returnPath: "example.com", listHeaders: true}
		msg, err = env.render(comp, p, &recipient{deliveryID: 1, subscriberID: 1, listID: 1, email: "probe@example.org"}, time.Now())
		if err == nil {
			h, herr := textproto.NewReader(bufio.NewReader(strings.NewReader(msg.buf.String()))).ReadMIMEHeader()
			msg.release()
			lu := h.Get("List-Unsubscribe")
			c.OK = herr == nil && h.Get("List-Unsubscribe-Post") == "List-Unsubscribe=One-Click" &&
				strings.Contains(lu, "<"+root+"/u/") && strings.Contains(lu, "<mailto:")
			c.Detail = "A probe message carries List-Unsubscribe: " + strings.Join(strings.Fields(lu), " ") +
				" and List-Unsubscribe-Post: " + h.Get("List-Unsubscribe-Post")
		}
	}
	if err != nil {
		c.Detail = "The probe message did not render: " + err.Error()
	}
	if !c.OK {
		c.FixHint = "This is a bug in Herald: report it with the detail above."
	}
	return c
}

// senderCheck: the From and Reply-To domains of the campaigns not yet
// finished are sending domains with a DKIM key.
func (r *Readiness) senderCheck(ctx context.Context, domains []models.SendingDomain) Check {
	c := Check{ID: "org.sender_domains", Title: "From and Reply-To addresses use sending domains with a DKIM key", Blocking: !r.DefaultCaptures, OK: true}
	camps, err := r.Store.CampaignsByStatus(ctx, models.CampaignDraft, models.CampaignScheduled, models.CampaignRunning, models.CampaignPaused)
	if err != nil {
		c.OK, c.Detail = false, "Campaigns could not be read."
		return c
	}
	var bad []string
	seen := map[string]bool{}
	for _, cp := range camps {
		for _, addr := range []string{cp.FromEmail, cp.ReplyTo} {
			d := strings.ToLower(models.EmailDomain(addr))
			if addr == "" || seen[d] {
				continue
			}
			seen[d] = true
			if models.SigningDomain(domains, nil, d) == nil {
				bad = append(bad, d)
			}
		}
	}
	switch {
	case len(bad) > 0:
		c.OK = false
		c.Detail = "Not a sending domain with a DKIM key: " + strings.Join(bad, ", ") + "."
		c.FixHint = "Add these domains under Deliverability → Sending domains and publish their DKIM records, or send from a domain that is set up."
		if r.DefaultCaptures {
			c.Detail += " (Mail is only captured into the outbox now; this is required before sending for real.)"
		}
		if r.RelaySigns != nil {
			// The relay signs: each campaign's own check looks for its
			// record in DNS and warns.
			c.Blocking = false
			c.Detail += " The relay signs for them (dkim=relay), so this only warns."
		}
	case len(seen) == 0:
		c.Detail = "No campaign in preparation."
	default:
		c.Detail = fmt.Sprintf("%d sender domains checked.", len(seen))
	}
	return c
}

// dnsChecks read each sending domain's last stored DNS check (the check
// itself runs from the Sending domains page; the panel never queries DNS).
func (r *Readiness) dnsChecks(domains []models.SendingDomain) []Check {
	if len(domains) == 0 {
		c := Check{ID: "org.dns", Title: "SPF, DKIM and DMARC are published and aligned", Blocking: !r.DefaultCaptures,
			Detail: "No sending domain yet.", FixHint: "Add your domain under Deliverability → Sending domains and publish the records it lists."}
		return []Check{c}
	}
	var out []Check
	for _, sd := range domains {
		c := Check{ID: "org.dns." + sd.Domain, Title: "SPF, DKIM and DMARC are published and aligned for " + sd.Domain, Blocking: !r.DefaultCaptures}
		var rep DomainCheck
		switch {
		case sd.DNSCheckedAt == nil:
			c.Detail, c.FixHint = "Never checked.", "Run the DNS check of "+sd.Domain+" under Deliverability → Sending domains."
			out = append(out, c)
			continue
		case json.Unmarshal([]byte(sd.DNSReport), &rep) != nil:
			c.Detail, c.FixHint = "The last check could not be read.", "Run the DNS check again."
			out = append(out, c)
			continue
		}
		seen := map[string]bool{}
		var problems []string
		for _, rc := range rep.Records {
			purpose := rc.Purpose
			if purpose == "dkim-ed25519" {
				purpose = "dkim"
			}
			if purpose == "spf" || purpose == "dkim" || purpose == "dmarc" {
				seen[purpose] = true
			}
			if !rc.OK && rc.Purpose != "tlsrpt" { // optional: no fault of the domain's mail
				problems = append(problems, fmt.Sprintf("%s %s: %s", strings.ToUpper(rc.Purpose), rc.Name, rc.Problem))
			}
		}
		for _, p := range []string{"spf", "dkim", "dmarc"} {
			if !seen[p] {
				problems = append(problems, strings.ToUpper(p)+": not checked")
			}
		}
		rp := strings.ToLower(sd.ReturnPathDomain)
		if rp != sd.Domain && !strings.HasSuffix(rp, "."+sd.Domain) {
			problems = append(problems, "the return path "+rp+" is not under "+sd.Domain+", so SPF does not align")
		}
		c.OK = len(problems) == 0
		when := sd.DNSCheckedAt.UTC().Format("2006-01-02 15:04 UTC")
		if c.OK {
			c.Detail = "All records right at the last check (" + when + "); DKIM signs as " + sd.Domain + " and bounces return to " + rp + "."
			if a := rep.Alignment; a != nil {
				c.Detail += " " + a.Explain() + "."
			}
		} else {
			c.Detail = strings.Join(problems, "; ") + " (checked " + when + ")."
			c.FixHint = "Publish the records listed for " + sd.Domain + " under Deliverability → Sending domains, then check again."
		}
		out = append(out, c)
	}
	return out
}

// CampaignChecks are the pre-send checklist of one campaign. Starting the
// campaign is refused while one of the blocking checks fails.
func (r *Readiness) CampaignChecks(ctx context.Context, id int64) ([]Check, error) {
	cp, err := r.Store.Campaign(ctx, id)
	if err != nil {
		return nil, err
	}
	settings, err := r.Store.Settings(ctx)
	if err != nil {
		return nil, err
	}
	org := OrgData{Name: settings[models.SettingOrgName], PostalAddress: strings.TrimSpace(settings[models.SettingPostalAddress])}
	captured := r.DefaultCaptures && cp.Transport == ""
	var out []Check

	ct := ContentOf(cp)
	f := probeContent(ct, org)
	tc := Check{ID: "campaign.template", Title: "The message renders", Blocking: true, OK: f.err == nil}
	switch {
	case strings.TrimSpace(ct.Body) == "" && strings.TrimSpace(ct.Text) == "":
		tc.OK, tc.Detail, tc.FixHint = false, "The campaign has no body.", "Edit the campaign and write its message."
	case tc.OK && ct.Format == models.FormatMarkdown:
		tc.Detail = "Markdown in the standard layout."
	case tc.OK:
		tc.Detail = "The campaign's own HTML."
	default:
		tc.Detail, tc.FixHint = f.err.Error(), "Edit the campaign's content and fix this."
	}
	out = append(out, tc)
	ok := tc.OK

	pc := Check{ID: "campaign.placeholder", Title: "The message is written, not the template's placeholder", Blocking: true, OK: !f.placeholder}
	if pc.OK {
		pc.Detail = "No placeholder text left."
	} else {
		pc.Detail = "The message still holds the default template's stand-in text “" + defaults.Placeholder + "”."
		pc.FixHint = "Edit the campaign and replace the placeholder paragraph with your message."
	}
	out = append(out, pc)

	c := Check{ID: "campaign.unsubscribe", Title: "The message has an unsubscribe link", Blocking: true, OK: ok && f.unsubscribe}
	if !c.OK {
		c.Detail, c.FixHint = "No link to {{.UnsubscribeURL}} in the message.", `Add <a href="{{.UnsubscribeURL}}">Unsubscribe</a> to the campaign's footer.`
	} else {
		c.Detail = "Every recipient gets a personal one-click unsubscribe link."
	}
	out = append(out, c)

	c = Check{ID: "campaign.postal_address", Title: "The message shows the postal address", Blocking: true, OK: org.PostalAddress != "" && ok && f.address}
	switch {
	case org.PostalAddress == "":
		c.Detail, c.FixHint = "The organisation has no postal address.", "Set the postal address under Settings."
	case !c.OK:
		c.Detail, c.FixHint = "The postal address does not appear in the message.", "Add {{.Org.PostalAddress}} to the campaign's footer."
	default:
		c.Detail = org.PostalAddress
	}
	out = append(out, c)

	out = append(out, r.dkimCheck(ctx, cp, captured))
	out = append(out, r.dnsGate(ctx, cp))

	c = Check{ID: "campaign.subject", Title: "The subject is not empty", Blocking: true, OK: ok && strings.TrimSpace(f.subject) != ""}
	if c.OK {
		c.Detail = f.subject
	} else {
		c.Detail, c.FixHint = "The subject is empty.", "Write the campaign's subject."
	}
	out = append(out, c)

	n, err := r.Store.CountCampaignAudience(ctx, id)
	if err != nil {
		return nil, err
	}
	c = Check{ID: "campaign.recipients", Title: "There is someone to send to", Blocking: true, OK: n > 0,
		Detail: fmt.Sprintf("%d recipients (each address once, suppressed ones left out).", n)}
	if !c.OK {
		c.FixHint = "Choose lists with confirmed subscribers, or segments that match people."
	}
	if cp.Status != models.CampaignDraft && cp.Status != models.CampaignScheduled {
		c.OK, c.Detail = true, "Recipients were chosen when the campaign started."
	}
	out = append(out, c)

	if ok {
		out = append(out, contentWarnings(ct, f)...)
		// Scored while it can still change: spamd takes a second or two.
		if r.Spam != nil && (cp.Status == models.CampaignDraft || cp.Status == models.CampaignScheduled || cp.Status == models.CampaignPaused) {
			out = append(out, r.spamCheck(ctx, id, settings))
		}
	}
	return out, nil
}

// dkimCheck reports the key the engine will sign the campaign's mail with:
// models.SigningDomain decides for both.
func (r *Readiness) dkimCheck(ctx context.Context, cp *models.Campaign, captured bool) Check {
	from := strings.ToLower(models.EmailDomain(cp.FromEmail))
	c := Check{ID: "campaign.dkim", Title: "The From domain has a DKIM key", Blocking: !captured}
	var chosen *models.SendingDomain
	if cp.SendingDomainID != nil {
		chosen, _ = r.Store.SendingDomain(ctx, *cp.SendingDomainID)
	}
	ds, err := r.Store.SendingDomains(ctx)
	if err != nil {
		c.Detail, c.FixHint = "The sending domains could not be read.", "Try again; the error is in the server's log."
		return c
	}
	sd := models.SigningDomain(ds, chosen, from)
	c.OK = sd != nil
	switch {
	case c.OK && sd.Domain == from:
		c.Detail = "Signed by " + sd.Domain + " (selector " + sd.Selector + ")."
		return c
	case c.OK:
		c.Detail = "Signed by " + sd.Domain + " (selector " + sd.Selector + ") for " + from + ": d=" + sd.Domain +
			" aligns with the From domain under relaxed DKIM alignment (adkim=r, as in the DMARC record Herald advises; a strict adkim=s would not)."
		return c
	}
	if r.relaySignsFor(cp) {
		return r.relayDKIMCheck(ctx, from)
	}
	c.Detail = "No DKIM key signs for " + from + ": its mail would go out unsigned."
	if chosen != nil {
		c.Detail = "The chosen sending domain " + chosen.Domain + " does not cover " + from + ", and no other does: its mail would go out unsigned."
	}
	c.FixHint = "Add " + from + " (or a parent domain of it) under Deliverability → Sending domains, or send from a domain that is set up."
	if captured {
		c.Detail += " Mail is only captured into the outbox now, so this does not block; it will before sending for real."
	}
	return c
}

// contentWarnings are the non-blocking rules on the message's content.
func contentWarnings(ct Content, f footer) []Check {
	var out []Check
	upper, lower := 0, 0
	for _, r := range f.subject {
		switch {
		case unicode.IsUpper(r):
			upper++
		case unicode.IsLower(r):
			lower++
		}
	}
	c := Check{ID: "campaign.caps", Title: "The subject is not in capitals", OK: !(upper >= 4 && lower == 0)}
	if !c.OK {
		c.Detail, c.FixHint = "“"+f.subject+"” is all capitals, which spam filters score against.", "Write the subject in sentence case."
	}
	out = append(out, c)

	c = Check{ID: "campaign.image_only", Title: "The message has text, not just images", OK: true}
	if strings.TrimSpace(ct.Body) != "" {
		imgs := strings.Count(strings.ToLower(f.body), "<img")
		words := len(strings.Fields(urlRE.ReplaceAllString(htmlToText(f.body), "")))
		size := utf8.RuneCountInString(f.body) - strings.Count(f.body, "\r\n")
		switch {
		case imgs > 0 && words < 40:
			c.OK = false
			c.Detail = fmt.Sprintf("%d images and only %d words.", imgs, words)
			c.FixHint = "Put the message in words too: image-only mail is often filtered, and unreadable with images off."
		case imgs > 0 && size <= imageOnlyBytes:
			// SpamAssassin's HTML_IMAGE_ONLY_* rules measure the HTML,
			// markup included (the open pixel is exempt: padForPixel).
			c.OK = false
			c.Detail = fmt.Sprintf("%d images in only %d characters of HTML: SpamAssassin scores an image in HTML under %d characters as image-only mail (HTML_IMAGE_ONLY).", imgs, size, imageOnlyBytes)
			c.FixHint = "Add text to the message, or leave the image out of a short one."
		}
	}
	out = append(out, c)

	var short []string
	for _, u := range urlRE.FindAllString(ct.Body+" "+ct.Text, -1) {
		if pu, err := url.Parse(u); err == nil && shorteners[strings.ToLower(strings.TrimPrefix(pu.Hostname(), "www."))] {
			short = append(short, pu.Hostname())
		}
	}
	c = Check{ID: "campaign.shorteners", Title: "No URL shorteners", OK: len(short) == 0}
	if !c.OK {
		c.Detail, c.FixHint = "Links through "+strings.Join(short, ", ")+".", "Link to the real address: shortened links are a common spam signal."
	}
	out = append(out, c)

	// Informational: says which text part goes out, derived or written.
	c = Check{ID: "campaign.text_part", Title: "The text part", OK: true}
	switch {
	case strings.TrimSpace(ct.Body) == "":
		c.Detail = "Text only: the message is its own text part."
	case f.hasText:
		c.Detail = "Written by you: people reading plain text get your text part."
	default:
		c.Detail = "Derived from the HTML: its words, headings and lists, with links as numbered footnotes."
		c.FixHint = "Write your own text part in the campaign's content if the derived one reads badly."
	}
	out = append(out, c)
	return out
}

func isNotFound(err error) bool { return errors.Is(err, models.ErrNotFound) }
