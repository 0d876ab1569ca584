package mailer

import (
	"bytes"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/yuin/goldmark"
	"github.com/yuin/goldmark/extension"

	"github.com/herald-mail/herald/mailer/defaults"
	"github.com/herald-mail/herald/models"
)

// Content is what a campaign sends: its subject, preheader, body and text
// part. The engine builds one per campaign (ContentOf) and compiles it once;
// an A/B variant is a copy with some fields replaced.
type Content struct {
	Subject   string // text/template
	Preheader string // preview text, hidden at the top of the HTML part; "" for none
	// Body is HTML (html/template), or Markdown when Format is
	// models.FormatMarkdown, rendered into defaults.LayoutHTML.
	Body   string
	Text   string // text part (text/template); "" derives it from the HTML
	Format string // models.FormatHTML ("" reads as it) or models.FormatMarkdown
}

// ContentOf is a campaign's own content.
func ContentOf(c *models.Campaign) Content {
	return Content{Subject: c.Subject, Preheader: c.Preheader, Body: c.HTML, Text: c.Text, Format: c.Format}
}

// TextDerived reports whether the text part is derived from the HTML (no
// text part written) rather than the marketer's own.
func (c Content) TextDerived() bool {
	return strings.TrimSpace(c.Text) == "" && strings.TrimSpace(c.Body) != ""
}

// HTMLSource is the HTML template the body stands for: the body itself, or
// the Markdown rendered into the layout.
func (c Content) HTMLSource() (string, error) {
	if c.Format != models.FormatMarkdown {
		return c.Body, nil
	}
	if strings.TrimSpace(c.Body) == "" {
		return "", nil
	}
	body, err := markdownHTML(c.Body)
	if err != nil {
		return "", err
	}
	return strings.Replace(defaults.LayoutHTML, defaults.ContentSlot, body, 1), nil
}

// markdown is GitHub-flavoured Markdown without raw HTML: goldmark's
// default renderer leaves raw HTML out and drops dangerous link targets
// (javascript:), so a Markdown body cannot bring its own markup.
var markdown = goldmark.New(goldmark.WithExtensions(extension.GFM))

// actionRE is a template action ({{.Subscriber.Name}}, {{if …}}).
var actionRE = regexp.MustCompile(`\{\{.*?\}\}`)

// markdownHTML renders Markdown to HTML with its template actions kept:
// each is swapped for a plain token first (Markdown would read the "_" of
// {{.Subscriber.Attributes.first_name}} as emphasis and escape the braces
// in link targets) and put back after. html/template then escapes each
// action's value for where it stands, as in an HTML body.
func markdownHTML(src string) (string, error) {
	var actions []string
	src = actionRE.ReplaceAllStringFunc(src, func(a string) string {
		actions = append(actions, a)
		return "heraldaction" + strconv.Itoa(len(actions)-1) + "x"
	})
	var b bytes.Buffer
	if err := markdown.Convert([]byte(src), &b); err != nil {
		return "", fmt.Errorf("markdown: %w", err)
	}
	out := b.String()
	for i := len(actions) - 1; i >= 0; i-- { // 10 before 1
		out = strings.ReplaceAll(out, "heraldaction"+strconv.Itoa(i)+"x", actions[i])
	}
	return out, nil
}

// preheaderBlock is the hidden preview text: inbox lists show the first
// text of a message after its subject, and the padding after it keeps
// them from running on into the body.
func preheaderBlock(text string) string {
	text = strings.Join(strings.Fields(text), " ")
	if text == "" {
		return ""
	}
	esc := strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&#34;", "'", "&#39;").Replace(text)
	return `<div style="display:none;font-size:1px;line-height:1px;max-height:0;max-width:0;opacity:0;overflow:hidden;mso-hide:all;">` +
		esc + strings.Repeat("&#847;&zwnj;&nbsp;", 30) + "</div>"
}

var bodyOpenRE = regexp.MustCompile(`(?i)<body[^>]*>`)

// withPreheader puts the preheader block first in the body.
func withPreheader(src, preheader string) string {
	block := preheaderBlock(preheader)
	if block == "" {
		return src
	}
	if loc := bodyOpenRE.FindStringIndex(src); loc != nil {
		return src[:loc[1]] + block + src[loc[1]:]
	}
	return block + src
}

// compileContent compiles a campaign's content once: Markdown rendered,
// links rewritten for tracking, text part derived when not written,
// preheader and pixel added.
func compileContent(name string, c Content, o compileOptions) (*compiled, error) {
	src, err := c.HTMLSource()
	if err != nil {
		return nil, fmt.Errorf("body: %w", err)
	}
	o.Preheader = c.Preheader
	return compileTemplate(name, c.Subject, src, c.Text, o)
}

// CheckContent compiles a campaign's content as the engine does and
// executes it once with sample data, so a mistake is reported (with its
// part and line) when the campaign is saved.
func CheckContent(c Content) error {
	_, err := RenderContent(c, SampleData(), true)
	return err
}

// RenderContent executes a campaign's content with d: a preview, or the
// checklist's probe. With tracked, links and pixel are prepared as for
// sending (the URLs stay placeholders).
func RenderContent(c Content, d TemplateData, tracked bool) (*Preview, error) {
	src, err := c.HTMLSource()
	if err != nil {
		return nil, fmt.Errorf("body: %w", err)
	}
	return renderTemplate(c.Subject, src, c.Text, compileOptions{TrackClicks: tracked, TrackOpens: tracked, Preheader: c.Preheader}, d)
}
