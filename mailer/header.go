package mailer

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"net/mail"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/net/idna"

	"github.com/herald-mail/herald/models"
)

// Every header field of a message Herald builds is written by a
// headerWriter, so that whatever a user typed (a subject, a sender's or a
// subscriber's name, an address) can neither start a header field of its
// own nor make a line a receiver refuses:
//
//   - values never carry CR or LF: text is made one line (runs of white
//     space become one space), invalid UTF-8 and control characters become
//     U+FFFD, and addresses holding either are refused;
//   - fields are folded (RFC 5322 2.2.3) at white space into lines of at
//     most 78 characters where the value allows it, and no line is ever
//     longer than 998;
//   - text (a subject, a display name) that is not plain ASCII, or has a
//     word too long to fold, goes as RFC 2047 encoded words of at most 75
//     characters, one per line; Herald's own structured values (ids, URLs,
//     dates) are only folded, never encoded;
//   - domains go as A-labels (xn--…); a local part that is not ASCII is
//     written as is and marks the message as needing SMTPUTF8 (RFC 6531).

const (
	// maxLine is RFC 5322's recommended line length (2.1.1), and RFC
	// 2047's 76 for lines holding encoded words is kept by the encoder.
	maxLine = 78
	// maxEncodedWord is RFC 2047's limit for one encoded word (2).
	maxEncodedWord = 75
)

// headerWriter appends header fields to a message.
type headerWriter struct {
	w     *bytes.Buffer
	col   int  // octets on the current line
	fresh bool // nothing written yet after the field's name
	// utf8 is set when an address has a local part that is not ASCII: the
	// message can only go to a server that offers SMTPUTF8.
	utf8 bool
}

// field writes a structured field whose value Herald made (a date, an
// id, URLs in angle brackets, a media type): folded at its spaces when
// long, never encoded (encoded words are not allowed in structured
// fields). A token longer than a line goes on a line of its own. Line
// breaks and other control characters become spaces and non-ASCII bytes
// "?", so even a misconfigured value cannot start a field or make the
// header 8-bit.
func (h *headerWriter) field(name, value string) {
	if len(name)+2+len(value) <= maxLine && plainASCII(value, false) {
		h.w.WriteString(name)
		h.w.WriteString(": ")
		h.w.WriteString(value)
		h.w.WriteString("\r\n")
		return
	}
	if !plainASCII(value, false) {
		value = strings.Map(func(r rune) rune {
			switch {
			case r < ' ' || r == 0x7f:
				return ' '
			case r >= utf8.RuneSelf:
				return '?'
			}
			return r
		}, value)
	}
	h.start(name)
	for _, w := range strings.Fields(value) {
		h.token(w)
	}
	h.end()
}

// text writes an unstructured field (Subject): as it is when it is plain
// ASCII, folded at spaces when long, and as encoded words otherwise.
func (h *headerWriter) text(name, value string) {
	if len(name)+2+len(value) <= maxLine && simpleText(value) { // a short ASCII subject
		h.w.WriteString(name)
		h.w.WriteString(": ")
		h.w.WriteString(value)
		h.w.WriteString("\r\n")
		return
	}
	value = headerText(value)
	h.start(name)
	if plainASCII(value, true) && !strings.Contains(value, "=?") && longestWord(value) <= maxLine-h.col-1 {
		h.words(value)
	} else {
		h.encoded(value)
	}
	h.end()
}

// mailbox writes an address field (From, To, Reply-To) of one mailbox:
// the display name as atoms, a quoted string or encoded words, then the
// address in angle brackets. It refuses an address that is not one (see
// headerAddress).
func (h *headerWriter) mailbox(field, name, addr string) error {
	a, utf8Local, err := headerAddress(addr)
	if err != nil {
		return fmt.Errorf("%s: %w", field, err)
	}
	h.utf8 = h.utf8 || utf8Local
	if len(field)+len(name)+5+len(a) <= maxLine && simpleText(name) && isAtoms(name) { // "Ann Smith <ann@…>"
		h.w.WriteString(field)
		h.w.WriteString(": ")
		if name != "" {
			h.w.WriteString(name)
			h.w.WriteByte(' ')
		}
		h.w.WriteByte('<')
		h.w.WriteString(a)
		h.w.WriteString(">\r\n")
		return nil
	}
	name = headerText(name)
	h.start(field)
	ascii := plainASCII(name, true) && !strings.Contains(name, "=?")
	switch {
	case name == "":
	case ascii && isAtoms(name) && longestWord(name) <= maxLine-h.col-1:
		h.words(name)
	case ascii && len(name)+2+strings.Count(name, `"`)+strings.Count(name, `\`) <= maxLine-h.col-1:
		h.token(quote(name))
	default:
		h.encoded(name)
	}
	// An address is one token (at most 254 octets): on this line when it
	// fits, else alone on the next.
	if h.col+3+len(a) > maxLine && !h.fresh {
		h.w.WriteString("\r\n")
		h.col = 0
	}
	h.w.WriteString(" <")
	h.w.WriteString(a)
	h.w.WriteString(">\r\n")
	h.col = 0
	return nil
}

// sender is the From and Reply-To fields of a sender's messages, written
// by the header builder once per campaign or transactional sender, and
// copied into each message.
type sender struct {
	fields string // "From: …\r\n", then "Reply-To: …\r\n" when there is one
	utf8   bool   // an address has a local part that is not ASCII
}

// newSender formats a sender's fields; replyTo "" means none.
func newSender(fromName, fromAddr, replyTo string) (sender, error) {
	var b bytes.Buffer
	h := headerWriter{w: &b}
	if err := h.mailbox("From", fromName, fromAddr); err != nil {
		return sender{}, err
	}
	if replyTo != "" {
		if err := h.mailbox("Reply-To", "", replyTo); err != nil {
			return sender{}, err
		}
	}
	return sender{fields: b.String(), utf8: h.utf8}, nil
}

// fieldOf writes a structured field whose value is the concatenation of
// parts (Herald's own: ids, A-label domains, URLs, settings), without
// making the string when the parts are plain ASCII and fit on one line.
func (h *headerWriter) fieldOf(name string, parts ...string) {
	n := len(name) + 2
	plain := true
	for _, p := range parts {
		n += len(p)
		plain = plain && plainASCII(p, false)
	}
	if n > maxLine || !plain {
		h.field(name, strings.Join(parts, ""))
		return
	}
	h.w.WriteString(name)
	h.w.WriteString(": ")
	for _, p := range parts {
		h.w.WriteString(p)
	}
	h.w.WriteString("\r\n")
}

// listUnsubscribe writes List-Unsubscribe (RFC 2369) with the HTTPS URL
// and, when domain is not "", the mailto URL
// mailto:u-{tok}@{domain}?subject=unsubscribe on a line of its own. The
// common case is written piece by piece, without building the value.
func (h *headerWriter) listUnsubscribe(https, tok, domain string) {
	mailto := domain != ""
	if !plainASCII(https, false) || !plainASCII(tok, false) || !plainASCII(domain, false) ||
		strings.ContainsAny(https, " <>") || strings.ContainsAny(tok, " <>@?") || strings.ContainsAny(domain, " <>?") {
		v := "<" + https + ">"
		if mailto {
			v += ", <mailto:u-" + tok + "@" + domain + "?subject=unsubscribe>"
		}
		h.field("List-Unsubscribe", v)
		return
	}
	h.w.WriteString("List-Unsubscribe: <")
	h.w.WriteString(https)
	if mailto {
		h.w.WriteString(">,\r\n <mailto:u-")
		h.w.WriteString(tok)
		h.w.WriteByte('@')
		h.w.WriteString(domain)
		h.w.WriteString("?subject=unsubscribe")
	}
	h.w.WriteString(">\r\n")
}

// start writes a field's name and colon.
func (h *headerWriter) start(name string) {
	h.w.WriteString(name)
	h.w.WriteByte(':')
	h.col, h.fresh = len(name)+1, true
}

// end ends the current field.
func (h *headerWriter) end() {
	h.w.WriteString("\r\n")
	h.col = 0
}

// token writes a space and s, or a fold and s when s does not fit on the
// line (never right after the field name: a line holding the name alone is
// legal but trips some parsers).
func (h *headerWriter) token(s string) {
	if h.col+1+len(s) > maxLine && !h.fresh {
		h.w.WriteString("\r\n")
		h.col = 0
	}
	h.w.WriteByte(' ')
	h.w.WriteString(s)
	h.col += 1 + len(s)
	h.fresh = false
}

// words writes space-separated words, folding between them.
func (h *headerWriter) words(s string) {
	for s != "" {
		w, rest, _ := strings.Cut(s, " ")
		h.token(w)
		s = rest
	}
}

// encoded writes s as RFC 2047 encoded words, each at most 75 characters
// and on a line of at most 76, splitting between characters (a word holds
// whole characters, as RFC 2047 5 requires). It uses Q when that is
// shorter (mostly ASCII text), B otherwise. Q's literal characters are
// those allowed in a display name (RFC 2047 5(3)), which are also safe in
// unstructured text.
func (h *headerWriter) encoded(s string) {
	q, b := 0, (len(s)+2)/3*4
	for i := 0; i < len(s); i++ {
		if qLiteral(s[i]) {
			q++
		} else {
			q += 3
		}
	}
	const qPrefix, bPrefix = "=?utf-8?q?", "=?utf-8?b?"
	useB := b < q
	var word [maxEncodedWord]byte
	first := true
	for s != "" {
		// The word's room: 75, and on the first line what is left of 76.
		room := maxEncodedWord
		if first {
			room = min(room, 76-h.col-1)
			if room < len(qPrefix)+2+12 { // not even three characters fit
				h.w.WriteString("\r\n")
				h.col, room = 0, maxEncodedWord
			}
		}
		room -= len(qPrefix) + 2
		n := 0 // bytes of s taken
		if useB {
			for n < len(s) {
				_, size := utf8.DecodeRuneInString(s[n:])
				if (n+size+2)/3*4 > room {
					break
				}
				n += size
			}
		} else {
			enc := 0
			for n < len(s) {
				_, size := utf8.DecodeRuneInString(s[n:])
				e := 0
				for k := n; k < n+size; k++ {
					if qLiteral(s[k]) {
						e++
					} else {
						e += 3
					}
				}
				if enc+e > room {
					break
				}
				enc += e
				n += size
			}
		}
		out := word[:0]
		if useB {
			out = append(out, bPrefix...)
			out = base64.StdEncoding.AppendEncode(out, []byte(s[:n]))
		} else {
			out = append(out, qPrefix...)
			for k := 0; k < n; k++ {
				switch c := s[k]; {
				case c == ' ':
					out = append(out, '_')
				case qLiteral(c):
					out = append(out, c)
				default:
					out = append(out, '=', upperHex[c>>4], upperHex[c&0xf])
				}
			}
		}
		out = append(out, '?', '=')
		if !first {
			h.w.WriteString("\r\n")
			h.col = 0
		}
		h.w.WriteByte(' ')
		h.w.Write(out)
		h.col += 1 + len(out)
		s = s[n:]
		first = false
	}
	h.fresh = false
}

// qLiteral reports whether c may stand for itself in a Q-encoded word of
// a display name (RFC 2047 5(3)); a space is written "_" and counts as one.
func qLiteral(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '!' || c == '*' || c == '+' || c == '-' || c == '/' || c == ' '
}

// plainASCII reports whether s is printable ASCII; with oneSpace its
// spaces are also single and inside (the form headerText gives).
func plainASCII(s string, oneSpace bool) bool {
	prev := byte(' ')
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < ' ' || c > '~' || oneSpace && c == ' ' && prev == ' ' {
			return false
		}
		prev = c
	}
	return !oneSpace || prev != ' ' || s == ""
}

// simpleText reports whether s is text that headerText leaves alone and
// that needs no encoding: printable ASCII, single spaces inside, and no
// "=?" that a reader could take for an encoded word.
func simpleText(s string) bool {
	prev := byte(' ')
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < ' ' || c > '~' || c == ' ' && prev == ' ' || c == '?' && prev == '=' {
			return false
		}
		prev = c
	}
	return prev != ' ' || s == ""
}

// longestWord is the length of s's longest space-separated word.
func longestWord(s string) int {
	n := 0
	for s != "" {
		w, rest, _ := strings.Cut(s, " ")
		n = max(n, len(w))
		s = rest
	}
	return n
}

// isAtoms reports whether s (plain ASCII) is atoms separated by spaces, a
// phrase needing no quotes (RFC 5322 3.2.3).
func isAtoms(s string) bool {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '(', ')', '<', '>', '[', ']', ':', ';', '@', '\\', ',', '.', '"':
			return false
		}
	}
	return true
}

// quote makes s (plain ASCII) a quoted string.
func quote(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 4)
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	b.WriteByte('"')
	return b.String()
}

// headerText is s made fit for a header: valid UTF-8 (an invalid byte
// becomes U+FFFD), one line (runs of white space, line breaks included,
// become one space; none at either end), and no control characters (each
// becomes U+FFFD). Text that is already so is returned as it is.
func headerText(s string) string {
	prevSpace := true
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c > ' ' && c < 0x7f:
			prevSpace = false
			i++
			continue
		case c == ' ' && !prevSpace:
			prevSpace = true
			i++
			continue
		case c >= utf8.RuneSelf:
			r, n := utf8.DecodeRuneInString(s[i:])
			if !(r == utf8.RuneError && n == 1) && !unicode.IsSpace(r) && !unicode.IsControl(r) {
				prevSpace = false
				i += n
				continue
			}
		}
		return cleanHeaderText(s)
	}
	if prevSpace && s != "" {
		return cleanHeaderText(s)
	}
	return s
}

func cleanHeaderText(s string) string {
	s = strings.Join(strings.Fields(strings.ToValidUTF8(s, "\uFFFD")), " ")
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return utf8.RuneError
		}
		return r
	}, s)
}

// idnaLookup converts domains to A-labels as a resolver would look them up.
var idnaLookup = idna.New(idna.MapForLookup(), idna.BidiRule(), idna.StrictDomainName(true))

// headerAddress checks an address for a header field and returns it with
// its domain in A-labels, and whether its local part is not ASCII (which
// needs SMTPUTF8). The local part must be a dot-atom (Herald never sends
// to quoted local parts): no white space, control characters or specials.
func headerAddress(a string) (string, bool, error) {
	at := strings.LastIndexByte(a, '@')
	if at <= 0 || at == len(a)-1 {
		return "", false, &models.InvalidEmailError{Input: a, Reason: "it is not of the form name@domain"}
	}
	local, domain := a[:at], a[at+1:]
	nonASCII := false
	for i := 0; i < len(local); i++ {
		c := local[i]
		if c >= utf8.RuneSelf {
			nonASCII = true
			continue
		}
		if c <= ' ' || c == 0x7f || strings.IndexByte(`"(),:;<>@[\]`, c) >= 0 {
			return "", false, &models.InvalidEmailError{Input: a, Reason: fmt.Sprintf("the character %q is not allowed before the @", c)}
		}
	}
	if nonASCII {
		if !utf8.ValidString(local) || strings.IndexFunc(local, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0 {
			return "", false, &models.InvalidEmailError{Input: a, Reason: "the part before the @ is not valid UTF-8 text"}
		}
	}
	for i := 0; i < len(domain); i++ {
		if c := domain[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			ascii, err := idnaLookup.ToASCII(domain)
			if err != nil {
				return "", false, &models.InvalidEmailError{Input: a, Reason: "the domain " + domain + " is not a valid domain name"}
			}
			return local + "@" + ascii, nonASCII, nil
		}
	}
	return a, nonASCII, nil
}

// envelopeAddress is a recipient's address for RCPT TO: its domain in
// A-labels, and whether its local part needs SMTPUTF8. An address the
// header builder would refuse is left as it is (rendering the message
// refused it already).
func envelopeAddress(a string) (string, bool) {
	for i := 0; i < len(a); i++ {
		if a[i] >= utf8.RuneSelf {
			if out, utf8Local, err := headerAddress(a); err == nil {
				return out, utf8Local
			}
			return a, true
		}
	}
	return a, false
}

// HeaderAddress checks an address given for a header field of a message
// (a transactional message's sender or Reply-To, a campaign's Reply-To):
// one bare address without line breaks or other control characters, that
// net/mail reads as one address. It returns the address normalised as
// models.NormalizeEmail does (domain in lower case and A-labels). The
// transactional API, the campaign form and the engine all check with it.
func HeaderAddress(raw string) (string, error) {
	s := strings.TrimSpace(raw)
	if strings.ContainsAny(s, "\r\n") {
		return "", &models.InvalidEmailError{Input: raw, Reason: "it contains a line break; give one address, such as support@example.com"}
	}
	if strings.IndexFunc(s, unicode.IsControl) >= 0 {
		return "", &models.InvalidEmailError{Input: raw, Reason: "it contains a control character; give one address, such as support@example.com"}
	}
	if strings.ContainsAny(s, "<>,") {
		return "", &models.InvalidEmailError{Input: raw, Reason: "give one bare address, such as support@example.com, without a name, angle brackets or commas"}
	}
	norm, err := models.NormalizeEmail(s)
	if err != nil {
		return "", err
	}
	if a, err := mail.ParseAddress(norm); err != nil || a.Address != norm {
		return "", &models.InvalidEmailError{Input: raw, Reason: "it is not an address a mail program can read (RFC 5322)"}
	}
	if _, _, err := headerAddress(norm); err != nil {
		return "", err
	}
	return norm, nil
}
