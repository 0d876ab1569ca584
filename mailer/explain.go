package mailer

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// TemplateProblem is why a template does not render, in the words of the
// person who wrote it: which field, which line, what to do, and the line
// itself with a pointer under the place.
type TemplateProblem struct {
	Field   string // "subject", "html" or "text"
	Line    int    // 1-based; 0 when the error names none
	Message string // plain words, starting with the line
	Pointer string // the line as written and a ^ under the place; "" without a line
}

// fieldTypes are the fields of the template data by Go type, for the
// message about a misspelt one.
var fieldTypes = map[string][]string{
	"TemplateData":   {"Subscriber", "UnsubscribeURL", "PreferencesURL", "Org", "Campaign", "Data"},
	"SubscriberData": {"Email", "Name", "Attributes"},
	"OrgData":        {"Name", "PostalAddress"},
	"CampaignData":   {"Name", "Subject"},
}

var (
	// "template: template.html:2:14: executing … at <.Subscriber.Nmae>: …"
	// or "html/template:template.html:5:12: …", column optional.
	errPosRE   = regexp.MustCompile(`^(?:html/)?template: ?[^:]+:(\d+)(?::(\d+))?: (?:executing "[^"]*" at <([^>]*)>: )?(.*)$`)
	noFieldRE  = regexp.MustCompile(`can't evaluate field (\w+) in type \*?mailer\.(\w+)`)
	noFuncRE   = regexp.MustCompile(`function "(\w+)" not defined`)
	unexpectRE = regexp.MustCompile(`unexpected (.+?) in (\w+)`)
)

// ExplainTemplateError turns an error of CheckTemplate or RenderPreview
// into a TemplateProblem for the template with these sources.
func ExplainTemplateError(err error, subject, html, text string) TemplateProblem {
	msg := err.Error()
	var p TemplateProblem
	src := ""
	switch {
	case strings.HasPrefix(msg, "subject: "):
		p.Field, src, msg = "subject", subject, strings.TrimPrefix(msg, "subject: ")
	case strings.HasPrefix(msg, "HTML body: "):
		p.Field, src, msg = "html", html, strings.TrimPrefix(msg, "HTML body: ")
	case strings.HasPrefix(msg, "text body: "):
		p.Field, src, msg = "text", text, strings.TrimPrefix(msg, "text body: ")
		if strings.TrimSpace(text) == "" {
			// The text part was derived from the HTML: the mistake is there.
			p.Field, src = "html", html
		}
	default:
		p.Field = "html"
	}
	m := errPosRE.FindStringSubmatch(msg)
	if errors.Is(err, ErrTemplateLimit) || m == nil && strings.Contains(msg, "template limit") {
		p.Message = "The template takes too long or makes too large a message to render: " + msg + "."
		return p
	}
	if m == nil {
		p.Message = sentence(msg)
		return p
	}
	p.Line, _ = strconv.Atoi(m[1])
	col, _ := strconv.Atoi(m[2])
	action, detail := m[3], m[4]
	if action != "" {
		// An execution error: find the action in the source itself (the
		// derived text part has other line numbers).
		if l, c := findAction(src, action); l > 0 {
			p.Line, col = l, c
		}
	}
	p.Message = fmt.Sprintf("Line %d: %s", p.Line, plainWords(action, detail))
	p.Pointer = pointer(src, p.Line, col)
	return p
}

// plainWords says what a Go template error detail means and what to do.
func plainWords(action, detail string) string {
	switch {
	case noFieldRE.MatchString(detail):
		f := noFieldRE.FindStringSubmatch(detail)
		known := fieldTypes[f[2]]
		prefix := strings.TrimSuffix(action, "."+f[1])
		if len(known) == 0 {
			return fmt.Sprintf("%s has no field “%s”.", action, f[1])
		}
		s := fmt.Sprintf("there is no field “%s” in %s. Its fields are %s.", f[1], prefix, strings.Join(known, ", "))
		if best := closest(f[1], known); best != "" {
			s += fmt.Sprintf(" Did you mean {{%s.%s}}?", prefix, best)
		}
		return s
	case noFuncRE.MatchString(detail):
		return fmt.Sprintf("there is no function “%s” in Herald's templates. Check the spelling, or write the value without it.", noFuncRE.FindStringSubmatch(detail)[1])
	case strings.Contains(detail, "unexpected EOF"):
		return "a {{if}}, {{range}} or {{with}} is never closed. Add {{end}} where it should stop."
	case strings.Contains(detail, "unexpected {{end}}"):
		return "this {{end}} closes nothing: remove it, or add the {{if}}, {{range}} or {{with}} it should close."
	case strings.Contains(detail, "unclosed action"):
		return "a {{ is never closed: add }} after the field's name."
	case strings.Contains(detail, "unclosed left delim"), strings.Contains(detail, "unexpected \"}\""):
		return "the braces do not match: a field is written {{.Name}}, with two braces on each side."
	case strings.Contains(detail, "missing value for if"), strings.Contains(detail, "missing value for range"), strings.Contains(detail, "missing value for with"):
		return "this {{if}}, {{range}} or {{with}} needs a value to test, as in {{if .Subscriber.Name}}."
	case unexpectRE.MatchString(detail):
		u := unexpectRE.FindStringSubmatch(detail)
		return fmt.Sprintf("%s is not expected here in a {{…}}: check the spelling and the spaces around it.", u[1])
	case strings.Contains(detail, "function called with"), strings.Contains(detail, "wrong number of args"):
		return "a function gets the wrong number of values: " + detail + "."
	}
	return sentence(detail)
}

// findAction returns the line and column (1-based) of the first {{…}} in
// src that mentions the field chain action, or 0, 0.
func findAction(src, action string) (int, int) {
	if action == "" {
		return 0, 0
	}
	for i, line := range strings.Split(src, "\n") {
		for off := 0; ; {
			j := strings.Index(line[off:], "{{")
			if j < 0 {
				break
			}
			start := off + j
			end := strings.Index(line[start:], "}}")
			if end < 0 {
				break
			}
			if strings.Contains(line[start:start+end], action) {
				return i + 1, start + strings.Index(line[start:start+end], action) + 1
			}
			off = start + end
		}
	}
	return 0, 0
}

// pointer is line n of src, and a ^ under column col (1-based; the first
// {{ of the line when col is 0).
func pointer(src string, n, col int) string {
	lines := strings.Split(src, "\n")
	if n < 1 || n > len(lines) {
		return ""
	}
	line := strings.TrimRight(lines[n-1], "\r")
	if len([]rune(line)) > 160 {
		line = string([]rune(line)[:160]) + "…"
	}
	if col <= 0 {
		col = strings.Index(line, "{{") + 1
	}
	prefix := fmt.Sprintf("%d | ", n)
	out := prefix + line
	if col > 0 && col <= len(line)+1 {
		out += "\n" + strings.Repeat(" ", len(prefix)+len([]rune(line[:col-1]))) + "^"
	}
	return out
}

// closest is the name in names nearest to s (case aside) within two edits,
// or "".
func closest(s string, names []string) string {
	best, bestD := "", 3
	for _, n := range names {
		if d := editDistance(strings.ToLower(s), strings.ToLower(n)); d < bestD {
			best, bestD = n, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

func sentence(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return s
	}
	s = strings.ToUpper(s[:1]) + s[1:]
	if !strings.HasSuffix(s, ".") {
		s += "."
	}
	return s
}
