package mailer

import (
	"bytes"
	"fmt"
	"strings"
)

// SampleData is what a template preview or check is executed with.
func SampleData() TemplateData {
	return TemplateData{
		Subscriber:     SubscriberData{Email: "ada@example.com", Name: "Ada Lovelace", Attributes: map[string]any{"city": "London"}},
		UnsubscribeURL: "https://herald.example/u/sample",
		PreferencesURL: "https://herald.example/p/sample",
		Org:            OrgData{Name: "Example Ltd", PostalAddress: "1 Example Street, London"},
		Campaign:       CampaignData{Name: "Sample", Subject: "Sample subject"},
		Data:           map[string]any{},
	}
}

// CheckTemplate parses a template and executes it once with sample data, so
// syntax errors and unknown fields (with their line numbers) are reported
// when the template is saved, never when a campaign sends it. It compiles
// as a campaign does, with tracked links and the pixel.
func CheckTemplate(subject, html, text string) error {
	_, err := renderTemplate(subject, html, text, compileOptions{TrackClicks: true, TrackOpens: true}, SampleData())
	return err
}

// Preview is a template executed for one recipient, as it will read (links
// are not rewritten for tracking and no pixel is added).
type Preview struct {
	Subject string
	HTML    string // "" for a text-only template
	Text    string // the text part, derived from the HTML when the template has none
}

// RenderPreview executes a template with d. Errors carry the part and the
// line number, like CheckTemplate's.
func RenderPreview(subject, html, text string, d TemplateData) (*Preview, error) {
	return renderTemplate(subject, html, text, compileOptions{}, d)
}

// renderTemplate compiles a template with o and executes it with d.
func renderTemplate(subject, html, text string, o compileOptions, d TemplateData) (*Preview, error) {
	c, err := compileTemplate("template", subject, html, text, o)
	if err != nil {
		return nil, err
	}
	// The same bounded execution as sending (run): a preview or a check
	// must not be the way to pin the server either.
	var b bytes.Buffer
	if err := c.subject.run(&b, &d); err != nil {
		return nil, fmt.Errorf("subject: %w", err)
	}
	p := &Preview{Subject: strings.Join(strings.Fields(b.String()), " ")}
	d.Campaign.Subject = p.Subject
	if c.html != nil {
		b.Reset()
		if err := c.html.run(&b, &d); err != nil {
			return nil, fmt.Errorf("HTML body: %w", err)
		}
		p.HTML = b.String()
	}
	b.Reset()
	if err := c.text.run(&b, &d); err != nil {
		return nil, fmt.Errorf("text body: %w", err)
	}
	p.Text = b.String()
	return p, nil
}
