package mailer

import (
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/herald-mail/herald/internal/token"

	"github.com/herald-mail/herald/mailer/defaults"
	"github.com/herald-mail/herald/models"
)

func TestHTMLToText(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"paragraphs", `<p>One  two
			three.</p><p>Four.</p>`, "One two three.\n\nFour.\n"},
		{"headings", `<h1>Big news</h1><p>Body.</p><h2>Part two</h2><p>More.</p><h3>Small</h3><p>End.</p>`,
			"Big news\n========\n\nBody.\n\nPart two\n--------\n\nMore.\n\nSmall\n\nEnd.\n"},
		{"unordered list", `<p>Items:</p><ul><li>apples</li><li>pears <b>ripe</b></li></ul><p>After.</p>`,
			"Items:\n\n- apples\n- pears ripe\n\nAfter.\n"},
		{"ordered list", `<ol><li>first</li><li><p>second</p></li><li>third</li></ol>`, "1. first\n2. second\n3. third\n"},
		{"ordered list start", `<ol start="4"><li>four</li><li>five</li></ol>`, "4. four\n5. five\n"},
		{"nested lists", `<ul><li>a<ul><li>a1</li><li>a2</li></ul></li><li>b</li></ul>`, "- a\n  - a1\n  - a2\n- b\n"},
		{"link footnotes", `<p>Read <a href="https://example.com/a">the story</a> and <a href="https://example.com/b">more</a>, or <a href="https://example.com/a">again</a>.</p>`,
			"Read the story [1] and more [2], or again [1].\n\n[1] https://example.com/a\n[2] https://example.com/b\n"},
		{"link whose text is its address", `<p><a href="https://example.com/">example.com</a> and <a href="mailto:a@example.com">a@example.com</a></p>`,
			"example.com and a@example.com\n"},
		{"anchors and script links left alone", `<p><a href="#top">Top</a> <a href="javascript:x()">x</a></p>`, "Top x\n"},
		{"template actions pass through", `<p>Hello {{.Subscriber.Name}}, <a href="{{.UnsubscribeURL}}">unsubscribe</a></p>`,
			"Hello {{.Subscriber.Name}}, unsubscribe [1]\n\n[1] {{.UnsubscribeURL}}\n"},
		{"entities decoded", `<p>Fish &amp; chips &lt;3 &eacute;t&eacute; &#8212; caf&#xe9;&nbsp;now</p>`, "Fish & chips <3 été — café now\n"},
		{"script style head and hidden left out", `<html><head><title>T</title><style>p{color:red}</style></head><body><script>alert(1)</script>` +
			`<div style="display: none">preview <span>text</span></div><p>Seen.</p><img src="x" style="display:none"></body></html>`, "Seen.\n"},
		{"nested tags", `<div><div><p>A <em>very <strong>nested</strong></em>word.</p></div></div><div>B</div>`, "A very nestedword.\n\nB\n"},
		{"inline without spaces", `<p><b>W</b>orld and <i>it</i>, too</p>`, "World and it, too\n"},
		{"line breaks", `<p>One<br>Two<br/>Three</p>`, "One\nTwo\nThree\n"},
		{"table rows and cells", `<table><tr><th>Name</th><th>Price</th></tr><tr><td>Tea</td><td>2 €</td></tr></table>`, "Name Price\nTea 2 €\n"},
		{"image link uses alt", `<a href="https://example.com/shop"><img src="b.png" alt="Shop now"></a>`, "Shop now [1]\n\n[1] https://example.com/shop\n"},
		{"pre keeps spacing", "<pre>a  b\n  c</pre><p>d</p>", "a  b\n  c\n\nd\n"},
		{"rule", `<p>a</p><hr><p>b</p>`, "a\n\n----------\n\nb\n"},
		{"braces as entities stay text", `<p>Use &#123;&#123;name&#125;&#125; here</p>`, "Use {{\"{\"}}{{\"{\"}}name{{\"}\"}}{{\"}\"}} here\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := htmlToText(tt.in); got != tt.want {
				t.Errorf("htmlToText(%q) =\n%q\nwant\n%q", tt.in, got, tt.want)
			}
		})
	}
}

// The default template's derived text part holds its words and links, and
// its footer's links as footnotes that become the recipient's URLs.
func TestDefaultTemplateDerivedText(t *testing.T) {
	p, err := RenderContent(Content{Subject: defaults.NewsletterSubject, Body: defaults.NewsletterHTML}, SampleData(), false)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Example Ltd\n", "Hello Ada Lovelace,\n==", "Read more [1]", "Thank you for reading.",
		"Unsubscribe [2] · Manage your preferences [3]", "[1] https://example.com/\n",
		"[2] https://herald.example/u/sample\n", "[3] https://herald.example/p/sample\n", "1 Example Street, London"} {
		if !strings.Contains(p.Text, want) {
			t.Errorf("text part lacks %q:\n%s", want, p.Text)
		}
	}
	if strings.Contains(p.Text, "{{") || strings.Contains(p.Text, "<") || strings.Contains(p.Text, "color:") {
		t.Errorf("text part has markup:\n%s", p.Text)
	}
}

// Tracked links in the text part are the same tracked URLs as in the HTML.
func TestDerivedTextTracksLikeHTML(t *testing.T) {
	env := &renderEnv{root: "https://h.example.com", keys: token.NewKeyring("text key"), feedbackID: "herald"}
	comp, err := compileContent("c", Content{Subject: "S", Body: `<p>Go <a href="https://example.com/x">there</a>.</p>`},
		compileOptions{TrackClicks: true})
	if err != nil {
		t.Fatal(err)
	}
	comp.linkIDs = []int64{9}
	p := &msgParams{campaignID: 7, sender: mustSender(t, "", "news@example.com", ""), domain: "example.com", returnPath: "example.com", listHeaders: true}
	m, err := env.render(comp, p, &recipient{deliveryID: 5, subscriberID: 1, listID: 1, email: "a@example.org"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	defer m.release()
	msg := m.buf.String()
	i := strings.Index(msg, "[1] https://h.example.com/t/c/")
	if i < 0 {
		t.Fatalf("text part has no tracked footnote:\n%s", msg)
	}
	url := strings.Fields(msg[i+4:])[0]
	if !strings.Contains(msg, `href="`+url+`"`) {
		t.Errorf("footnote URL %s is not the HTML's link:\n%s", url, msg)
	}
	if strings.Contains(msg, "example.com/x") {
		t.Errorf("untracked target leaked:\n%s", msg)
	}
}

func TestMarkdownContent(t *testing.T) {
	c := Content{Subject: "Hi", Preheader: "Spring is here & so are we", Format: models.FormatMarkdown,
		Body: "# Hello {{.Subscriber.Attributes.first_name}}\n\nSome *news* with [a link](https://example.com/n) and <script>alert(1)</script>.\n\n" +
			"- one\n- two\n\n[x](javascript:alert(1)) [Unsubscribe]({{.UnsubscribeURL}})\n"}
	d := SampleData()
	d.Subscriber.Attributes = map[string]any{"first_name": "<Ada>"}
	p, err := RenderContent(c, d, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"<h1>Hello &lt;Ada&gt;</h1>", "<em>news</em>", `<a href="https://example.com/n">a link</a>`,
		`<a href="https://herald.example/u/sample">Unsubscribe</a>`, "<li>one</li>",
		"Spring is here &amp; so are we", // preheader, escaped
		"1 Example Street, London"} {     // the layout's footer
		if !strings.Contains(p.HTML, want) {
			t.Errorf("HTML lacks %q", want)
		}
	}
	if strings.Contains(p.HTML, "<script>") || strings.Contains(p.HTML, "javascript:") {
		t.Errorf("unsafe markup kept:\n%s", p.HTML)
	}
	if i, j := strings.Index(p.HTML, "Spring is here"), strings.Index(p.HTML, "<h1>"); i < 0 || i > j || !strings.Contains(p.HTML[:i], "display:none") {
		t.Errorf("preheader not hidden at the top")
	}
	for _, want := range []string{"Hello <Ada>\n=", "Some news with a link [1]", "- one\n- two", "[1] https://example.com/n"} {
		if !strings.Contains(p.Text, want) {
			t.Errorf("text lacks %q:\n%s", want, p.Text)
		}
	}
	if strings.Contains(p.Text, "Spring is here") {
		t.Errorf("preheader in the text part:\n%s", p.Text)
	}
}

// Braces the HTML shows as text are text in the derived part too, never a
// template action.
func TestDerivedTextKeepsEntityBracesText(t *testing.T) {
	p, err := RenderContent(Content{Subject: "S", Body: `<p>Type &#123;&#123;.Subscriber.Email&#125;&#125; to merge.</p>`}, SampleData(), false)
	if err != nil {
		t.Fatal(err)
	}
	if want := "Type {{.Subscriber.Email}} to merge.\n"; p.Text != want {
		t.Errorf("text = %q, want %q", p.Text, want)
	}
}

// Over random documents made of tags, entities, template actions and
// text, the derived text part of an HTML body that compiles compiles too,
// holds no markup of the document's tags, and lists each footnote once.
func TestDerivedTextAlwaysCompiles(t *testing.T) {
	frags := []string{"<p>", "</p>", "<h1>", "</h1>", "<h2>", "</h2>", "<ul>", "</ul>", "<ol>", "</ol>", "<li>", "</li>", "<br>",
		"<table><tr><td>", "</td><td>", "</td></tr></table>", `<a href="https://example.com/a">`, `<a href="{{.UnsubscribeURL}}">`, "</a>",
		"<b>", "</b>", "<pre>", "</pre>", "<script>x<y</script>", "<style>p{}</style>", `<div style="display:none">`, "</div>",
		"{{.Subscriber.Name}}", "{{if .Subscriber.Name}}", "{{end}}", "&amp;", "&#123;&#123;", "&#125;&#125;", "&lt;b&gt;", "text", " ", "\n",
		"é", "<img alt=\"pic\">", "<hr>", "{", "}"}
	r := rand.New(rand.NewPCG(3, 4))
	for i := range 3000 {
		var b strings.Builder
		open := 0
		for range r.IntN(30) {
			f := frags[r.IntN(len(frags))]
			switch {
			case f == "{{if .Subscriber.Name}}":
				open++
			case f == "{{end}}" && open == 0:
				continue
			case f == "{{end}}":
				open--
			}
			b.WriteString(f)
		}
		for ; open > 0; open-- {
			b.WriteString("{{end}}")
		}
		src := b.String()
		if _, err := parseHTML("h", src); err != nil {
			continue
		}
		text := htmlToText(src)
		if _, err := parseText("t", text); err != nil {
			t.Fatalf("%d: derived text of %q does not compile: %v\n%s", i, src, err, text)
		}
		for _, tag := range []string{"<p>", "<li>", "<td>", "<script", "<style", "display:none"} {
			if strings.Contains(text, tag) {
				t.Fatalf("%d: derived text of %q holds %s:\n%s", i, src, tag, text)
			}
		}
		if strings.Count(text, "] https://example.com/a\n") > 1 {
			t.Fatalf("%d: a footnote listed twice:\n%s", i, text)
		}
	}
}
