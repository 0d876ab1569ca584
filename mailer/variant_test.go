package mailer

import "testing"

func TestWithPreheader(t *testing.T) {
	const div = `<div style="display:none;max-height:0;overflow:hidden;mso-hide:all">Fish &amp; chips</div>`
	for _, c := range []struct{ src, want string }{
		{`<html><BODY class="x"><p>Hi</p></body></html>`, `<html><BODY class="x">` + div + `<p>Hi</p></body></html>`},
		{`<p>Hi</p>`, div + `<p>Hi</p>`},
	} {
		if got := withPreheader(c.src, "Fish & chips"); got != c.want {
			t.Errorf("withPreheader(%q) = %q, want %q", c.src, got, c.want)
		}
	}
}
