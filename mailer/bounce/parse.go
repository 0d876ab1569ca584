package bounce

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/charset" // also decodes non-UTF-8 parts for go-message
	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"
)

// maxMessageSize caps what Parse reads; bounces that quote a huge original
// are cut, which loses nothing we use.
const maxMessageSize = 8 << 20

// Report is what Parse found in one inbound message.
type Report struct {
	// Recipients holds one verdict per recipient the message reports on. It
	// is empty when the message is not a bounce, auto-reply or complaint.
	Recipients []Verdict
	// FeedbackType is the ARF Feedback-Type ("abuse", "auth-failure", …) of
	// a complaint report; empty otherwise.
	FeedbackType string
	// MessageID is the Message-ID of the original message, without angle
	// brackets, when the report quotes it. It lets a bounce be matched to a
	// delivery when there is no VERP address.
	MessageID string
	// Original holds the original message's header when quoted; its zero
	// value is an empty header.
	Original mail.Header
	// ReportingMTA is the host that produced the report, when it says.
	ReportingMTA string
}

// Parse reads one message and reports the recipients it bounces, auto-replies
// for or complains about. A message that is none of these gives a Report with
// no recipients and no error; only a failure to read r is an error. Parse is
// lenient: whatever it can read of a damaged message it uses, which suits
// mail arriving at the inbound server. ParseStrict also refuses input that is
// not a message at all.
func Parse(r io.Reader) (*Report, error) {
	raw, err := io.ReadAll(io.LimitReader(r, maxMessageSize))
	if err != nil {
		return nil, fmt.Errorf("bounce: read message: %w", err)
	}
	return parseBytes(normalizeNewlines(raw)), nil
}

// ParseStrict is Parse for files a person hands us: input that is not a
// readable message (binary data, an empty file, a header cut off before its
// end, a report cut off before its machine-readable part) is an error that
// says what is wrong, never an empty report.
func ParseStrict(r io.Reader) (*Report, error) {
	raw, err := io.ReadAll(io.LimitReader(r, maxMessageSize))
	if err != nil {
		return nil, fmt.Errorf("bounce: read message: %w", err)
	}
	raw = normalizeNewlines(raw)
	if err := checkMessage(raw); err != nil {
		return nil, err
	}
	return parseBytes(raw), nil
}

// normalizeNewlines turns CRLF and lone CR (classic Mac OS) line endings
// into LF, so that a file saved on any system reads alike. A CR never
// occurs inside a multi-byte character of the charsets mail uses.
func normalizeNewlines(b []byte) []byte {
	if bytes.IndexByte(b, '\r') < 0 {
		return b
	}
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		c := b[i]
		if c == '\r' {
			if i+1 < len(b) && b[i+1] == '\n' {
				continue
			}
			c = '\n'
		}
		out = append(out, c)
	}
	return out
}

func parseBytes(raw []byte) *Report {
	msgs := splitMbox(raw)
	rep := parseRaw(msgs[0], 0)
	for _, more := range msgs[1:] {
		// A saved mailbox holding several reports: one Report for all.
		rep.merge(parseRaw(more, 0))
	}
	return rep
}

// splitMbox splits a saved mbox file into its messages: each after the
// first starts at a "From " line that follows a blank line and precedes a
// header field (mbox quotes such lines in bodies as ">From "). A file that
// does not start with "From " is one message.
func splitMbox(raw []byte) [][]byte {
	if !bytes.HasPrefix(bytes.TrimLeft(raw, "\r\n"), []byte("From ")) {
		return [][]byte{raw}
	}
	var out [][]byte
	for start := 0; ; {
		i := bytes.Index(raw[start:], []byte("\n\nFrom "))
		if i < 0 {
			return append(out, raw)
		}
		i += start
		next := raw[i+2:]
		// A separator is followed by a header, not by more prose.
		if nl := bytes.IndexByte(next, '\n'); nl > 0 && headerLineRe.Match(next[nl+1:]) {
			out = append(out, raw[:i+1])
			raw, start = next, 0
			continue
		}
		start = i + 2
	}
}

// merge adds the recipients of other that rep does not have yet.
func (rep *Report) merge(other *Report) {
	have := map[string]bool{}
	for _, v := range rep.Recipients {
		have[v.Recipient] = true
	}
	for _, v := range other.Recipients {
		if !have[v.Recipient] {
			rep.Recipients = append(rep.Recipients, v)
		}
	}
	if rep.FeedbackType == "" {
		rep.FeedbackType = other.FeedbackType
	}
}

// maxNesting bounds how deep Parse looks into notices that attach another
// notice (a gateway forwarding the bounce it received).
const maxNesting = 2

// parseRaw parses one message; depth counts the attached notices it is
// inside.
func parseRaw(raw []byte, depth int) *Report {
	m := readMessage(raw)
	m.depth = depth
	rep := &Report{}
	rep.setOriginal(m)

	ses, isSES := sesJSON(m)
	switch {
	case isSES:
		parseSES(ses, rep)
	case len(m.feedback) > 0:
		parseFeedback(m, rep)
	case len(m.status) > 0 || hasInlineStatus(m):
		parseDSN(m, rep)
		if len(rep.Recipients) == 0 {
			parseText(m, rep)
		}
	case isFML(m):
		parseFML(m, rep)
	case isAutoReply(m):
		parseAutoReply(m, rep)
	case isFeedbackText(m):
		parseFeedbackText(m, rep)
	case looksLikeBounce(m):
		parseText(m, rep)
	}
	return rep
}

// setOriginal records the quoted original header: from a MIME part when
// there was one, else from a header block embedded in the text.
func (rep *Report) setOriginal(m *msg) {
	h := m.original
	if h == nil {
		h = m.embedded
	}
	if h == nil {
		return
	}
	rep.Original = mail.Header{Header: message.Header{Header: *h}}
	if id, err := rep.Original.MessageID(); err == nil {
		rep.MessageID = id
	}
	if rep.MessageID == "" {
		rep.MessageID = strings.Trim(strings.TrimSpace(h.Get("Message-Id")), "<>")
	}
}

// msg is an inbound message taken apart into what the parsers need.
type msg struct {
	header   mail.Header
	subject  string
	from     string // bare address, lowercase
	texts    []string
	status   []string // message/delivery-status bodies
	feedback []string // message/feedback-report bodies
	original *textproto.Header
	embedded *textproto.Header // original header found inside the text
	notice   string            // human-readable text before any quoted original
	attached string            // the first attached message, whole
	depth    int               // how many attached messages deep this one is
	oursSet  map[string]bool   // cache of ours()
	// charsetHint is the charset the message declares somewhere, for
	// unlabelled 8-bit text.
	charsetHint string
}

// maxDepth bounds MIME nesting; real reports nest two or three levels.
const maxDepth = 8

// readMessage parses raw as MIME. Malformed MIME never fails: whatever
// cannot be parsed is kept as plain text.
func readMessage(raw []byte) *msg {
	m := &msg{}
	raw = trimEnvelope(raw)
	m.charsetHint = charsetHint(raw)
	e, err := message.Read(bytes.NewReader(raw))
	if e == nil || (err != nil && !message.IsUnknownCharset(err) && !message.IsUnknownEncoding(err)) {
		m.fallback(raw)
		m.finish()
		return m
	}
	m.header = mail.Header{Header: e.Header}
	if !m.walk(e, 0) {
		// Keep what the walk found but read the whole body as text too, so
		// a broken boundary does not hide the diagnostic.
		m.texts = append(m.texts, decodeText([]byte(bodyText(raw)), "", m.charsetHint))
	}
	m.finish()
	return m
}

// charsetHint returns the first charset a part of raw declares other than
// ASCII and UTF-8: the charset to read unlabelled 8-bit text in, since a
// notice and the message it returns are usually written in the same one.
func charsetHint(raw []byte) string {
	rest := raw[:min(len(raw), 64<<10)]
	for n := 0; n < 8; n++ {
		i := bytes.Index(rest, []byte("harset")) // charset, Charset, CHARSET aside
		if i < 0 {
			return ""
		}
		rest = rest[i+len("harset"):]
		v := bytes.TrimLeft(rest, " \t")
		if len(v) == 0 || v[0] != '=' {
			continue
		}
		v = bytes.TrimLeft(v[1:], " \t\"")
		end := bytes.IndexFunc(v, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("_.:-", r))
		})
		if end < 0 {
			end = len(v)
		}
		switch cs := strings.ToLower(string(v[:end])); cs {
		case "", "us-ascii", "utf-8", "utf8", "ascii":
		default:
			return cs
		}
	}
	return ""
}

// trimEnvelope drops the mbox "From " line that saved bounces often start
// with; it is not a header field and would end the header at once.
func trimEnvelope(raw []byte) []byte {
	raw = bytes.TrimLeft(raw, "\r\n")
	if bytes.HasPrefix(raw, []byte("From ")) {
		if i := bytes.IndexByte(raw, '\n'); i >= 0 {
			return raw[i+1:]
		}
	}
	return raw
}

// fallback treats raw as a header we may not be able to parse and a text body.
func (m *msg) fallback(raw []byte) {
	h, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(raw)))
	if err == nil {
		m.header = mail.Header{Header: message.Header{Header: h}}
	}
	m.texts = append(m.texts, decodeText([]byte(bodyText(raw)), "", m.charsetHint))
}

// decodeText returns body as UTF-8: from the charset label when there is
// one (and go-message has not decoded it); from ISO-2022-JP when the text
// carries its escape sequences without a label, as Japanese MTAs write
// their notices and delivery-status fields; and when unlabelled text is not
// UTF-8, from the charset the message declares elsewhere (hint).
func decodeText(body []byte, label, hint string) string {
	if out, ok := decodeAs(body, label); ok {
		return out
	}
	if bytes.Contains(body, []byte("\x1b$B")) || bytes.Contains(body, []byte("\x1b$@")) || bytes.Contains(body, []byte("\x1b(J")) {
		if out, ok := decodeAs(body, "iso-2022-jp"); ok {
			return out
		}
	}
	if label == "" && !utf8.Valid(body) {
		if out, ok := decodeAs(body, hint); ok {
			return out
		}
	}
	return string(body)
}

// decodeAs decodes body from charset; ok is false for no charset, ASCII or
// UTF-8 (nothing to do) or one the charset package does not know.
func decodeAs(body []byte, cs string) (string, bool) {
	cs = strings.ToLower(strings.TrimSpace(cs))
	switch cs {
	case "", "us-ascii", "ascii", "utf-8", "utf8":
		return "", false
	}
	r, err := charset.Reader(cs, bytes.NewReader(body))
	if err != nil {
		return "", false
	}
	out, err := io.ReadAll(r)
	if err != nil {
		return "", false
	}
	return string(out), true
}

// bodyText returns what follows the first blank line, or all of raw.
func bodyText(raw []byte) string {
	s := strings.ReplaceAll(string(raw), "\r\n", "\n")
	if i := strings.Index(s, "\n\n"); i >= 0 {
		return s[i+2:]
	}
	return s
}

// walk collects the parts of e. It reports false when the MIME structure
// broke part-way.
func (m *msg) walk(e *message.Entity, depth int) (ok bool) {
	defer func() {
		// go-message is careful, but a bounce is hostile input: a parser bug
		// must cost us this message's structure, not the process.
		if recover() != nil {
			ok = false
		}
	}()
	if depth > maxDepth {
		return true
	}
	if mr := e.MultipartReader(); mr != nil {
		for n := 0; ; n++ {
			p, err := mr.NextPart()
			if p == nil || (err != nil && !message.IsUnknownCharset(err) && !message.IsUnknownEncoding(err)) {
				// Bounces often quote a truncated original, so a missing
				// closing boundary is normal; only a multipart with no
				// readable part at all is broken.
				return n > 0 || err == io.EOF
			}
			if !m.walk(p, depth+1) {
				return false
			}
		}
	}
	mt := mediaType(e.Header.Get("Content-Type"))
	body, _ := io.ReadAll(io.LimitReader(e.Body, maxMessageSize))
	label := ""
	if !strings.HasPrefix(mt, "text/") {
		// go-message decodes the charset of text/* parts only; a
		// delivery-status part may carry one too.
		_, params, _ := e.Header.ContentType()
		label = params["charset"]
	}
	text := decodeText(normalizeNewlines(body), label, m.charsetHint)
	switch mt {
	case "message/delivery-status", "message/global-delivery-status":
		m.status = append(m.status, text)
	case "message/feedback-report":
		m.feedback = append(m.feedback, text)
	case "message/rfc822", "message/global", "text/rfc822-headers", "message/rfc822-headers", "message/partial":
		if m.attached == "" && (mt == "message/rfc822" || mt == "message/global") {
			m.attached = text
		}
		if m.original == nil {
			if h, err := textproto.ReadHeader(bufio.NewReader(strings.NewReader(text))); err == nil || h.Len() > 0 {
				m.original = &h
			}
		}
	case "text/html":
		if depth == 0 || len(m.texts) == 0 {
			m.texts = append(m.texts, stripTags(text))
		}
	case "", "text/plain", "text/enriched":
		m.texts = append(m.texts, text)
	default:
		// Attachments (images, logos, the odd zip) say nothing we use.
	}
	return true
}

// finish derives the fields every parser uses.
func (m *msg) finish() {
	m.subject, _ = m.header.Subject()
	if m.subject == "" {
		m.subject = m.header.Get("Subject")
	}
	m.subject = decodeText([]byte(m.subject), "", m.charsetHint)
	if as, err := m.header.AddressList("From"); err == nil && len(as) > 0 {
		m.from = strings.ToLower(as[0].Address)
	} else if a := findAddresses(m.header.Get("From")); len(a) > 0 {
		m.from = a[0]
	}
	m.notice, m.embedded = splitNotice(strings.Join(m.texts, "\n"))
}

// mediaType returns the lowercase media type of a Content-Type value. It is
// lenient: "text/plain charset=x" (a missing semicolon, seen in real
// bounces) still gives text/plain rather than hiding the notice.
func mediaType(v string) string {
	v, _, _ = strings.Cut(v, ";")
	if f := strings.Fields(v); len(f) > 0 {
		return strings.ToLower(f[0])
	}
	return ""
}

var (
	styleRe  = regexp.MustCompile(`(?is)<style.*?</style>`)
	scriptRe = regexp.MustCompile(`(?is)<script.*?</script>`)
)

// stripTags turns HTML into rough text, enough to find addresses and codes.
func stripTags(s string) string {
	s = styleRe.ReplaceAllString(s, " ")
	s = scriptRe.ReplaceAllString(s, " ")
	var b strings.Builder
	in := false
	for _, r := range s {
		switch {
		case r == '<':
			in = true
		case r == '>' && in:
			in = false
			b.WriteByte(' ')
		case !in:
			b.WriteRune(r)
		}
	}
	for _, ent := range [][2]string{{"&lt;", "<"}, {"&gt;", ">"}, {"&amp;", "&"}, {"&nbsp;", " "}, {"&quot;", `"`}, {"&#39;", "'"}} {
		s = strings.ReplaceAll(b.String(), ent[0], ent[1])
		b.Reset()
		b.WriteString(s)
	}
	return b.String()
}

// ours returns the addresses on our side of a notice: its own To (our
// return path) and From (the reporting daemon), and the quoted original's
// sender fields. A refusal that names one of them, and not the recipient,
// is about us.
func (m *msg) ours() map[string]bool {
	if m.oursSet != nil {
		return m.oursSet
	}
	set := map[string]bool{}
	for _, k := range []string{"To", "From", "Return-Path", "Delivered-To"} {
		for _, a := range findAddresses(m.header.Get(k)) {
			set[a] = true
		}
	}
	if h := m.originalHeader(); h != nil {
		for _, k := range []string{"From", "Return-Path", "Sender", "Reply-To"} {
			for _, a := range findAddresses(h.Get(k)) {
				set[a] = true
			}
		}
	}
	m.oursSet = set
	return set
}

// originalHeader is the quoted original's header, from its MIME part or
// from the text; nil when the notice quotes none.
func (m *msg) originalHeader() *textproto.Header {
	if m.original != nil {
		return m.original
	}
	return m.embedded
}
