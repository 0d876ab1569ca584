package mailer

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	crand "crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"
	"math/rand/v2"
	"mime"
	"net/mail"
	"net/textproto"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/herald-mail/herald/internal/token"
	"github.com/herald-mail/herald/models"
)

// readHeader parses a header block written by a headerWriter.
func readHeader(t *testing.T, raw string) textproto.MIMEHeader {
	t.Helper()
	h, err := textproto.NewReader(bufio.NewReader(strings.NewReader(raw + "\r\n"))).ReadMIMEHeader()
	if err != nil {
		t.Fatalf("ReadMIMEHeader(%q): %v", raw, err)
	}
	return h
}

// checkLines fails when a line of raw (CRLF-terminated lines) is longer
// than limit octets or holds a bare CR or LF.
func checkLines(t *testing.T, what, raw string, limit int) {
	t.Helper()
	for i, line := range strings.Split(strings.TrimSuffix(raw, "\r\n"), "\r\n") {
		if len(line) > limit {
			t.Errorf("%s: line %d is %d octets, want <= %d: %q", what, i+1, len(line), limit, line)
		}
		if strings.ContainsAny(line, "\r\n") {
			t.Errorf("%s: line %d holds a bare CR or LF: %q", what, i+1, line)
		}
	}
}

// wantText is what a header's text must decode to: the input as valid
// UTF-8 (invalid bytes as U+FFFD), on one line with single spaces, and
// control characters as U+FFFD. Written with the library functions the
// fast path avoids.
func wantText(s string) string {
	s = strings.Join(strings.Fields(strings.ToValidUTF8(s, "\uFFFD")), " ")
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return '\uFFFD'
		}
		return r
	}, s)
}

func TestHeaderWriterText(t *testing.T) {
	long := strings.Repeat("Spring sale on everything ", 12)
	jp := strings.Repeat("春のお知らせ、新製品のご案内です。", 24)[:400*3] // 400 characters of three octets
	cases := []struct {
		name, in string
		raw      string // the exact field, when it matters
	}{
		{"short ASCII as is", "Hello Ann", "Subject: Hello Ann\r\n"},
		{"spaces squeezed", "  Hello \t\r\n Ann  ", "Subject: Hello Ann\r\n"},
		{"injection stays in the value", "Hi\r\nBcc: victim@example.com", "Subject: Hi Bcc: victim@example.com\r\n"},
		{"long ASCII folded", long, ""},
		{"one unbreakable word", strings.Repeat("x", 2000), ""},
		{"accented", "Les nouveautés de l’été", ""},
		{"Japanese, 400 characters", jp, ""},
		{"emoji", strings.Repeat("🎉🚀 ", 60), ""},
		{"invalid UTF-8", "caf\xe9 \xff\xfe ok", ""},
		{"controls", "a\x00b\x07c\x1bd\x7fe", ""},
		{"looks encoded", "=?utf-8?q?hello?=", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var b bytes.Buffer
			h := headerWriter{w: &b}
			h.text("Subject", c.in)
			raw := b.String()
			if c.raw != "" && raw != c.raw {
				t.Errorf("text(%q) = %q, want %q", c.in, raw, c.raw)
			}
			checkLines(t, "Subject", raw, maxLine)
			got, err := new(mime.WordDecoder).DecodeHeader(readHeader(t, raw).Get("Subject"))
			if err != nil {
				t.Fatalf("decode %q: %v", raw, err)
			}
			if want := wantText(c.in); got != want {
				t.Errorf("Subject decodes to %q, want %q (raw %q)", got, want, raw)
			}
			for _, w := range strings.Fields(raw) {
				if strings.HasPrefix(w, "=?") && len(w) > maxEncodedWord {
					t.Errorf("encoded word of %d characters, want <= %d: %q", len(w), maxEncodedWord, w)
				}
			}
		})
	}
}

func TestHeaderWriterMailbox(t *testing.T) {
	cases := []struct {
		name, display, addr string
		raw                 string // exact field when set
		wantAddr            string
		utf8                bool
		err                 bool
	}{
		{name: "no name", addr: "ann@example.com", raw: "To: <ann@example.com>\r\n"},
		{name: "atoms", display: "Ann Smith", addr: "ann@example.com", raw: "To: Ann Smith <ann@example.com>\r\n"},
		{name: "specials quoted", display: `Smith, "Ann"`, addr: "ann@example.com", raw: `To: "Smith, \"Ann\"" <ann@example.com>` + "\r\n"},
		{name: "accented", display: "Zoë Ångström", addr: "zoe@example.com"},
		{name: "long CJK name", display: strings.Repeat("山田太郎", 200), addr: "taro@example.jp"},
		{name: "name with line break", display: "Ann\r\nBcc: victim@example.com", addr: "ann@example.com"},
		{name: "IDN domain as A-label", display: "B", addr: "info@bücher.example", wantAddr: "info@xn--bcher-kva.example"},
		{name: "UTF-8 local part", addr: "用户@example.cn", utf8: true},
		{name: "line break in address", addr: "ok@example.com\r\nBcc: victim@example.com", err: true},
		{name: "space in address", addr: "a b@example.com", err: true},
		{name: "no @", addr: "example.com", err: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var b bytes.Buffer
			h := headerWriter{w: &b}
			err := h.mailbox("To", c.display, c.addr)
			if c.err {
				var ie *models.InvalidEmailError
				if !errors.As(err, &ie) || b.Len() > 0 {
					t.Fatalf("mailbox(%q) = %v, wrote %q; want an InvalidEmailError and nothing written", c.addr, err, b.String())
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			raw := b.String()
			if c.raw != "" && raw != c.raw {
				t.Errorf("mailbox = %q, want %q", raw, c.raw)
			}
			checkLines(t, "To", raw, maxLine)
			if h.utf8 != c.utf8 {
				t.Errorf("utf8 = %v, want %v", h.utf8, c.utf8)
			}
			a, err := (&mail.AddressParser{WordDecoder: new(mime.WordDecoder)}).Parse(readHeader(t, raw).Get("To"))
			if err != nil {
				t.Fatalf("net/mail cannot read %q: %v", raw, err)
			}
			want := c.wantAddr
			if want == "" {
				want = c.addr
			}
			if a.Address != want || a.Name != wantText(c.display) {
				t.Errorf("To reads as (%q, %q), want (%q, %q); raw %q", a.Name, a.Address, wantText(c.display), want, raw)
			}
		})
	}
}

func TestHeaderWriterField(t *testing.T) {
	long := "<https://herald.example.com/u/" + strings.Repeat("t", 90) + ">, <mailto:u-" + strings.Repeat("t", 40) + "@bounces.example.com?subject=unsubscribe>"
	cases := []struct{ in, raw string }{
		{"<a@b>", "List-Id: <a@b>\r\n"},
		{long, "List-Id: <https://herald.example.com/u/" + strings.Repeat("t", 90) + ">,\r\n <mailto:u-" + strings.Repeat("t", 40) + "@bounces.example.com?subject=unsubscribe>\r\n"},
		{"1:2:herald\r\nBcc: x@y.z", "List-Id: 1:2:herald Bcc: x@y.z\r\n"},
		{"1:2:héra", "List-Id: 1:2:h?ra\r\n"},
	}
	for _, c := range cases {
		var b bytes.Buffer
		(&headerWriter{w: &b}).field("List-Id", c.in)
		if b.String() != c.raw {
			t.Errorf("field(%q) = %q, want %q", c.in, b.String(), c.raw)
		}
	}
}

func TestHeaderAddress(t *testing.T) {
	cases := []struct {
		in, want, reason string
	}{
		{in: " Support@Example.COM ", want: "Support@example.com"},
		{in: "info@bücher.example", want: "info@xn--bcher-kva.example"},
		{in: "ok@example.com\r\nBcc: victim@example.com", reason: "line break"},
		{in: "ok@example.com\nBcc: victim@example.com", reason: "line break"},
		{in: "ok@example.com\x00", reason: "control character"},
		{in: "Support <s@example.com>", reason: "bare address"},
		{in: "a@example.com, b@example.com", reason: "bare address"},
		{in: "nobody", reason: "no @"},
	}
	for _, c := range cases {
		got, err := HeaderAddress(c.in)
		switch {
		case c.reason == "" && (err != nil || got != c.want):
			t.Errorf("HeaderAddress(%q) = %q, %v; want %q", c.in, got, err, c.want)
		case c.reason != "" && (err == nil || !strings.Contains(err.Error(), c.reason)):
			t.Errorf("HeaderAddress(%q) = %q, %v; want an error saying %q", c.in, got, err, c.reason)
		}
	}
}

// randomHeaderText is up to 2,000 characters mixing ASCII words, long
// unbroken runs, accented Latin, CJK, emoji (four octets), white space of
// every kind, control characters, invalid UTF-8, and text that looks like
// an encoded word or a header field.
func randomHeaderText(r *rand.Rand) string {
	return randomHeaderTextN(r, r.IntN(2001))
}

// randomHeaderTextN is randomHeaderText of about n characters.
func randomHeaderTextN(r *rand.Rand, n int) string {
	pieces := []string{"a", "Sale", " ", "  ", "\t", "\r\n", "\n", "\r", "é", "ß", "ø", "日本", "語", "お知らせ", "한국어",
		"🎉", "👨‍👩‍👧", "\u00a0", "\u2028", "\x00", "\x1b", "\x7f", "\u0085", "\xff", "\xe6\x97", "\xc3", "=?", "?=",
		"=?utf-8?q?x?=", "_", "\"", "\\", ",", "<", ">", "@", ":", "Bcc: x@y.z", strings.Repeat("w", 80), strings.Repeat("長", 40)}
	var b strings.Builder
	for chars := 0; chars < n; {
		p := pieces[r.IntN(len(pieces))]
		b.WriteString(p)
		chars += utf8.RuneCountInString(p)
	}
	return b.String()
}

// Over thousands of messages with random subjects, sender and recipient
// names of up to 2,000 characters, no line is longer than 998 octets (78
// in the header fields carrying that text), no text makes a field of its
// own, and each decodes back to the text given (made valid and one line).
func TestRenderedHeadersProperty(t *testing.T) {
	env := &renderEnv{root: "https://h.example.com", org: OrgData{Name: "Example", PostalAddress: "1 Main St"},
		keys: token.NewKeyring("property key"), feedbackID: "herald"}
	comp, err := compileTemplate("prop", "{{.Subscriber.Attributes.subject}}", "<p>Hello {{.Subscriber.Name}}</p>", "", compileOptions{TrackOpens: true})
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, err := rsa.GenerateKey(crand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	_, edKey, _ := ed25519.GenerateKey(crand.Reader)
	signer := newDKIMSigner(&models.DKIMKeys{Domain: "example.com", Selector: "s1", RSA: rsaKey, Ed25519Selector: "s1e", Ed25519: edKey})
	r := rand.New(rand.NewPCG(14, 4))
	n := 3000
	if testing.Short() {
		n = 500
	}
	wd := new(mime.WordDecoder)
	ap := &mail.AddressParser{WordDecoder: wd}
	for i := range n {
		subject, name, fromName := randomHeaderText(r), randomHeaderText(r), randomHeaderText(r)
		p := &msgParams{campaignID: 1, sender: mustSender(t, fromName, "news@example.com", "help@example.com"),
			domain: "example.com", returnPath: "bounces.example.com", listHeaders: true}
		rc := &recipient{deliveryID: int64(i + 1), subscriberID: 1, listID: 1, email: "ann@example.org", name: name,
			attributes: map[string]any{"subject": subject}}
		m, err := env.render(comp, p, rc, time.Now())
		if err != nil {
			t.Fatalf("render: %v", err)
		}
		raw := m.buf.String()
		if i%20 == 0 { // the signatures' lines too, on a sample (RSA is slow)
			sig, err := signer.sign(m.buf.Bytes())
			if err != nil {
				t.Fatal(err)
			}
			checkLines(t, "DKIM-Signature", string(sig), 998)
		}
		m.release()
		head, _, _ := strings.Cut(raw, "\r\n\r\n")
		checkLines(t, "message", raw, 998)
		for _, line := range strings.Split(head, "\r\n") {
			if len(line) > maxLine {
				t.Errorf("header line of %d octets, want <= %d: %q", len(line), maxLine, line)
			}
		}
		msg, err := mail.ReadMessage(strings.NewReader(raw))
		if err != nil {
			t.Fatalf("ReadMessage: %v\n%s", err, head)
		}
		for k, v := range msg.Header {
			switch k {
			case "From", "To", "Subject", "Date", "Message-Id", "Reply-To", "List-Unsubscribe", "List-Unsubscribe-Post",
				"List-Id", "Feedback-Id", "Mime-Version", "Content-Type":
				if len(v) != 1 {
					t.Errorf("%d %s fields, want 1", len(v), k)
				}
			default:
				t.Errorf("unexpected field %s: %q (subject %q, names %q, %q)", k, v, subject, name, fromName)
			}
		}
		if got, err := wd.DecodeHeader(msg.Header.Get("Subject")); err != nil || got != wantText(subject) {
			t.Errorf("Subject decodes to %q, %v; want %q", got, err, wantText(subject))
		}
		if a, err := ap.Parse(msg.Header.Get("To")); err != nil || a.Name != wantText(name) || a.Address != rc.email {
			t.Errorf("To reads as %+v, %v; want %q <%s>", a, err, wantText(name), rc.email)
		}
		if a, err := ap.Parse(msg.Header.Get("From")); err != nil || a.Name != wantText(fromName) || a.Address != "news@example.com" {
			t.Errorf("From reads as %+v, %v; want %q <news@example.com>", a, err, wantText(fromName))
		}
		lu := msg.Header.Get("List-Unsubscribe")
		if !strings.HasPrefix(lu, "<https://h.example.com/u/") || !strings.Contains(lu, ">, <mailto:u-") || strings.Contains(lu, "=?") {
			t.Errorf("List-Unsubscribe = %q, want the HTTPS and mailto URLs in angle brackets", lu)
		}
		if t.Failed() {
			t.Fatalf("message %d:\n%s", i, head)
		}
	}
}

// headerText's fast path returns its input only when the slow path would
// give the same.
func TestHeaderTextMatchesSlowPath(t *testing.T) {
	r := rand.New(rand.NewPCG(2, 47))
	for range 20000 {
		s := randomHeaderTextN(r, r.IntN(40))
		if len(s) > 0 {
			s = s[:r.IntN(len(s)+1)] // cut anywhere, inside a character too
		}
		if got, want := headerText(s), wantText(s); got != want {
			t.Errorf("headerText(%q) = %q, want %q", s, got, want)
		}
	}
}

func ExampleHeaderAddress() {
	_, err := HeaderAddress("ok@example.com\r\nBcc: victim@example.com")
	fmt.Println(err)
	// Output: "ok@example.com\r\nBcc: victim@example.com" is not a valid email address: it contains a line break; give one address, such as support@example.com
}
