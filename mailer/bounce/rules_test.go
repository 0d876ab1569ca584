package bounce

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// Each fixture exercises one general rule of the classifier; the corpus test
// measures them on real mail, these keep them true without it.
func TestParseRules(t *testing.T) {
	tests := []struct {
		file  string
		rule  string
		wants []want
	}{
		{"exim-mail-from.eml", "a refused MAIL FROM is about our sender: soft, whatever the words",
			[]want{{"reader@example.org", KindSoft, CategoryPolicyBlock, "5.1.0"}}},
		{"sendmail-pipelined.eml", "pipelining: a RCPT refusal read after DATA (then \"no valid recipients\") is still about the address",
			[]want{{"nobody@mobile.example.jp", KindHard, CategoryUserUnknown, "5.0.0"}}},
		{"sendmail-data.eml", "\"user unknown\" in answer to DATA is a filter's disguise: soft",
			[]want{{"someone@mobile.example.jp", KindSoft, CategoryPolicyBlock, "5.2.0"}}},
		{"labelled-command.eml", "a notice that labels the refused command DATA",
			[]want{{"member@example.com", KindSoft, CategoryPolicyBlock, ""}}},
		{"disabled.eml", "X.2.1 says the mailbox exists; \"User Unknown\" at RCPT TO still refuses the address",
			[]want{
				{"off@example.net", KindSoft, CategoryMailboxDisabled, "5.2.1"},
				{"gone@example.net", KindHard, CategoryUserUnknown, "5.2.1"},
				{"asleep@example.net", KindSoft, CategoryMailboxDisabled, "5.2.1"},
			}},
		{"yahoo-tags.eml", "Yahoo's [RCPT_TO] tag names the command",
			[]want{{"closed@example.co.jp", KindHard, CategoryUserUnknown, "5.2.1"}}},
		{"dsn-rules.eml", "bare refusals, exhausted temporary unknowns, recipient filters",
			[]want{
				{"bare@example.jp", KindHard, CategoryUserUnknown, "5.0.0"},
				{"vague@example.jp", KindSoft, CategoryPolicyBlock, "5.0.0"},
				{"stale@example.org", KindHard, CategoryUserUnknown, "4.1.1"},
				{"waiting@example.org", KindSoft, CategoryUserUnknown, "4.1.1"},
				{"prefs@example.com", KindSoft, CategoryPolicyBlock, "5.1.1"},
			}},
		{"powermta.eml", "X.2.1 with \"User Unknown\" and no RCPT TO stage is mixed evidence: soft, whatever the reporting MTA's category",
			[]want{{"closed@example.jp", KindSoft, CategoryMailboxDisabled, "5.2.1"}}},
		{"fml.eml", "an fml list refusing a post: the list address, soft",
			[]want{{"cats@lists.example.org", KindSoft, CategoryPolicyBlock, ""}}},
		{"forwarded.eml", "a notice naming no address reports the notice it attaches",
			[]want{{"gone@example.org", KindHard, CategoryUserUnknown, "5.1.1"}}},
		{"bad-content-type.eml", "a Content-Type without its semicolon still reads as text",
			[]want{{"gone@example.org", KindHard, CategoryUserUnknown, ""}}},
		{"exim-self.eml", "the notice's own list beats a header naming none of it, even for the sender's own address",
			[]want{{"owner@example.fr", KindSoft, CategoryPolicyBlock, "5.7.1"}}},
		{"details.eml", "quoted From: lines and help desks to contact are not recipients",
			[]want{{"5550100@mms.example.com", KindHard, CategoryUserUnknown, ""}}},
		{"multi-text.eml", "one recipient's reply does not leak into the next one's",
			[]want{
				{"tabby@example.co.jp", KindHard, CategoryUserUnknown, "5.2.1"},
				{"calico@example.co.jp", KindSoft, CategoryMailboxFull, "5.2.2"},
			}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			t.Log(tt.rule)
			checkRecipients(t, parseFixture(t, tt.file), tt.wants)
		})
	}
}

// A post an fml list distributes carries X-MLServer too; it is no bounce.
func TestParseFMLPostIsNotABounce(t *testing.T) {
	post := "From: poster@example.org\r\nTo: cats@lists.example.org\r\nSubject: [cats:01] hello\r\n" +
		"Message-ID: <1@example.org>\r\nX-MLServer: fml [fml 4.0.3]\r\n\r\nSee <cats@lists.example.org>.\r\n"
	rep, err := Parse(bytes.NewReader([]byte(post)))
	if err != nil {
		t.Fatal(err)
	}
	checkRecipients(t, rep, nil)
}

// A saved mbox with several reports gives every report's recipients.
func TestParseMbox(t *testing.T) {
	var mbox bytes.Buffer
	mbox.WriteString("From MAILER-DAEMON Mon Jan  1 00:00:00 2024\n")
	for i, name := range []string{"dsn-multi.eml", "qmail.eml"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		if i > 0 {
			mbox.WriteString("\n")
		}
		mbox.Write(bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n")))
	}
	rep, err := Parse(&mbox)
	if err != nil {
		t.Fatal(err)
	}
	checkRecipients(t, rep, []want{
		{"gone@example.com", KindHard, CategoryUserUnknown, "5.1.1"},
		{"full@example.net", KindSoft, CategoryMailboxFull, "5.2.2"},
		{"later@example.org", KindSoft, CategoryNetwork, "4.4.1"},
		{"nobody-here@example.org", KindHard, CategoryUserUnknown, "5.1.1"},
	})
	if rep.MessageID != "c17.d99@herald.test" {
		t.Errorf("MessageID = %q, want the first report's", rep.MessageID)
	}
}

// A paragraph that happens to start with "From " is not an mbox separator.
func TestSplitMboxNeedsHeader(t *testing.T) {
	raw := []byte("From x Mon Jan  1 00:00:00 2024\nSubject: a\n\nline\n\nFrom the desk of the postmaster:\nnothing here\n")
	if got := len(splitMbox(raw)); got != 1 {
		t.Errorf("splitMbox gave %d messages, want 1", got)
	}
}
