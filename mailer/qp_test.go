package mailer

import (
	"bytes"
	"io"
	"math/rand/v2"
	"mime/quotedprintable"
	"strings"
	"testing"
)

// TestWriteQP: whatever the input, the encoding decodes (with the standard
// library's reader) to the input with CRLF line ends, keeps every line
// within 76 characters, and never ends a line with a space or a tab.
func TestWriteQP(t *testing.T) {
	inputs := []string{
		"",
		"plain ascii line",
		"caf\u00e9 \u00b7 \u00a9 2026\r\nsecond line",
		"trailing space \r\ntrailing tab\t\nbare lf\nend ",
		"a=b==c\r\n=",
		strings.Repeat("x", 200),
		strings.Repeat("\u00e9", 100),
		strings.Repeat("abc ", 60) + "\r\n" + strings.Repeat(" ", 80),
		"lone\rcarriage return",
		strings.Repeat("y", 74) + " \r\n" + strings.Repeat("z", 75) + "=",
	}
	r := rand.New(rand.NewPCG(1, 2))
	alphabet := []byte("ab =\t\r\n\x00\xc3\xa9.~")
	for range 2000 {
		b := make([]byte, r.IntN(300))
		for i := range b {
			b[i] = alphabet[r.IntN(len(alphabet))]
		}
		inputs = append(inputs, string(b))
	}
	for _, in := range inputs {
		var w bytes.Buffer
		writeQP(&w, []byte(in))
		enc := w.String()
		got, err := io.ReadAll(quotedprintable.NewReader(strings.NewReader(enc)))
		if err != nil {
			t.Fatalf("decoding the encoding of %q: %v\n%s", in, err, enc)
		}
		if want := crlf(in); string(got) != want {
			t.Fatalf("round trip of %q = %q, want %q\nencoded: %q", in, got, want, enc)
		}
		for _, line := range strings.Split(enc, "\r\n") {
			if len(line) > 76 {
				t.Fatalf("line of %d characters in the encoding of %q: %q", len(line), in, line)
			}
			if strings.HasSuffix(line, " ") || strings.HasSuffix(line, "\t") {
				t.Fatalf("line ends with white space in the encoding of %q: %q", in, line)
			}
			if strings.ContainsAny(line, "\r\n") {
				t.Fatalf("bare CR or LF in the encoding of %q: %q", in, line)
			}
		}
	}
}

// crlf turns bare LF into CRLF, as the encoder does with line breaks.
func crlf(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\n' && (i == 0 || s[i-1] != '\r') {
			b.WriteByte('\r')
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// is7bitByByte is the rule is7bit implements, a byte at a time.
func is7bitByByte(b []byte) bool {
	line := 0
	for i, c := range b {
		switch {
		case c >= 0x80 || c == 0:
			return false
		case c == '\n':
			line = 0
		case c == '\r':
			if i+1 >= len(b) || b[i+1] != '\n' {
				return false
			}
		default:
			line++
			if line > 900 {
				return false
			}
		}
	}
	return true
}

func TestIs7bit(t *testing.T) {
	inputs := []string{"", "a", "a\r\nb", "a\rb", "a\r", "\r\n", "x\n", "\x00", "caf\u00e9",
		strings.Repeat("x", 900), strings.Repeat("x", 901), strings.Repeat("x", 900) + "\r\n" + strings.Repeat("y", 900),
		strings.Repeat("x", 900) + "\r", strings.Repeat("x", 899) + "\r\r\n", strings.Repeat("x", 901) + "\n"}
	r := rand.New(rand.NewPCG(3, 4))
	alphabet := []byte("ab \r\n\x00\x7f\x80\xff")
	for range 5000 {
		b := make([]byte, r.IntN(40))
		for i := range b {
			b[i] = alphabet[r.IntN(len(alphabet))]
			if r.IntN(4) > 0 {
				b[i] = 'a' + byte(r.IntN(26))
			}
		}
		inputs = append(inputs, string(b))
	}
	for range 300 { // long lines around the limit
		n := 880 + r.IntN(40)
		b := []byte(strings.Repeat("z", n))
		if r.IntN(2) == 0 {
			b = append(b, '\r')
		}
		if r.IntN(2) == 0 {
			b = append(b, '\n')
		}
		inputs = append(inputs, string(b)+strings.Repeat("q", r.IntN(3)))
	}
	for _, in := range inputs {
		if got, want := is7bit([]byte(in)), is7bitByByte([]byte(in)); got != want {
			t.Errorf("is7bit(%q) = %v, want %v", in, got, want)
		}
	}
}

// oneLine is strings.Fields and strings.Join, without the copies when
// nothing changes: compared with them over random subjects of white
// space (ASCII and beyond), invalid UTF-8 and letters.
func TestOneLine(t *testing.T) {
	inputs := []string{"", " ", "a", " a", "a ", "a b", "a  b", "a\tb", "a\nb", "Hello, Ana!", "caf\u00e9 \u00e0 10\u00a0\u20ac",
		"a\u3000b", "a\u0085b", "\xff \xfe", "a \xe3\x80"}
	r := rand.New(rand.NewPCG(5, 6))
	pieces := []string{" ", "  ", "\t", "\r\n", "\u00a0", "\u2003", "\u3000", "\xff", "\xe3\x80", "é", "x", "Subject"}
	for range 5000 {
		var b strings.Builder
		for range r.IntN(8) {
			b.WriteString(pieces[r.IntN(len(pieces))])
		}
		inputs = append(inputs, b.String())
	}
	for _, in := range inputs {
		if got, want := oneLine([]byte(in)), strings.Join(strings.Fields(in), " "); got != want {
			t.Errorf("oneLine(%q) = %q, want %q", in, got, want)
		}
	}
}
