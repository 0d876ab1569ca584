package bounce

import (
	"strings"
	"testing"
)

// Unlabelled 8-bit text is read in the charset the message declares
// elsewhere (here the quoted original's Shift_JIS).
func TestUnlabelledTextUsesDeclaredCharset(t *testing.T) {
	sjis := "\x88\xb6\x90\xe6\x95\x73\x96\xbe" // 宛先不明 in Shift_JIS
	raw := "From: MAILER-DAEMON@mx.example.jp\nTo: bounces@herald.test\nSubject: Returned mail\n" +
		"MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=b\n\n" +
		"--b\nContent-Type: text/plain\n\n<who@example.jp>: 550 5.1.1 " + sjis + " user unknown (in reply to RCPT TO command)\n\n" +
		"--b\nContent-Type: message/rfc822\n\nFrom: news@herald.test\nTo: who@example.jp\nContent-Type: text/plain; charset=Shift_JIS\n\nhello\n--b--\n"
	rep, err := ParseStrict(strings.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Recipients) != 1 || !strings.Contains(rep.Recipients[0].Diagnostic, "宛先不明") {
		t.Fatalf("recipients %+v, want who@example.jp with the diagnostic decoded from Shift_JIS", rep.Recipients)
	}
	if got := charsetHint([]byte(raw)); got != "shift_jis" {
		t.Errorf("charsetHint = %q, want shift_jis", got)
	}
}
