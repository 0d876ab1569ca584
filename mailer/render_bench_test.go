package mailer

import (
	"crypto/rand"
	"crypto/rsa"
	"testing"
	"time"

	"github.com/herald-mail/herald/internal/token"
	"github.com/herald-mail/herald/mailer/defaults"
	"github.com/herald-mail/herald/models"
)

const benchHTML = `<!doctype html><html><head><title>News</title></head><body>
<h1>Hello {{.Subscriber.Name}}</h1>
<p>News for {{.Subscriber.Attributes.city}} from {{.Org.Name}}.</p>
<p><a href="https://example.com/one">One</a> and <a href="https://example.com/two?a=1&amp;b=2">Two</a>.</p>
<p><a href="{{.UnsubscribeURL}}">Unsubscribe</a> · <a href="{{.PreferencesURL}}">Preferences</a> · {{.Org.PostalAddress}}</p>
</body></html>`

// benchRender renders one campaign message per iteration for a recipient
// named name with the subject subject: the renderer's hot path. The
// content is compiled as the engine compiles a campaign's (compileContent),
// text part derived, once.
func benchRender(b *testing.B, subject, name string) {
	benchContent(b, Content{Subject: subject, Body: benchHTML}, name)
}

func benchContent(b *testing.B, ct Content, name string) {
	env := &renderEnv{root: "https://h.example.com", org: OrgData{Name: "Example", PostalAddress: "1 Main St"},
		keys: token.NewKeyring("bench key"), feedbackID: "herald"}
	comp, err := compileContent("bench", ct, compileOptions{TrackClicks: true, TrackOpens: true})
	if err != nil {
		b.Fatal(err)
	}
	comp.linkIDs = []int64{1, 2}
	p := &msgParams{campaignID: 7, campaignName: "Spring", sender: mustSender(b, "Example News", "news@example.com", "support@example.com"), domain: "example.com", returnPath: "bounces.example.com", listHeaders: true}
	rc := &recipient{deliveryID: 1, subscriberID: 1, listID: 3, email: "someone@example.org", name: name,
		attributes: map[string]any{"city": "Lyon"}}
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		rc.deliveryID++
		m, err := env.render(comp, p, rc, now)
		if err != nil {
			b.Fatal(err)
		}
		m.release()
	}
}

func mustSender(t testing.TB, name, from, replyTo string) sender {
	t.Helper()
	s, err := newSender(name, from, replyTo)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// BenchmarkRender is the common case: a short ASCII subject and name.
func BenchmarkRender(b *testing.B) {
	benchRender(b, "News for {{.Subscriber.Name}}", "Ann Smith")
}

// BenchmarkRenderMarkdown is a Markdown body with a preheader, in the
// standard layout: rendered to HTML once, so per message it costs what an
// HTML body of the same size does.
func BenchmarkRenderMarkdown(b *testing.B) {
	benchContent(b, Content{Subject: "News for {{.Subscriber.Name}}", Preheader: "This week in {{.Subscriber.Attributes.city}}", Format: models.FormatMarkdown,
		Body: "# Hello {{.Subscriber.Name}}\n\nNews for {{.Subscriber.Attributes.city}} from {{.Org.Name}}.\n\n" +
			"[One](https://example.com/one) and [Two](https://example.com/two?a=1&b=2).\n"}, "Ann Smith")
}

// BenchmarkRenderLongUnicode has a long accented subject and a CJK name,
// both of which need encoded words and folding.
func BenchmarkRenderLongUnicode(b *testing.B) {
	benchRender(b, "Les nouveautés de l’été à Besançon, pour {{.Subscriber.Name}} : soldes, événements et où déjeuner près de la rivière", "山田 太郎")
}

// BenchmarkSignHeaders is the DKIM signature (RSA-2048) of a rendered
// message, whose header list is built per message.
func BenchmarkSignHeaders(b *testing.B) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		b.Fatal(err)
	}
	s := newDKIMSigner(&models.DKIMKeys{Domain: "example.com", Selector: "s1", RSA: key})
	env := &renderEnv{root: "https://h.example.com", keys: token.NewKeyring("bench key"), feedbackID: "herald"}
	comp, err := compileTemplate("bench", "Hello", benchHTML, "", compileOptions{})
	if err != nil {
		b.Fatal(err)
	}
	p := &msgParams{campaignID: 7, sender: mustSender(b, "", "news@example.com", ""), domain: "example.com", returnPath: "example.com", listHeaders: true}
	m, err := env.render(comp, p, &recipient{deliveryID: 1, subscriberID: 1, listID: 1, email: "a@example.org"}, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	msg := m.buf.Bytes()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.sign(msg); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRenderDefaultTemplate is a campaign started from the default
// template: its text part derived from the HTML (footnotes), its <title>
// holding the subject.
func BenchmarkRenderDefaultTemplate(b *testing.B) {
	benchContent(b, Content{Subject: defaults.NewsletterSubject, Body: defaults.NewsletterHTML}, "Ann Smith")
}
