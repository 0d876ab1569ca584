package bounce

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// wantRule is one recipient's expected verdict and the row that decides it.
type wantRule struct {
	rcpt string
	kind Kind
	cat  Category
	rule string
}

// Each fixture is a kind of message the classifier once got wrong on real
// mail it had never seen, written anew (own words, own format) so that the
// rule that fixes it is general rather than fitted to one file.
func TestUnseenMissKinds(t *testing.T) {
	tests := []struct {
		file, why string
		wants     []wantRule
	}{
		{"temporary-over-x11.eml", "explicit temporary wording beats an X.1.1 code in the same reply",
			[]wantRule{
				{"heavy@example.net", KindSoft, CategoryMailboxFull, "R2"},
				{"popular@example.net", KindSoft, CategoryRateLimited, "R2"},
			}},
		{"webmail-address-not-found.eml", "\"Address rejected\" refuses the address (RCPT stage); the notice says it was not found: hard, not a policy block",
			[]wantRule{{"nobody.here@example.org", KindHard, CategoryUserUnknown, "R8"}}},
		{"domino-directory.eml", "\"not listed in ... Directory\" is a directory lookup, not a blocklist",
			[]wantRule{{"sato@notes.example.com", KindHard, CategoryUserUnknown, "R8"}}},
		{"domino-directory-ja.eml", "the same in ISO-2022-JP, decoded before matching (base64 part and unlabelled delivery-status)",
			[]wantRule{{"suzuki@notes.example.jp", KindHard, CategoryUserUnknown, "R8"}}},
		{"blocklist-listed.eml", "a sending host \"listed in\" a DNSBL is about us, even at RCPT TO",
			[]wantRule{{"reader@example.com", KindSoft, CategoryReputationBlock, "R4"}}},
		{"qmail-does-not-like.eml", "qmail's \"does not like recipient\" is the RCPT stage",
			[]wantRule{{"left@remote.example.org", KindHard, CategoryUserUnknown, "R8"}}},
		{"imail-own-to.eml", "the notice's own To: (our return path) is never the recipient; the quoted original's To is",
			[]wantRule{{"tanaka@example.biz", KindHard, CategoryUserUnknown, "R8"}}},
		{"ses-sender-denied.eml", "\"Access denied\" aimed at our own sender address is about us, whatever the X.1.1",
			[]wantRule{{"reader@example.com", KindSoft, CategoryPolicyBlock, "R4"}}},
		{"carrier-user-unknown.eml", "\"550 : User unknown\" naming no address and no stage is not sure; naming the address is",
			[]wantRule{
				{"someone@mobile.example.ne.jp", KindSoft, CategoryUserUnknown, "R11"},
				{"other@mobile.example.ne.jp", KindHard, CategoryUserUnknown, "R8"},
			}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			rep := parseFixture(t, tt.file)
			if len(rep.Recipients) != len(tt.wants) {
				t.Fatalf("%s: got %d recipients %+v, want %d", tt.why, len(rep.Recipients), rep.Recipients, len(tt.wants))
			}
			for i, w := range tt.wants {
				v := rep.Recipients[i]
				if v.Recipient != w.rcpt || v.Kind != w.kind || v.Category != w.cat || v.Rule != w.rule {
					t.Errorf("%s:\nrecipient %d = %s %s/%s %s, want %s %s/%s %s\nevidence: %s\nreason: %s",
						tt.why, i, v.Recipient, v.Kind, v.Category, v.Rule, w.rcpt, w.kind, w.cat, w.rule, v.Evidence, v.Reason)
				}
			}
		})
	}
}

// The Japanese fixture is only decoded if its diagnostic reads as Japanese.
func TestDecodesISO2022JP(t *testing.T) {
	rep := parseFixture(t, "domino-directory-ja.eml")
	if len(rep.Recipients) != 1 {
		t.Fatalf("got %d recipients, want 1", len(rep.Recipients))
	}
	if got, want := rep.Recipients[0].Diagnostic, "ユーザー suzuki (suzuki@notes.example.jp) はディレクトリのリストにありません"; got != want {
		t.Errorf("Diagnostic = %q, want %q", got, want)
	}
}

// Charsets other than ISO-2022-JP, in a labelled delivery-status part and
// a labelled quoted-printable text part, are decoded before matching.
func TestDecodesLabelledCharsets(t *testing.T) {
	for _, tt := range []struct {
		charset, encoded, text string // text is encoded in charset
		want                   Category
	}{
		{"shift_jis", "\x83\x81\x81\x5b\x83\x8b\x83\x7b\x83\x62\x83\x4e\x83\x58\x82\xaa\x82\xa2\x82\xc1\x82\xcf\x82\xa2\x82\xc5\x82\xb7", "メールボックスがいっぱいです", CategoryOther},
		{"euc-jp", "user unknown \xb0\xb8\xc0\xe8\xc9\xd4\xcc\xc0", "宛先不明", CategoryUserUnknown},
		{"windows-1251", "mailbox full \xff\xf9\xe8\xea\x20\xef\xe5\xf0\xe5\xef\xee\xeb\xed\xe5\xed", "ящик переполнен", CategoryMailboxFull},
		{"euc-kr", "user unknown \xbb\xe7\xbf\xeb\xc0\xda\x20\xbe\xf8\xc0\xbd", "사용자 없음", CategoryUserUnknown},
		{"gb18030", "quota exceeded \xd3\xca\xcf\xe4\xd2\xd1\xc2\xfa", "邮箱已满", CategoryMailboxFull},
	} {
		raw := "From: MAILER-DAEMON@mx.example.net\nTo: bounces@herald.test\nSubject: Undelivered Mail\n" +
			"MIME-Version: 1.0\nContent-Type: multipart/report; report-type=delivery-status; boundary=b\n\n" +
			"--b\nContent-Type: message/delivery-status; charset=" + tt.charset + "\n\n" +
			"Reporting-MTA: dns; mx.example.net\n\nFinal-Recipient: rfc822; who@example.net\nAction: failed\nStatus: 5.0.0\n" +
			"Diagnostic-Code: smtp; 550 " + tt.encoded + "\n\n--b--\n"
		rep, err := ParseStrict(stringsReader(raw))
		if err != nil {
			t.Fatalf("%s: %v", tt.charset, err)
		}
		if len(rep.Recipients) != 1 {
			t.Fatalf("%s: got %d recipients", tt.charset, len(rep.Recipients))
		}
		v := rep.Recipients[0]
		if !validUTF8(v.Diagnostic) || !strings.Contains(v.Diagnostic, tt.text) {
			t.Errorf("%s: diagnostic %q, want it decoded to contain %q", tt.charset, v.Diagnostic, tt.text)
		}
		if v.Category != tt.want {
			t.Errorf("%s: category %s, want %s (%s)", tt.charset, v.Category, tt.want, v.Diagnostic)
		}
	}
}

func stringsReader(s string) *strings.Reader { return strings.NewReader(s) }

func validUTF8(s string) bool { return utf8.ValidString(s) && !strings.ContainsRune(s, utf8.RuneError) }
