package mailer

import (
	"strconv"
	"strings"

	"golang.org/x/net/html"
)

// htmlToText derives a text template from an HTML template source, as a
// reader of plain text should see it: paragraphs apart, headings set apart
// (h1 and h2 underlined), list items as "- " or "1. " (indented when
// nested), table cells side by side and rows on their lines, and links as
// numbered footnotes ("Read more [1]") whose URLs are listed at the end.
// Script, style, head and elements hidden with display:none are left out;
// entities are decoded. Template actions in text and in link targets pass
// through, so the text part is executed like the HTML; a tracked link's
// placeholder becomes the same tracked URL as in the HTML part.
//
// It runs once per campaign (compileTemplate), not per recipient.
func htmlToText(src string) string {
	w := textWriter{index: map[string]int{}, heading: -1, mark: -1}
	z := html.NewTokenizer(strings.NewReader(src))
	for {
		tt := z.Next()
		if tt == html.ErrorToken {
			return w.finish()
		}
		if tt == html.TextToken {
			if len(w.skip) > 0 {
				w.controlActions(string(z.Raw()))
			} else {
				w.text(decodeText(string(z.Raw())))
			}
			continue
		}
		if tt != html.StartTagToken && tt != html.EndTagToken && tt != html.SelfClosingTagToken {
			continue
		}
		name, hasAttr := z.TagName()
		tag := string(name)
		var attrs map[string]string
		for hasAttr {
			var k, v []byte
			k, v, hasAttr = z.TagAttr()
			if attrs == nil {
				attrs = map[string]string{}
			}
			attrs[string(k)] = string(v)
		}
		if w.skipping(tag, tt, attrs) {
			continue
		}
		if tt == html.EndTagToken {
			w.end(tag)
		} else {
			w.start(tag, attrs)
			if tt == html.SelfClosingTagToken {
				w.end(tag)
			}
		}
	}
}

// textWriter accumulates the text part.
type textWriter struct {
	b       []byte
	mark    int      // len(b) after the last list marker: a line holding only it counts as empty
	space   bool     // a space is owed before the next word
	skip    []string // elements being left out, innermost last
	lists   []int    // open lists: -1 for <ul>, else the next number of an <ol>
	pre     int      // depth of <pre>
	heading int      // start of the open heading's text, -1 when none
	links   []link   // open links
	notes   []string // footnote URLs, by number-1
	index   map[string]int
}

type link struct {
	href  string
	start int
}

// void elements have no end tag, so they can never open a skipped span.
var voidTags = map[string]bool{"area": true, "base": true, "br": true, "col": true, "embed": true, "hr": true, "img": true,
	"input": true, "link": true, "meta": true, "source": true, "track": true, "wbr": true}

// skipping reports whether tag is inside (or opens or closes) a part of
// the document that is not read: head, script, style, title and hidden
// elements.
func (w *textWriter) skipping(tag string, tt html.TokenType, attrs map[string]string) bool {
	if n := len(w.skip); n > 0 {
		if tt == html.StartTagToken && tag == w.skip[n-1] && !voidTags[tag] {
			w.skip = append(w.skip, tag) // the same element nested: count it
		} else if tt == html.EndTagToken && tag == w.skip[n-1] {
			w.skip = w.skip[:n-1]
		}
		return true
	}
	hidden := strings.Contains(strings.ReplaceAll(strings.ToLower(attrs["style"]), " ", ""), "display:none")
	switch {
	case tt == html.EndTagToken:
		return false
	case tag == "head" || tag == "script" || tag == "style" || tag == "title" || tag == "template" || hidden:
		if tt == html.StartTagToken && !voidTags[tag] {
			w.skip = append(w.skip, tag)
		}
		return true
	}
	return false
}

func (w *textWriter) start(tag string, attrs map[string]string) {
	switch tag {
	case "br":
		w.newline()
	case "p", "table", "blockquote", "pre", "dl":
		w.block(w.paragraphGap())
		if tag == "pre" {
			w.pre++
		}
	case "div", "tr", "section", "article", "header", "footer", "center", "dt", "dd", "address", "figure":
		w.block(1)
	case "h1", "h2", "h3", "h4", "h5", "h6":
		w.block(2)
		w.heading = len(w.b)
	case "hr":
		w.block(2)
		w.b = append(w.b, "----------"...)
		w.block(2)
	case "ul", "ol":
		if len(w.lists) == 0 {
			w.block(2)
		} else {
			w.block(1)
		}
		n := -1
		if tag == "ol" {
			n = 1
			if s, err := strconv.Atoi(attrs["start"]); err == nil {
				n = s
			}
		}
		w.lists = append(w.lists, n)
	case "li":
		w.block(1)
		depth := len(w.lists)
		if depth == 0 {
			depth = 1
		}
		for i := 1; i < depth; i++ {
			w.b = append(w.b, "  "...)
		}
		if n := len(w.lists); n > 0 && w.lists[n-1] >= 0 {
			w.b = strconv.AppendInt(w.b, int64(w.lists[n-1]), 10)
			w.b = append(w.b, ". "...)
			w.lists[n-1]++
		} else {
			w.b = append(w.b, "- "...)
		}
		w.mark, w.space = len(w.b), false
	case "td", "th":
		if !w.lineEmpty() {
			w.space = true
		}
	case "a":
		w.links = append(w.links, link{href: keepBraces(strings.TrimSpace(attrs["href"])), start: len(w.b)})
	case "img":
		if alt := strings.TrimSpace(attrs["alt"]); alt != "" && len(w.links) > 0 {
			w.text(keepBraces(alt))
		}
	}
}

func (w *textWriter) end(tag string) {
	switch tag {
	case "p", "table", "blockquote", "dl":
		w.block(w.paragraphGap())
	case "pre":
		if w.pre > 0 {
			w.pre--
		}
		w.block(2)
	case "div", "tr", "section", "article", "header", "footer", "center", "dt", "dd", "address", "figure", "li":
		w.block(1)
	case "h1", "h2", "h3", "h4", "h5", "h6":
		if w.heading >= 0 && (tag == "h1" || tag == "h2") {
			n := underlineLength(strings.TrimSpace(string(w.b[w.heading:])))
			if n > 0 {
				ch := byte('=')
				if tag == "h2" {
					ch = '-'
				}
				w.newline()
				for ; n > 0; n-- {
					w.b = append(w.b, ch)
				}
			}
		}
		w.heading = -1
		w.block(2)
	case "ul", "ol":
		if len(w.lists) > 0 {
			w.lists = w.lists[:len(w.lists)-1]
		}
		if len(w.lists) == 0 {
			w.block(2)
		} else {
			w.block(1)
		}
	case "a":
		if len(w.links) == 0 {
			return
		}
		l := w.links[len(w.links)-1]
		w.links = w.links[:len(w.links)-1]
		w.footnote(l)
	}
}

// underlineLength guesses a heading's length once executed: its text
// without template actions, and ten characters for each action printing a
// value (a name, a city).
func underlineLength(heading string) int {
	n := 0
	for _, a := range actionRE.FindAllString(heading, -1) {
		f := strings.Fields(strings.Trim(a, "{}- "))
		if len(f) > 0 && strings.HasPrefix(f[0], ".") {
			n += 10
		}
	}
	return n + len([]rune(actionRE.ReplaceAllString(heading, "")))
}

// decodeText decodes the entities of a text node's source around its
// template actions, keeping the braces of the text as text.
func decodeText(raw string) string {
	return mapGaps(raw, html.UnescapeString)
}

// keepBraces makes the braces of s outside its template actions print
// themselves in a text/template. Braces written as entities (&#123;&#123;)
// or beside an action are text in the HTML part and must not become (or
// break) an action of the text part.
func keepBraces(s string) string {
	return mapGaps(s, func(t string) string { return t })
}

// mapGaps applies f to the parts of s between template actions, with the
// braces of the result written as actions printing them.
func mapGaps(s string, f func(string) string) string {
	if !strings.ContainsAny(s, "{}&") {
		return s
	}
	var b strings.Builder
	last := 0
	locs := actionRE.FindAllStringIndex(s, -1)
	for i := 0; i <= len(locs); i++ {
		end := len(s)
		if i < len(locs) {
			end = locs[i][0]
		}
		t := f(s[last:end])
		if strings.ContainsAny(t, "{}") {
			t = braceEscaper.Replace(t)
		}
		b.WriteString(t)
		if i < len(locs) {
			b.WriteString(s[locs[i][0]:locs[i][1]])
			last = locs[i][1]
		}
	}
	return b.String()
}

var braceEscaper = strings.NewReplacer("{", `{{"{"}}`, "}", `{{"}"}}`)

// controlActions keeps the control actions ({{if}}, {{end}}, …) of a part
// left out, so that the text template stays balanced as the HTML is; what
// they would print is left out with the part.
func (w *textWriter) controlActions(raw string) {
	for _, a := range actionRE.FindAllString(raw, -1) {
		f := strings.Fields(strings.Trim(a, "{}- "))
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "if", "else", "end", "range", "with", "break", "continue", "define", "block":
			w.b = append(w.b, a...)
		}
	}
}

// paragraphGap is the line breaks around a paragraph: a blank line,
// except inside list items, which stay tight.
func (w *textWriter) paragraphGap() int {
	if len(w.lists) > 0 {
		return 1
	}
	return 2
}

// footnote marks the end of a link with its note's number, unless the link
// goes nowhere worth reading or its text is its address already.
func (w *textWriter) footnote(l link) {
	href := l.href
	if href == "" || strings.HasPrefix(href, "#") || strings.HasPrefix(strings.ToLower(href), "javascript:") {
		return
	}
	text := strings.TrimSpace(string(w.b[min(l.start, len(w.b)):]))
	bare := strings.TrimPrefix(href, "mailto:")
	if text == href || text == bare || strings.TrimSuffix(text, "/") == strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(href, "https://"), "http://"), "/") {
		if text == "" {
			w.text(bare)
		}
		return
	}
	n, ok := w.index[href]
	if !ok {
		w.notes = append(w.notes, href)
		n = len(w.notes)
		w.index[href] = n
	}
	if !w.lineEmpty() && !w.space {
		w.space = true
	}
	w.text("[" + strconv.Itoa(n) + "]")
}

// text writes a text node: white space collapsed (kept inside <pre>), one
// space between words across inline tags.
func (w *textWriter) text(s string) {
	if w.pre > 0 {
		w.b = append(w.b, s...)
		w.space = false
		return
	}
	if s == "" {
		return
	}
	lead := isSpace(s[0])
	trail := isSpace(s[len(s)-1])
	fields := strings.Fields(s)
	if len(fields) == 0 {
		w.space = w.space || lead
		return
	}
	if (w.space || lead) && !w.lineEmpty() {
		if last := w.b[len(w.b)-1]; last != ' ' && last != '\n' {
			w.b = append(w.b, ' ')
		}
	}
	for i, f := range fields {
		if i > 0 {
			w.b = append(w.b, ' ')
		}
		w.b = append(w.b, f...)
	}
	w.space = trail
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' }

// lineEmpty reports whether nothing but a list marker is on the current
// line.
func (w *textWriter) lineEmpty() bool {
	return len(w.b) == 0 || w.b[len(w.b)-1] == '\n' || len(w.b) == w.mark
}

func (w *textWriter) newline() {
	w.trimSpaces()
	w.b = append(w.b, '\n')
	w.space = false
}

// block ends the current line and leaves n-1 blank lines, without piling
// them up and never before the first text or right after a list marker.
func (w *textWriter) block(n int) {
	w.space = false
	if len(w.b) == w.mark {
		return
	}
	w.trimSpaces()
	if len(strings.TrimSpace(string(w.b))) == 0 {
		w.b = w.b[:0]
		return
	}
	have := 0
	for i := len(w.b) - 1; i >= 0 && w.b[i] == '\n'; i-- {
		have++
	}
	for ; have < n; have++ {
		w.b = append(w.b, '\n')
	}
}

func (w *textWriter) trimSpaces() {
	for len(w.b) > 0 && w.b[len(w.b)-1] == ' ' && len(w.b) != w.mark {
		w.b = w.b[:len(w.b)-1]
	}
}

// finish returns the text with its footnotes.
func (w *textWriter) finish() string {
	out := strings.TrimSpace(string(w.b))
	// Lines of spaces left by layout tables are blank lines.
	lines := strings.Split(out, "\n")
	var b strings.Builder
	blank := 0
	for _, l := range lines {
		l = strings.TrimRight(l, " \t")
		if l == "" {
			blank++
			if blank > 1 {
				continue
			}
		} else {
			blank = 0
		}
		b.WriteString(l)
		b.WriteByte('\n')
	}
	if len(w.notes) > 0 {
		b.WriteString("\n")
		for i, u := range w.notes {
			b.WriteString("[" + strconv.Itoa(i+1) + "] " + u + "\n")
		}
	}
	return b.String()
}
