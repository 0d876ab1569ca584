package mailer

import (
	"bytes"
	"errors"
	"fmt"
	htemplate "html/template"
	"io"
	"strconv"
	"strings"
	ttemplate "text/template"
	"text/template/parse"
)

// straight is a template that is only literal text and actions printing a
// field ({{.Subscriber.Name}}, {{.Subscriber.Attributes.city}}), the shape
// of nearly every newsletter, executed without reflection. text/template
// walks each action through reflect and calls html/template's escapers
// through reflect.Value.Call, which made executing a template half of a
// message's rendering.
//
// For HTML templates the actions are read from html/template's escaped
// tree, so each carries the escapers html/template chose for its context;
// only the escapers of HTML text, quoted attributes and URLs are known
// here, and a template needing any other (a value inside <script> or
// <style>, an unquoted attribute) is executed the normal way.
// TestStraightMatchesTemplates holds the output to the library's, byte for
// byte.
type straight struct {
	parts []straightPart
}

type straightPart struct {
	text string    // literal text; when path is nil, the whole part
	path []string  // field path of an action
	esc  []escaper // escapers applied to the value, in order
}

type escaper func(string) string

// straightEscapers are the html/template escapers a straight template may
// use, reimplemented from html/template (html.go, url.go) for the plain
// strings and numbers that subscriber data holds.
var straightEscapers = map[string]escaper{
	"_html_template_htmlescaper":   escapeHTML,
	"_html_template_attrescaper":   escapeHTML,
	"_html_template_rcdataescaper": escapeHTML, // <title>, <textarea>: the same table for plain strings
	"_html_template_urlfilter":     filterURL,
	"_html_template_urlnormalizer": func(s string) string { return processURL(s, true) },
	"_html_template_urlescaper":    func(s string) string { return processURL(s, false) },
}

// straightText compiles a text/template; nil when it is not straight.
func straightText(t *ttemplate.Template) *straight {
	if t == nil || t.Tree == nil || len(t.Templates()) > 1 {
		return nil
	}
	return compileStraight(t.Tree.Root, false)
}

// straightHTML compiles an html/template from its escaped tree; nil when it
// is not straight. The tree is escaped on first execution, which this
// forces.
func straightHTML(t *htemplate.Template) *straight {
	if t == nil || len(t.Templates()) > 1 {
		return nil
	}
	// Executing with empty data may fail (a nested attribute of a nil
	// map); only an escaping error means the tree is not escaped.
	var escErr *htemplate.Error
	if err := t.Execute(io.Discard, &TemplateData{}); errors.As(err, &escErr) || t.Tree == nil {
		return nil
	}
	return compileStraight(t.Tree.Root, true)
}

func compileStraight(root *parse.ListNode, html bool) *straight {
	st := &straight{}
	for _, n := range root.Nodes {
		switch n := n.(type) {
		case *parse.TextNode:
			st.parts = append(st.parts, straightPart{text: string(n.Text)})
		case *parse.ActionNode:
			p := n.Pipe
			if p == nil || len(p.Decl) > 0 || p.IsAssign || len(p.Cmds) == 0 {
				return nil
			}
			first := p.Cmds[0]
			if len(first.Args) != 1 {
				return nil
			}
			f, ok := first.Args[0].(*parse.FieldNode)
			if !ok || !knownField(f.Ident) {
				return nil
			}
			part := straightPart{path: f.Ident}
			for _, c := range p.Cmds[1:] {
				if !html || len(c.Args) != 1 {
					return nil
				}
				id, ok := c.Args[0].(*parse.IdentifierNode)
				if !ok || straightEscapers[id.Ident] == nil {
					return nil
				}
				part.esc = append(part.esc, straightEscapers[id.Ident])
			}
			if html && len(part.esc) == 0 {
				return nil
			}
			st.parts = append(st.parts, part)
		default:
			return nil
		}
	}
	return st
}

// knownField reports whether path names a field of TemplateData that
// lookup can read.
func knownField(path []string) bool {
	switch {
	case len(path) == 1:
		return path[0] == "UnsubscribeURL" || path[0] == "PreferencesURL"
	case len(path) >= 2 && (path[0] == "Data" || path[0] == "Subscriber" && path[1] == "Attributes"):
		return path[0] == "Data" || len(path) >= 3
	case len(path) == 2:
		switch path[0] + "." + path[1] {
		case "Subscriber.Email", "Subscriber.Name", "Org.Name", "Org.PostalAddress", "Campaign.Name", "Campaign.Subject":
			return true
		}
	}
	return false
}

// execute writes the template for d and reports whether it could: a value
// that is missing or not a string, number or boolean leaves the output to
// the template itself, whose rules for those cases are its own.
func (st *straight) execute(w *bytes.Buffer, d *TemplateData) bool {
	for i := range st.parts {
		p := &st.parts[i]
		if p.path == nil {
			w.WriteString(p.text)
			continue
		}
		s, ok := lookup(d, p.path)
		if !ok {
			return false
		}
		for _, e := range p.esc {
			s = e(s)
		}
		w.WriteString(s)
	}
	return true
}

// lookup reads a field path (checked by knownField) of d as text/template
// would print it.
func lookup(d *TemplateData, path []string) (string, bool) {
	var m map[string]any
	switch path[0] {
	case "UnsubscribeURL":
		return d.UnsubscribeURL, true
	case "PreferencesURL":
		return d.PreferencesURL, true
	case "Org":
		if path[1] == "Name" {
			return d.Org.Name, true
		}
		return d.Org.PostalAddress, true
	case "Campaign":
		if path[1] == "Name" {
			return d.Campaign.Name, true
		}
		return d.Campaign.Subject, true
	case "Subscriber":
		switch path[1] {
		case "Email":
			return d.Subscriber.Email, true
		case "Name":
			return d.Subscriber.Name, true
		}
		m, path = d.Subscriber.Attributes, path[2:]
	case "Data":
		m, path = d.Data, path[1:]
	}
	for {
		v, ok := m[path[0]]
		if !ok {
			return "", false
		}
		if len(path) > 1 {
			if m, ok = v.(map[string]any); !ok {
				return "", false
			}
			path = path[1:]
			continue
		}
		switch v := v.(type) {
		case string:
			return v, true
		case float64:
			return fmt.Sprint(v), true
		case bool:
			return strconv.FormatBool(v), true
		}
		return "", false
	}
}

// escapeHTML is html/template's htmlEscaper and attrEscaper for plain
// text: the replacement table holds ASCII runes only, so a byte loop
// matches its rune loop.
func escapeHTML(s string) string {
	var b strings.Builder
	written := 0
	for i := 0; i < len(s); i++ {
		var repl string
		switch s[i] {
		case 0:
			repl = "\uFFFD"
		case '"':
			repl = "&#34;"
		case '&':
			repl = "&amp;"
		case '\'':
			repl = "&#39;"
		case '+':
			repl = "&#43;"
		case '<':
			repl = "&lt;"
		case '>':
			repl = "&gt;"
		default:
			continue
		}
		if written == 0 {
			b.Grow(len(s) + 16)
		}
		b.WriteString(s[written:i])
		b.WriteString(repl)
		written = i + 1
	}
	if written == 0 {
		return s
	}
	b.WriteString(s[written:])
	return b.String()
}

// filterURL is html/template's urlFilter: a URL whose scheme is not http,
// https or mailto becomes "#ZgotmplZ".
func filterURL(s string) string {
	if protocol, _, ok := strings.Cut(s, ":"); ok && !strings.Contains(protocol, "/") {
		if !strings.EqualFold(protocol, "http") && !strings.EqualFold(protocol, "https") && !strings.EqualFold(protocol, "mailto") {
			return "#ZgotmplZ"
		}
	}
	return s
}

// processURL is html/template's urlNormalizer (norm) and urlEscaper.
func processURL(s string, norm bool) string {
	var b strings.Builder
	written := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '!', '#', '$', '&', '*', '+', ',', '/', ':', ';', '=', '?', '@', '[', ']':
			if norm {
				continue
			}
		case '-', '.', '_', '~':
			continue
		case '%':
			if norm && i+2 < len(s) && isHexDigit(s[i+1]) && isHexDigit(s[i+2]) {
				continue
			}
		default:
			if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' {
				continue
			}
		}
		if written == 0 {
			b.Grow(len(s) + 16)
		}
		b.WriteString(s[written:i])
		b.WriteByte('%')
		b.WriteByte(lowerHex[c>>4])
		b.WriteByte(lowerHex[c&0xf])
		written = i + 1
	}
	if written == 0 {
		return s
	}
	b.WriteString(s[written:])
	return b.String()
}

const lowerHex = "0123456789abcdef"

func isHexDigit(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}
