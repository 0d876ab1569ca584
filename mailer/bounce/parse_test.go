package bounce

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func parseFixture(t *testing.T, name string) *Report {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rep, err := Parse(f)
	if err != nil {
		t.Fatalf("Parse(%s): %v", name, err)
	}
	return rep
}

type want struct {
	rcpt   string
	kind   Kind
	cat    Category
	status string
}

func checkRecipients(t *testing.T, rep *Report, wants []want) {
	t.Helper()
	if len(rep.Recipients) != len(wants) {
		t.Fatalf("got %d recipients %+v, want %d", len(rep.Recipients), rep.Recipients, len(wants))
	}
	for i, w := range wants {
		v := rep.Recipients[i]
		if v.Recipient != w.rcpt || v.Kind != w.kind || v.Category != w.cat || v.Status != w.status {
			t.Errorf("recipient %d = %s %s/%s %s, want %s %s/%s %s", i, v.Recipient, v.Kind, v.Category, v.Status, w.rcpt, w.kind, w.cat, w.status)
		}
	}
}

func TestParseDSN(t *testing.T) {
	rep := parseFixture(t, "dsn-multi.eml")
	checkRecipients(t, rep, []want{
		{"gone@example.com", KindHard, CategoryUserUnknown, "5.1.1"},
		{"full@example.net", KindSoft, CategoryMailboxFull, "5.2.2"},
		{"later@example.org", KindSoft, CategoryNetwork, "4.4.1"},
	})
	if rep.MessageID != "c17.d99@herald.test" {
		t.Errorf("MessageID = %q, want %q", rep.MessageID, "c17.d99@herald.test")
	}
	if got := rep.Original.Get("Subject"); got != "Hello" {
		t.Errorf("Original Subject = %q, want %q", got, "Hello")
	}
	if rep.ReportingMTA != "mx.herald.test" {
		t.Errorf("ReportingMTA = %q", rep.ReportingMTA)
	}
	if d := rep.Recipients[0].Diagnostic; d != "550 5.1.1 <gone@example.com>: Recipient address rejected: User unknown in local recipient table" {
		t.Errorf("Diagnostic = %q", d)
	}
}

func TestParseARF(t *testing.T) {
	rep := parseFixture(t, "arf.eml")
	checkRecipients(t, rep, []want{{"reader@example.net", KindComplaint, CategoryNone, ""}})
	if rep.FeedbackType != "abuse" {
		t.Errorf("FeedbackType = %q, want abuse", rep.FeedbackType)
	}
	if rep.MessageID != "c18.d7@herald.test" {
		t.Errorf("MessageID = %q", rep.MessageID)
	}
}

func TestParseQmail(t *testing.T) {
	rep := parseFixture(t, "qmail.eml")
	checkRecipients(t, rep, []want{{"nobody-here@example.org", KindHard, CategoryUserUnknown, "5.1.1"}})
	if rep.MessageID != "c19.d1@herald.test" {
		t.Errorf("MessageID = %q", rep.MessageID)
	}
}

func TestParseAutoReply(t *testing.T) {
	rep := parseFixture(t, "vacation.eml")
	checkRecipients(t, rep, []want{{"away@example.com", KindAutoReply, CategoryNone, ""}})
}

func TestParseNotABounce(t *testing.T) {
	rep := parseFixture(t, "plain.eml")
	checkRecipients(t, rep, nil)
}

func TestParseMalformed(t *testing.T) {
	rep := parseFixture(t, "malformed.eml")
	checkRecipients(t, rep, []want{{"broken@example.org", KindHard, CategoryUserUnknown, "5.1.1"}})
}

// Parse must never panic, whatever it is fed.
func TestParseGarbage(t *testing.T) {
	inputs := [][]byte{
		nil,
		[]byte("\r\n\r\n"),
		[]byte("Content-Type: multipart/report; boundary=x\r\n\r\n--x\r\nContent-Type: message/delivery-status\r\n\r\nFinal-Recipient:"),
		[]byte("Content-Type: message/rfc822\n\nnot a header"),
		bytes.Repeat([]byte("Content-Type: multipart/mixed; boundary=a\n\n--a\n"), 50),
	}
	for _, in := range inputs {
		if _, err := Parse(bytes.NewReader(in)); err != nil {
			t.Errorf("Parse(%q) error %v, want none", in, err)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, name := range []string{"dsn-multi.eml", "arf.eml", "qmail.eml", "malformed.eml"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, err := Parse(bytes.NewReader(b)); err != nil {
			t.Fatal(err)
		}
	})
}
