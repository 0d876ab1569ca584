package mailer

import (
	"strings"
	"testing"

	"github.com/herald-mail/herald/models"
)

// TestVariantContent: a variant is the campaign's own content with the
// variant's fields over it; its preheader goes first in the body (after
// <body>), hidden, and not into the text part; its HTML replaces a
// Markdown body and brings a text part derived from it.
func TestVariantContent(t *testing.T) {
	c := &models.Campaign{Subject: "Campaign subject", Preheader: "Campaign preheader", Format: models.FormatMarkdown,
		HTML: "# Spring\n\nRead [the news](https://example.com/news).", Text: "The campaign's own text"}

	// A: only the subject changes; body, text part and preheader stay the campaign's.
	a, err := RenderContent(VariantContent(c, models.Variant{Idx: 1, Subject: "Subject A"}), SampleData(), false)
	if err != nil {
		t.Fatal(err)
	}
	if a.Subject != "Subject A" || !strings.Contains(a.HTML, "<h1") || !strings.Contains(a.HTML, "Campaign preheader") ||
		a.Text != "The campaign's own text" {
		t.Errorf("variant A = %+v", a)
	}

	// B: its own preheader and HTML.
	b, err := RenderContent(VariantContent(c, models.Variant{Idx: 2, Preheader: "Fish & chips",
		HTML: `<html><BODY class="x"><p>Hi from B, see <a href="https://example.com/b">B's page</a></p></body></html>`}), SampleData(), false)
	if err != nil {
		t.Fatal(err)
	}
	if b.Subject != "Campaign subject" {
		t.Errorf("variant B subject = %q, want the campaign's", b.Subject)
	}
	i := strings.Index(b.HTML, `<BODY class="x"><div style="display:none`)
	if i < 0 || !strings.Contains(b.HTML[i:], "Fish &amp; chips") || strings.Index(b.HTML, "Fish &amp; chips") > strings.Index(b.HTML, "Hi from B") {
		t.Errorf("variant B's preheader not hidden first in the body:\n%s", b.HTML)
	}
	if strings.Contains(b.HTML, "Campaign preheader") || strings.Contains(b.HTML, "<h1") {
		t.Errorf("variant B carries the campaign's preheader or body:\n%s", b.HTML)
	}
	if !strings.Contains(b.Text, "Hi from B") || !strings.Contains(b.Text, "https://example.com/b") ||
		strings.Contains(b.Text, "Fish") || strings.Contains(b.Text, "own text") {
		t.Errorf("variant B's text part = %q, want it derived from B's HTML without the preheader", b.Text)
	}
}
