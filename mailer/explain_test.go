package mailer

import (
	"strings"
	"testing"
)

// TestExplainTemplateError checks that Go's wording never reaches the
// marketer: each mistake is named in plain words, under the right field,
// with the line and a pointer under the place.
func TestExplainTemplateError(t *testing.T) {
	for _, tc := range []struct {
		name, subject, html, text string
		field, want, pointer      string
		line                      int
	}{
		{"misspelt field", "Hi", "<p>Hello</p>\n<p>Dear {{.Subscriber.Nmae}},</p>", "", "html",
			"no field “Nmae” in .Subscriber. Its fields are Email, Name, Attributes. Did you mean {{.Subscriber.Name}}?", "2 | <p>Dear {{.Subscriber.Nmae}},</p>\n              ^", 2},
		{"unclosed if", "Hi", "<p>\n{{if .Subscriber.Name}}Hi\n</p>", "", "html", "never closed. Add {{end}}", "", 3},
		{"misspelt field in the text", "Hi", "<p>x</p>", "Hi\n{{.Org.Nam}}", "text", "Did you mean {{.Org.Name}}?", "2 | {{.Org.Nam}}\n      ^", 2},
		{"subject", "Hi {{.Subscriber.Name", "<p>x</p>", "", "subject", "Line 1:", "", 1},
		{"unknown function", "Hi", "<p>{{upper .Subscriber.Name}}</p>", "", "html", "no function “upper”", "", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckTemplate(tc.subject, tc.html, tc.text)
			if err == nil {
				t.Fatal("the template was accepted")
			}
			p := ExplainTemplateError(err, tc.subject, tc.html, tc.text)
			if p.Field != tc.field || p.Line != tc.line || !strings.Contains(p.Message, tc.want) {
				t.Errorf("got field %q line %d %q; want field %q line %d, a message containing %q (from %v)", p.Field, p.Line, p.Message, tc.field, tc.line, tc.want, err)
			}
			if tc.pointer != "" && p.Pointer != tc.pointer {
				t.Errorf("pointer =\n%s\nwant\n%s", p.Pointer, tc.pointer)
			}
			for _, goWords := range []string{"can't evaluate", "mailer.", "template.html", "executing"} {
				if strings.Contains(p.Message, goWords) {
					t.Errorf("the message keeps Go's wording %q: %s", goWords, p.Message)
				}
			}
		})
	}
}
