package bounce

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// The reference corpus lives beside the repository, not in it (see its
// README); a clone without it skips this test.
//
// Scoring, per labelled recipient:
//   - the reference kind is hard, soft or other; ours maps hard→hard,
//     soft→soft and complaint, auto-reply and not-bounce→other. A recipient
//     we did not extract counts as "other" (we would record no bounce) and as
//     an extraction miss.
//   - rows labelled not-a-bounce-or-unparsed carry no recipient and no verdict
//     (the reference tool could not decode the message); they cannot be
//     scored, so they are left out of both figures and shown apart, as the
//     "unparsed" row of the table, with what we found.
//   - each file in not-bounces/ is one row whose reference is "other": it
//     agrees when we report no hard or soft recipient.
//
// testdata/corpus-disputes.tsv lists the rows where we judge the reference
// wrong, each with the reason. The confusion table and the raw figures count
// them as misses; the undisputed figures leave them out. A listed row that
// stops being a miss fails the test, so the list cannot go stale.
//
// The floors are those of issue 17: undisputed agreement 99%, raw 94%,
// extraction 98%, and no undisputed recipient the reference calls soft
// classified hard (a false hard suppresses a live subscriber). The
// reference labels identical replies hard in one file and soft in another
// (part 1 of the disputes), so a general classifier cannot agree with both.
const (
	minRawAgreement    = 0.94
	minRawExtraction   = 0.98
	minGatedAgreement  = 0.99
	minGatedExtraction = 0.98
)

type label struct {
	file, recipient, kind string
}

func corpusDir(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Skip("repository root not found")
		}
		dir = parent
	}
	corpus := filepath.Join(dir, "..", "shared", "bounce-corpus")
	if _, err := os.Stat(filepath.Join(corpus, "labels.tsv")); err != nil {
		t.Skipf("bounce corpus not present at %s", corpus)
	}
	return corpus
}

func readLabels(t *testing.T, path string) []label {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []label
	sc := bufio.NewScanner(f)
	for first := true; sc.Scan(); first = false {
		cols := strings.Split(sc.Text(), "\t")
		if first || len(cols) < 6 {
			continue
		}
		out = append(out, label{file: cols[0], recipient: strings.ToLower(cols[1]), kind: cols[5]})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// readDisputes loads file+recipient keys of rows we judge the reference wrong on.
func readDisputes(t *testing.T) map[string]string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "corpus-disputes.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, line := range strings.Split(string(data), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		cols := strings.SplitN(line, "\t", 3)
		if len(cols) == 3 {
			out[cols[0]+"\t"+cols[1]] = cols[2]
		}
	}
	return out
}

// coarse maps our kinds onto the reference's three.
func coarse(k Kind) string {
	switch k {
	case KindHard:
		return "hard"
	case KindSoft:
		return "soft"
	}
	return "other"
}

func parseFile(t *testing.T, path string) *Report {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rep, err := Parse(f)
	if err != nil {
		t.Fatalf("Parse(%s): %v", path, err)
	}
	return rep
}

func TestCorpus(t *testing.T) {
	corpus := corpusDir(t)
	labels := readLabels(t, filepath.Join(corpus, "labels.tsv"))
	disputes := readDisputes(t)

	reports := map[string]*Report{}
	for _, sub := range []string{"eml", "not-bounces"} {
		names, err := filepath.Glob(filepath.Join(corpus, sub, "*.eml"))
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range names {
			reports[sub+"/"+filepath.Base(name)] = parseFile(t, name)
		}
	}
	if len(reports) == 0 {
		t.Fatal("no messages in corpus")
	}

	kinds := []string{"hard", "soft", "other"}
	const unparsed, notFound = "unparsed", "none"
	confusion := map[[2]string]int{}
	var raw, gated score
	var falseHard, falseHardDisputed int
	var misses []string
	missed := map[string]bool{}
	record := func(file, rcpt, ref, got string, found, hasRcpt bool, detail string) {
		key := file + "\t" + rcpt
		why, disputed := disputes[key]
		col := got
		if hasRcpt && !found {
			col = notFound
		}
		confusion[[2]string{ref, col}]++
		raw.add(ref == got, found, hasRcpt)
		if !disputed {
			gated.add(ref == got, found, hasRcpt)
		}
		if ref == "soft" && got == "hard" {
			// A live subscriber suppressed: the costly mistake.
			if disputed {
				falseHardDisputed++
			} else {
				falseHard++
			}
		}
		if ref == got && (found || !hasRcpt) {
			return
		}
		missed[key] = true
		note := "UNEXPLAINED"
		if disputed {
			note = "disputed: " + why
		}
		misses = append(misses, fmt.Sprintf("%s %s ref=%s got=%s %s [%s]", file, rcpt, ref, got, detail, note))
	}

	for _, l := range labels {
		rep := reports["eml/"+l.file]
		if rep == nil {
			t.Errorf("labelled file %s missing from corpus", l.file)
			continue
		}
		if l.kind == "not-a-bounce-or-unparsed" {
			var found []string
			for _, v := range rep.Recipients {
				found = append(found, fmt.Sprintf("%s=%s/%s", v.Recipient, v.Kind, v.Category))
				confusion[[2]string{unparsed, coarse(v.Kind)}]++
			}
			if len(found) == 0 {
				confusion[[2]string{unparsed, notFound}]++
			}
			t.Logf("unscored (reference could not decode) %s: %s", l.file, strings.Join(found, " "))
			continue
		}
		got, detail, found := "other", "", false
		for _, v := range rep.Recipients {
			if strings.EqualFold(v.Recipient, l.recipient) {
				got, found = coarse(v.Kind), true
				detail = fmt.Sprintf("(%s %s %q)", v.Category, v.Status, trim(v.Diagnostic, 100))
				break
			}
		}
		if !found {
			var others []string
			for _, v := range rep.Recipients {
				others = append(others, v.Recipient+"="+string(v.Kind))
			}
			detail = "NOT EXTRACTED; found: " + strings.Join(others, " ")
		}
		record(l.file, l.recipient, l.kind, got, found, true, detail)
	}

	for name, rep := range reports {
		if !strings.HasPrefix(name, "not-bounces/") {
			continue
		}
		got, rcpt, detail := "other", "", ""
		for _, v := range rep.Recipients {
			if c := coarse(v.Kind); c != "other" {
				got, rcpt = c, v.Recipient
				detail = fmt.Sprintf("(%s %q)", v.Category, trim(v.Diagnostic, 100))
			}
		}
		record(name, rcpt, "other", got, false, false, detail)
	}

	for key := range disputes {
		if !missed[key] {
			t.Errorf("disputed row %q agrees with the reference now; remove it from testdata/corpus-disputes.tsv", key)
		}
	}

	t.Log(confusionTable(confusion, append(kinds, unparsed), append(kinds, notFound)))
	sort.Strings(misses)
	for _, m := range misses {
		t.Log("miss: " + m)
	}

	t.Logf("raw:        agreement %s, recipient extraction %s", raw.agreement(), raw.extraction())
	t.Logf("undisputed (without %d disputed rows): agreement %s, recipient extraction %s",
		len(disputes), gated.agreement(), gated.extraction())
	t.Logf("false hard (reference soft, ours hard): %d undisputed, %d disputed", falseHard, falseHardDisputed)
	if falseHard > 0 {
		t.Errorf("%d recipients labelled soft by the reference, undisputed, are classified hard; want none", falseHard)
	}
	for _, c := range []struct {
		name      string
		got, want float64
	}{
		{"raw agreement", raw.agreeRate(), minRawAgreement},
		{"raw recipient extraction", raw.extractRate(), minRawExtraction},
		{"undisputed agreement", gated.agreeRate(), minGatedAgreement},
		{"undisputed recipient extraction", gated.extractRate(), minGatedExtraction},
	} {
		if c.got < c.want {
			t.Errorf("%s %.1f%%, want at least %.1f%%", c.name, 100*c.got, 100*c.want)
		}
	}
}

// confusionTable renders counts by reference kind (rows) and ours (columns).
func confusionTable(counts map[[2]string]int, rows, cols []string) string {
	var b strings.Builder
	b.WriteString("confusion (rows: reference, columns: ours; none = recipient not extracted;\n")
	b.WriteString("unparsed = files the reference could not decode, not scored)\n")
	fmt.Fprintf(&b, "%-9s", "")
	for _, c := range cols {
		fmt.Fprintf(&b, "%7s", c)
	}
	for _, r := range rows {
		fmt.Fprintf(&b, "\n%-9s", r)
		for _, c := range cols {
			fmt.Fprintf(&b, "%7d", counts[[2]string{r, c}])
		}
	}
	return b.String()
}

// score counts agreement over scored rows and extraction over rows that
// name a recipient.
type score struct {
	rows, agreed, withRcpt, extracted int
}

func (s *score) add(agreed, found, hasRcpt bool) {
	s.rows++
	if agreed {
		s.agreed++
	}
	if hasRcpt {
		s.withRcpt++
		if found {
			s.extracted++
		}
	}
}

func (s score) agreeRate() float64   { return float64(s.agreed) / float64(s.rows) }
func (s score) extractRate() float64 { return float64(s.extracted) / float64(s.withRcpt) }
func (s score) agreement() string {
	return fmt.Sprintf("%d/%d = %.1f%%", s.agreed, s.rows, 100*s.agreeRate())
}
func (s score) extraction() string {
	return fmt.Sprintf("%d/%d = %.1f%%", s.extracted, s.withRcpt, 100*s.extractRate())
}

func trim(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
