package bounce

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// messageFiles returns the fixtures and, when present, every file of the
// shared corpus.
func messageFiles(t testing.TB) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "*.eml"))
	if err != nil {
		t.Fatal(err)
	}
	if corpus := sharedCorpus(); corpus != "" {
		for _, sub := range []string{"eml", "not-bounces"} {
			more, err := filepath.Glob(filepath.Join(corpus, sub, "*.eml"))
			if err != nil {
				t.Fatal(err)
			}
			files = append(files, more...)
		}
	}
	return files
}

// sharedCorpus is ../shared/bounce-corpus from the repository root, or "".
func sharedCorpus() string {
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			c := filepath.Join(dir, "..", "shared", "bounce-corpus")
			if _, err := os.Stat(filepath.Join(c, "labels.tsv")); err == nil {
				return c
			}
			return ""
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

// summary renders what a report says, for comparing two parses.
func summary(t *testing.T, rep *Report) string {
	t.Helper()
	type line struct {
		Rcpt, Kind, Category, Status, Diagnostic, Rule, Reason string
		Code                                                   int
	}
	out := []any{rep.MessageID, rep.FeedbackType, rep.ReportingMTA}
	for _, v := range rep.Recipients {
		out = append(out, line{v.Recipient, string(v.Kind), string(v.Category), v.Status, v.Diagnostic, v.Rule, v.Reason, v.Code})
	}
	b, err := json.Marshal(out)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// CR-only (classic Mac OS), LF and CRLF copies of every message give the
// same report.
func TestLineEndingsGiveIdenticalOutput(t *testing.T) {
	files := messageFiles(t)
	found := 0
	for _, name := range files {
		raw, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		lf := bytes.ReplaceAll(bytes.ReplaceAll(raw, []byte("\r\n"), []byte("\n")), []byte("\r"), []byte("\n"))
		copies := map[string][]byte{
			"LF":   lf,
			"CRLF": bytes.ReplaceAll(lf, []byte("\n"), []byte("\r\n")),
			"CR":   bytes.ReplaceAll(lf, []byte("\n"), []byte("\r")),
		}
		var want string
		for _, ending := range []string{"LF", "CRLF", "CR"} {
			rep, err := ParseStrict(bytes.NewReader(copies[ending]))
			if err != nil {
				t.Errorf("%s (%s): %v", name, ending, err)
				continue
			}
			got := summary(t, rep)
			if ending == "LF" {
				want = got
				if len(rep.Recipients) > 0 {
					found++
				}
				continue
			}
			if got != want {
				t.Errorf("%s: %s copy gives\n%s\nLF copy gives\n%s", name, ending, got, want)
			}
		}
	}
	t.Logf("%d files, %d with recipients, identical under LF, CRLF and CR line endings", len(files), found)
}

// Every message file we have is a readable message: the strict checks do
// not refuse real mail, truncated quoted originals included.
func TestParseStrictAcceptsRealMail(t *testing.T) {
	for _, name := range messageFiles(t) {
		f, err := os.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		_, err = ParseStrict(f)
		f.Close()
		if err != nil && filepath.Base(name) != "malformed.eml" {
			t.Errorf("ParseStrict(%s): %v", name, err)
		}
	}
}

// Input that is not a message is an error that says why, never an empty
// report.
func TestParseStrictRefuses(t *testing.T) {
	dsn, err := os.ReadFile(filepath.Join("testdata", "dsn-multi.eml"))
	if err != nil {
		t.Fatal(err)
	}
	dsn = bytes.ReplaceAll(dsn, []byte("\r\n"), []byte("\n"))
	headerEnd := bytes.Index(dsn, []byte("\n\n"))
	firstPart := bytes.Index(dsn, []byte("Content-Type: text/plain"))
	if headerEnd < 0 || firstPart < 0 {
		t.Fatal("fixture dsn-multi.eml changed shape")
	}
	png := append([]byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"), bytes.Repeat([]byte{0, 1, 2, 3, 0xff}, 200)...)
	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, "empty"},
		{"blank lines", []byte("\n\n\r\n"), "empty"},
		{"binary image", png, "binary"},
		{"control characters", bytes.Repeat([]byte("Subject: x\x01\x02\x03\x04\n"), 50), "binary"},
		{"cut inside the header", dsn[:headerEnd-20], "truncated: the header never ends"},
		{"cut inside the first part", dsn[:firstPart+60], "truncated: the message ends inside its first part"},
		{"prose, no header", []byte("Dear customer,\nyour parcel is late.\n"), "does not start with a header"},
	}
	for _, tt := range tests {
		rep, err := ParseStrict(bytes.NewReader(tt.in))
		if err == nil {
			t.Errorf("%s: ParseStrict = %d recipients, nil error; want an error", tt.name, len(rep.Recipients))
			continue
		}
		if !errors.Is(err, ErrNotMessage) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %q, want ErrNotMessage saying %q", tt.name, err, tt.want)
		}
	}
}

// Every verdict on every message names the row of the precedence table
// that decided it (or, for complaints and auto-replies, says what they
// are), with its reason and evidence.
func TestEveryDecisionExplained(t *testing.T) {
	rows := map[string]bool{}
	for _, r := range Rules {
		rows[r.ID] = true
	}
	used := map[string]int{}
	for _, name := range messageFiles(t) {
		raw, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		rep, err := Parse(bytes.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range rep.Recipients {
			switch v.Kind {
			case KindComplaint, KindAutoReply:
				if v.Reason == "" {
					t.Errorf("%s %s: %s without a reason", name, v.Recipient, v.Kind)
				}
				continue
			}
			if !rows[v.Rule] || v.Reason == "" {
				t.Errorf("%s %s: %s/%s decided by %q (%q), not a row of the table", name, v.Recipient, v.Kind, v.Category, v.Rule, v.Reason)
				continue
			}
			if v.Kind != KindNotBounce && v.Evidence.Source == "" {
				t.Errorf("%s %s: decided by %s with no evidence", name, v.Recipient, v.Rule)
			}
			for _, r := range Rules {
				if r.ID == v.Rule && r.Kind != v.Kind {
					t.Errorf("%s %s: row %s gives %s, verdict is %s", name, v.Recipient, r.ID, r.Kind, v.Kind)
				}
			}
			used[v.Rule]++
		}
	}
	t.Logf("rows used: %v", used)
}

// The precedence table in the package documentation lists every row of
// Rules, in order, with its name and verdict.
func TestPrecedenceTableDocumented(t *testing.T) {
	doc, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	last := -1
	for _, r := range Rules {
		verdict := string(r.Kind)
		re := regexp.MustCompile(`(?m)^//\t` + regexp.QuoteMeta(r.ID) + `\s+` + regexp.QuoteMeta(r.Name) + `\s.*\s` + regexp.QuoteMeta(verdict) + `$`)
		loc := re.FindIndex(doc)
		if loc == nil {
			t.Errorf("row %s %q (%s) is not in the package documentation's table", r.ID, r.Name, verdict)
			continue
		}
		if loc[0] < last {
			t.Errorf("row %s is out of order in the package documentation", r.ID)
		}
		last = loc[0]
	}
}
