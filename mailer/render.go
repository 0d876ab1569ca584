package mailer

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	htemplate "html/template"
	"io"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	ttemplate "text/template"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/net/html"

	"github.com/herald-mail/herald/internal/token"
	"github.com/herald-mail/herald/models"
)

// TemplateData is what campaign and transactional templates see. The
// subject and text body are text/template, the HTML body html/template; all
// three get the same data:
//
//	.Subscriber.Email        the recipient's address
//	.Subscriber.Name         their name ("" when unknown)
//	.Subscriber.Attributes   their JSON attributes, e.g. {{.Subscriber.Attributes.city}}
//	.UnsubscribeURL          one-click unsubscribe page ({root}/u/{token}); "" for transactional mail
//	.PreferencesURL          preference centre ({root}/p/{token}); "" when the recipient is no subscriber
//	.Org.Name                the organisation name (setting org_name)
//	.Org.PostalAddress       its postal address (setting postal_address)
//	.Campaign.Name           the campaign's name ("" for transactional mail)
//	.Campaign.Subject        the campaign's subject line, after template expansion
//	.Data                    transactional mail only: the data passed by the API caller
//
// Links (<a href="http...">) whose URL holds no template action are
// rewritten to signed click URLs ({root}/t/c/{token}) when click tracking is
// on, and an open pixel ({root}/t/o/{token}) is added before </body> when
// open tracking is on.
type TemplateData struct {
	Subscriber     SubscriberData
	UnsubscribeURL string
	PreferencesURL string
	Org            OrgData
	Campaign       CampaignData
	Data           map[string]any

	budget *budget // what this execution may still use (limits.go)
}

// SubscriberData is the recipient as templates see them.
type SubscriberData struct {
	Email      string
	Name       string
	Attributes map[string]any
}

// OrgData is the sending organisation.
type OrgData struct {
	Name          string
	PostalAddress string
}

// CampaignData is the campaign being sent.
type CampaignData struct {
	Name    string
	Subject string
}

// compiled is a template parsed once per campaign, with its tracked links
// and pixel turned into placeholders and its text part derived from the
// HTML. The placeholders are literal template text, so executing the
// template leaves them alone and one scan of the output swaps in each
// recipient's signed URLs (cheaper than calling back into Go from the
// template for every link).
type compiled struct {
	subject *textTemplate
	html    *htmlTemplate // nil for a text-only template
	text    *textTemplate
	links   []string // tracked link targets (with UTM tags when asked), by index
	linkIDs []int64  // their ids in the links table, filled by the engine
	pixel   bool     // the HTML part carries the open pixel
}

// compileOptions say how a template is prepared.
type compileOptions struct {
	TrackClicks  bool
	TrackOpens   bool
	UTM          bool   // add utm_source/utm_medium/utm_campaign to tracked links
	CampaignName string // utm_campaign
	// Preheader is hidden preview text put first in the HTML body (not in
	// the text part); "" for none.
	Preheader string
}

var hrefRE = regexp.MustCompile(`(?is)(<a\s[^>]*?\bhref\s*=\s*)("[^"]*"|'[^']*')`)

// placeholder prefixes a tracked link's number ("…/3/") or the pixel
// ("…/o/") in compiled templates; .invalid can never be a real host.
const placeholder = "https://herald.placeholder.invalid/"

var pixelTag = `<img src="` + placeholder + `o/" width="1" height="1" alt="" style="display:block;width:1px;height:1px;border:0">`

// imageOnlyBytes is the HTML size up to which SpamAssassin's
// HTML_IMAGE_ONLY_* rules (20_html_tests.cf) score an HTML part holding
// any image: they measure the raw HTML, markup included, and were meant
// for image spam, a picture with few words around it. A 1×1 open pixel
// counts as an image there too, so a short newsletter with open tracking
// scored 2.2 points (HTML_IMAGE_ONLY_32) for the pixel alone.
const imageOnlyBytes = 3200

// pixelNote explains the padding padForPixel adds, to whoever reads the
// source.
const pixelNote = "<!-- The image below is the open-tracking pixel. This note keeps a short message from being read as image-only mail. "

// padForPixel lengthens a short HTML part whose only image is the open
// pixel past imageOnlyBytes with an HTML comment, so the pixel alone does
// not make it image-only mail. A part with images of its own is left as
// it is: whether those make it image-only is the checklist's warning
// (campaign.image_only), not something to hide.
func padForPixel(body []byte) []byte {
	// SpamAssassin counts characters, with line ends as one.
	size := utf8.RuneCount(body) - bytes.Count(body, []byte("\r\n"))
	if size > imageOnlyBytes || bytes.Count(bytes.ToLower(body), []byte("<img")) != 1 {
		return body
	}
	i := bytes.LastIndex(bytes.ToLower(body), []byte("<img"))
	n := imageOnlyBytes + 16 - size - len(pixelNote) - len("-->\n")
	out := make([]byte, 0, len(body)+n+len(pixelNote)+8)
	out = append(out, body[:i]...)
	out = append(out, pixelNote...)
	for ; n > 0; n -= 75 {
		// Lines of spaces, not one long line: quoted-printable would
		// break it anyway.
		out = append(out, '\n')
		out = append(out, strings.Repeat(" ", min(n-1, 74))...)
	}
	out = append(out, "-->\n"...)
	return append(out, body[i:]...)
}

// compileSubject parses a subject line, the template's or an override.
func compileSubject(name, subject string) (*textTemplate, error) {
	return parseText(name+".subject", subject)
}

// textTemplate is a parsed subject or text body, with its straight form
// when it has one.
type textTemplate struct {
	*ttemplate.Template
	fast *straight
}

func parseText(name, src string) (*textTemplate, error) {
	t, err := ttemplate.New(name).Option("missingkey=zero").Parse(src)
	if err == nil {
		err = boundText(t)
	}
	if err != nil {
		return nil, err
	}
	return &textTemplate{t, straightText(t)}, nil
}

// htmlTemplate is a parsed HTML body, with its straight form when it has
// one.
type htmlTemplate struct {
	*htemplate.Template
	fast *straight
}

func parseHTML(name, src string) (*htmlTemplate, error) {
	t, err := htemplate.New(name).Option("missingkey=zero").Parse(src)
	if err == nil {
		err = boundHTML(t)
	}
	if err != nil {
		return nil, err
	}
	return &htmlTemplate{t, straightHTML(t)}, nil
}

// run executes t for d into w.
func (t *textTemplate) run(w *bytes.Buffer, d *TemplateData) error {
	return t.fast.runOr(t.Template, w, d)
}

// run executes t for d into w.
func (t *htmlTemplate) run(w *bytes.Buffer, d *TemplateData) error {
	return t.fast.runOr(t.Template, w, d)
}

// runOr executes st (which may be nil) for d into w, or lib when st cannot,
// within the template limits (limits.go).
func (st *straight) runOr(lib interface{ Execute(io.Writer, any) error }, w *bytes.Buffer, d *TemplateData) error {
	n := w.Len()
	if st != nil && st.execute(w, d) {
		return checkStraight(w.Len() - n)
	}
	w.Truncate(n)
	return executeBounded(lib, w, d)
}

// compileTemplate parses a template's subject and bodies.
func compileTemplate(name, subject, htmlSrc, textSrc string, o compileOptions) (*compiled, error) {
	c := &compiled{}
	var err error
	if c.subject, err = compileSubject(name, subject); err != nil {
		return nil, fmt.Errorf("subject: %w", err)
	}
	if strings.TrimSpace(htmlSrc) != "" {
		src := htmlSrc
		if o.TrackClicks {
			src = c.rewriteLinks(src, o)
		}
		if strings.TrimSpace(textSrc) == "" {
			textSrc = htmlToText(src)
		}
		src = withPreheader(src, o.Preheader)
		if o.TrackOpens {
			c.pixel = true
			if i := strings.LastIndex(strings.ToLower(src), "</body>"); i >= 0 {
				src = src[:i] + pixelTag + src[i:]
			} else {
				src += pixelTag
			}
		}
		if c.html, err = parseHTML(name+".html", src); err != nil {
			return nil, fmt.Errorf("HTML body: %w", err)
		}
	}
	if c.text, err = parseText(name+".text", textSrc); err != nil {
		return nil, fmt.Errorf("text body: %w", err)
	}
	return c, nil
}

// rewriteLinks replaces the URLs of trackable links with TrackedURL calls.
func (c *compiled) rewriteLinks(src string, o compileOptions) string {
	index := map[string]int{}
	return hrefRE.ReplaceAllStringFunc(src, func(m string) string {
		sub := hrefRE.FindStringSubmatch(m)
		raw := html.UnescapeString(strings.TrimSpace(sub[2][1 : len(sub[2])-1]))
		lower := strings.ToLower(raw)
		if strings.Contains(raw, "{{") || !(strings.HasPrefix(lower, "http://") || strings.HasPrefix(lower, "https://")) {
			return m
		}
		target := raw
		if o.UTM {
			target = addUTM(raw, o.CampaignName)
		}
		i, ok := index[target]
		if !ok {
			i = len(c.links)
			index[target] = i
			c.links = append(c.links, target)
		}
		return sub[1] + `"` + placeholder + strconv.Itoa(i) + `/"`
	})
}

func addUTM(raw, campaign string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	q := u.Query()
	for k, v := range map[string]string{"utm_source": "herald", "utm_medium": "email", "utm_campaign": campaign} {
		if q.Get(k) == "" {
			q.Set(k, v)
		}
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// org and root settings the renderer needs, read once per campaign.
type renderEnv struct {
	root       string // root URL without trailing slash
	org        OrgData
	keys       *token.Keyring
	feedbackID string // sender part of Feedback-ID
	// trackingOff: the tracking mode setting is off, so campaigns are
	// compiled without pixel and tracked links.
	trackingOff bool
}

// msgParams are the per-campaign parts of every message.
type msgParams struct {
	campaignID   int64
	campaignName string
	sender       sender // From and Reply-To, formatted once (newSender)
	domain       string // sending domain: Message-ID and List-Id
	returnPath   string // VERP domain
	listHeaders  bool   // List-Unsubscribe & co (campaigns)
	testLinks    bool   // a campaign's test send: unsubscribe and preference links to TestLinkToken
	placement    string // a placement test's token (X-Herald-Placement), "" for none
	signer       *dkimSigner
}

// TestLinkToken stands in for the unsubscribe and preference tokens of a
// campaign's test send: the test is not tied to a subscriber, so its links
// lead to a page saying what they do in the campaign, and change nothing.
const TestLinkToken = "test"

// rendered is one message ready for the transport.
type rendered struct {
	mailFrom  string
	messageID string
	subject   string
	utf8      bool          // an address in the header is not ASCII: the message needs SMTPUTF8
	buf       *bytes.Buffer // headers and body, CRLF line ends, signature not included
	sig       []byte        // DKIM-Signature header fields to prepend
}

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func (r *rendered) release() {
	if r.buf != nil && r.buf.Cap() < 1<<20 {
		r.buf.Reset()
		bufPool.Put(r.buf)
	}
	r.buf = nil
}

// recipient is what rendering needs of one delivery.
type recipient struct {
	deliveryID   int64
	subscriberID int64
	listID       int64
	email, name  string
	attributes   map[string]any
	data         map[string]any
}

// render executes c for one recipient and builds the MIME message.
func (env *renderEnv) render(c *compiled, p *msgParams, rc *recipient, now time.Time) (*rendered, error) {
	kr := env.keys
	d := &TemplateData{
		Subscriber: SubscriberData{Email: rc.email, Name: rc.name, Attributes: rc.attributes},
		Org:        env.org,
		Campaign:   CampaignData{Name: p.campaignName},
		Data:       rc.data,
	}
	switch {
	case p.testLinks:
		d.UnsubscribeURL = env.root + "/u/" + TestLinkToken
		d.PreferencesURL = env.root + "/p/" + TestLinkToken
	case p.listHeaders:
		d.UnsubscribeURL = env.root + "/u/" + kr.Sign(token.Unsubscribe, rc.deliveryID)
	}
	if rc.subscriberID != 0 {
		d.PreferencesURL = env.root + "/p/" + kr.Sign(token.Preferences, rc.subscriberID)
	}
	urls := &trackedURLs{root: env.root, keys: kr, delivery: rc.deliveryID, campaign: p.campaignID, linkIDs: c.linkIDs,
		out: bufPool.Get().(*bytes.Buffer)}
	defer func() { urls.out.Reset(); bufPool.Put(urls.out) }()

	scratch := bufPool.Get().(*bytes.Buffer)
	defer func() { scratch.Reset(); bufPool.Put(scratch) }()
	if err := c.subject.run(scratch, d); err != nil {
		return nil, fmt.Errorf("subject: %w", err)
	}
	subject := headerText(oneLine(scratch.Bytes()))
	d.Campaign.Subject = subject
	scratch.Reset()

	out := &rendered{
		mailFrom:  "b-" + kr.SignAddress(token.Bounce, rc.deliveryID) + "@" + p.returnPath,
		messageID: "<" + kr.Sign(token.MessageID, rc.deliveryID) + "@" + p.domain + ">",
		subject:   subject,
		buf:       bufPool.Get().(*bytes.Buffer),
	}
	w := out.buf
	if p.sender.fields == "" {
		out.release()
		return nil, errors.New("the message has no sender (From)")
	}
	w.WriteString(p.sender.fields)
	h := headerWriter{w: w, utf8: p.sender.utf8}
	if err := h.mailbox("To", rc.name, rc.email); err != nil {
		out.release()
		return nil, err
	}
	h.text("Subject", subject)
	w.WriteString("Date: ") // Herald's own, short: appended without a string
	w.Write(now.AppendFormat(w.AvailableBuffer(), time.RFC1123Z))
	w.WriteString("\r\n")
	h.field("Message-ID", out.messageID)
	if p.listHeaders || p.testLinks {
		domain := ""
		if p.listHeaders {
			// The mailto form too; a test's would only bounce (the inbound
			// server refuses tokens it did not sign).
			domain = p.returnPath
		}
		// The mailto address carries the URL's token in its address form:
		// a mail server may change the case of the local part.
		h.listUnsubscribe(d.UnsubscribeURL, token.AddressForm(d.UnsubscribeURL[strings.LastIndexByte(d.UnsubscribeURL, '/')+1:]), domain)
		h.field("List-Unsubscribe-Post", "List-Unsubscribe=One-Click")
	}
	if p.listHeaders {
		list := strconv.FormatInt(rc.listID, 10)
		h.fieldOf("List-Id", "<", list, ".list-id.", p.domain, ">")
		h.fieldOf("Feedback-ID", strconv.FormatInt(p.campaignID, 10), ":", list, ":", env.feedbackID)
	}
	if p.placement != "" {
		h.field(models.PlacementHeader, p.placement)
	}
	h.field("MIME-Version", "1.0")
	out.utf8 = h.utf8

	if c.html == nil {
		if err := c.text.run(scratch, d); err != nil {
			return nil, fmt.Errorf("text body: %w", err)
		}
		writePart(w, "text/plain; charset=utf-8", urls.expand(scratch))
		return out, nil
	}
	var bnd [12]byte
	hex.Encode(bnd[:], []byte(out.messageID[1:7]))
	boundary := "=_herald_" + string(bnd[:]) + strconv.FormatInt(rc.deliveryID, 36)
	w.WriteString("Content-Type: multipart/alternative; boundary=\"")
	w.WriteString(boundary)
	w.WriteString("\"\r\n\r\n--")
	w.WriteString(boundary)
	w.WriteString("\r\n")
	if err := c.text.run(scratch, d); err != nil {
		return nil, fmt.Errorf("text body: %w", err)
	}
	writePart(w, "text/plain; charset=utf-8", urls.expand(scratch))
	scratch.Reset()
	w.WriteString("\r\n--")
	w.WriteString(boundary)
	w.WriteString("\r\n")
	if err := c.html.run(scratch, d); err != nil {
		return nil, fmt.Errorf("HTML body: %w", err)
	}
	body := urls.expand(scratch)
	if c.pixel {
		body = padForPixel(body)
	}
	writePart(w, "text/html; charset=utf-8", body)
	w.WriteString("\r\n--")
	w.WriteString(boundary)
	w.WriteString("--\r\n")
	return out, nil
}

// oneLine is s with its runs of white space made single spaces and trimmed,
// as strings.Fields and strings.Join would make it: a Subject is one line.
// Most subjects need no change and are not split and joined.
func oneLine(s []byte) string {
	prevSpace := true // a leading space goes too
	for i := 0; i < len(s); {
		r, n := rune(s[i]), 1
		if r >= utf8.RuneSelf {
			r, n = utf8.DecodeRune(s[i:])
		}
		space := unicode.IsSpace(r)
		if space && (r != ' ' || prevSpace) {
			return strings.Join(strings.Fields(string(s)), " ")
		}
		prevSpace = space
		i += n
	}
	if prevSpace && len(s) > 0 {
		return strings.Join(strings.Fields(string(s)), " ")
	}
	return string(s)
}

// writePart writes a Content-Type, a transfer encoding and the body: 7bit
// when the body is plain ASCII with short lines (the common case, and the
// cheapest), quoted-printable otherwise.
func writePart(w *bytes.Buffer, ctype string, body []byte) {
	w.WriteString("Content-Type: ")
	w.WriteString(ctype)
	if is7bit(body) {
		w.WriteString("\r\nContent-Transfer-Encoding: 7bit\r\n\r\n")
		writeCRLF(w, body)
		if len(body) > 0 && body[len(body)-1] != '\n' {
			w.WriteString("\r\n")
		}
		return
	}
	w.WriteString("\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n")
	writeQP(w, body)
	w.WriteString("\r\n")
}

// writeQP writes b quoted-printable (RFC 2045 6.7), as mime/quotedprintable
// does, but copies each run of bytes that need no encoding at once rather
// than a byte at a time through a bufio.Writer: a newsletter is mostly
// such runs, and the per-byte path was a tenth of rendering. Line breaks
// (CRLF or a bare LF) become CRLF; encoded lines stay within 76 characters.
func writeQP(w *bytes.Buffer, b []byte) {
	const max = 75 // characters before a soft line break's "="
	line := 0
	for i := 0; i < len(b); {
		c := b[i]
		switch {
		case c == '\n' || (c == '\r' && i+1 < len(b) && b[i+1] == '\n'):
			w.WriteString("\r\n")
			line = 0
			if c == '\r' {
				i++
			}
			i++
			continue
		case qpLiteral(c):
			j, end := i+1, min(len(b), i+max-line)
			for j < end && qpSafe[b[j]] {
				j++
			}
			// Space and tab may not end a line: leave one before a break
			// to be encoded.
			if end := j == len(b) || b[j] == '\n' || b[j] == '\r'; end && (b[j-1] == ' ' || b[j-1] == '\t') {
				j--
			}
			if j > i {
				if line+(j-i) > max {
					w.WriteString("=\r\n")
					line = 0
				}
				w.Write(b[i:j])
				line += j - i
				i = j
				continue
			}
		}
		if line+3 > max {
			w.WriteString("=\r\n")
			line = 0
		}
		w.WriteByte('=')
		w.WriteByte(upperHex[c>>4])
		w.WriteByte(upperHex[c&0xf])
		line += 3
		i++
	}
}

const upperHex = "0123456789ABCDEF"

// qpSafe is qpLiteral as a table, for the loop over runs of plain bytes.
var qpSafe = func() (t [256]bool) {
	for c := range t {
		t[c] = qpLiteral(byte(c))
	}
	return t
}()

// qpLiteral reports whether c may appear as itself in quoted-printable
// (space and tab too, except at the end of a line, which writeQP handles).
func qpLiteral(c byte) bool {
	return (c >= 33 && c <= 126 && c != '=') || c == ' ' || c == '\t'
}

// is7bit reports whether b may go as 7bit (RFC 5322): no NUL and no byte
// above 0x7F, CR only before LF, and lines of at most 900 characters (998
// allowed). It tests eight bytes at a time and finds line ends with
// IndexByte: it runs over every body, and a byte loop was a tenth of
// rendering.
func is7bit(b []byte) bool {
	const lo, hi = 0x0101010101010101, 0x8080808080808080
	i := 0
	for ; i+8 <= len(b); i += 8 {
		x := binary.LittleEndian.Uint64(b[i:])
		if x&hi != 0 || (x-lo)&^x&hi != 0 { // a high bit, or a zero byte
			return false
		}
	}
	for _, c := range b[i:] {
		if c >= 0x80 || c == 0 {
			return false
		}
	}
	for len(b) > 0 {
		line := b
		if k := bytes.IndexByte(b, '\n'); k >= 0 {
			line, b = b[:k], b[k+1:]
		} else {
			b = nil
			if len(line) > 0 && line[len(line)-1] == '\r' {
				return false // a CR ending the body has no LF after it
			}
		}
		if k := bytes.IndexByte(line, '\r'); k >= 0 && k != len(line)-1 {
			return false
		}
		if n := len(line); n > 900 && !(n == 901 && line[900] == '\r') {
			return false
		}
	}
	return true
}

// writeCRLF copies b turning bare LF into CRLF.
func writeCRLF(w io.Writer, b []byte) {
	bw := w.(*bytes.Buffer)
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			bw.Write(b)
			return
		}
		if i > 0 && b[i-1] == '\r' {
			bw.Write(b[:i+1])
		} else {
			bw.Write(b[:i])
			bw.WriteString("\r\n")
		}
		b = b[i+1:]
	}
}

// trackedURLs are one recipient's signed tracking URLs, made on demand.
type trackedURLs struct {
	root     string
	keys     *token.Keyring
	delivery int64
	campaign int64 // carried in click tokens so the redirect needs no database read
	linkIDs  []int64
	clicks   []string
	open     string
	out      *bytes.Buffer // expand's output, reused
}

func (u *trackedURLs) click(i int) string {
	if u.clicks == nil {
		u.clicks = make([]string, len(u.linkIDs))
	}
	if i < 0 || i >= len(u.linkIDs) {
		return ""
	}
	if u.clicks[i] == "" {
		if u.campaign != 0 {
			u.clicks[i] = u.root + "/t/c/" + u.keys.Sign(token.CampaignClick, u.delivery, u.linkIDs[i], u.campaign)
		} else {
			u.clicks[i] = u.root + "/t/c/" + u.keys.Sign(token.Click, u.delivery, u.linkIDs[i])
		}
	}
	return u.clicks[i]
}

func (u *trackedURLs) openURL() string {
	if u.open == "" {
		u.open = u.root + "/t/o/" + u.keys.Sign(token.Open, u.delivery)
	}
	return u.open
}

// expand returns b's bytes with every placeholder replaced by its URL.
func (u *trackedURLs) expand(b *bytes.Buffer) []byte {
	src := b.Bytes()
	i := bytes.Index(src, []byte(placeholder))
	if i < 0 {
		return src
	}
	u.out.Reset()
	for i >= 0 {
		u.out.Write(src[:i])
		rest := src[i+len(placeholder):]
		end := bytes.IndexByte(rest, '/')
		switch {
		case end == 1 && rest[0] == 'o':
			u.out.WriteString(u.openURL())
		case end > 0:
			n, err := strconv.Atoi(string(rest[:end]))
			if err != nil {
				end = -1
				break
			}
			u.out.WriteString(u.click(n))
		}
		if end < 0 {
			u.out.WriteString(placeholder)
			src = rest
		} else {
			src = rest[end+1:]
		}
		i = bytes.Index(src, []byte(placeholder))
	}
	u.out.Write(src)
	return u.out.Bytes()
}
