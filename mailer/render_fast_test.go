package mailer

import (
	"bytes"
	"math/rand/v2"
	"strings"
	"testing"
)

// straightHTMLCases are HTML templates with an action in every context a
// straight template handles.
var straightHTMLCases = []string{
	`<p>Hello {{.Subscriber.Name}}, {{.Subscriber.Attributes.city}} has {{.Subscriber.Attributes.points}} points ({{.Subscriber.Attributes.vip}})</p>`,
	`<p title="{{.Subscriber.Name}}" data-x='{{.Subscriber.Email}}'>{{.Org.Name}} · {{.Org.PostalAddress}}</p>`,
	`<a href="{{.UnsubscribeURL}}">u</a> <a href='{{.PreferencesURL}}'>p</a> <img src="{{.Subscriber.Attributes.avatar}}">`,
	`<a href="https://shop.example/{{.Subscriber.Attributes.city}}?who={{.Subscriber.Email}}&amp;n={{.Subscriber.Attributes.points}}#{{.Subscriber.Name}}">x</a>`,
	`<!doctype html><html><head><title>Digest</title><style>a{color:red}</style></head><body><h1>{{.Campaign.Subject}}</h1><!-- note -->{{.Data.order.id}} {{.Campaign.Name}}</body></html>`,
	`<!doctype html><html><head><title>{{.Campaign.Subject}} · {{.Subscriber.Name}}</title></head><body><textarea>{{.Subscriber.Attributes.city}}</textarea></body></html>`,
}

// notStraight are templates that must be executed by the library, as
// text and as HTML.
var notStraight = []string{
	`{{if .Subscriber.Name}}Hi {{.Subscriber.Name}}{{end}}`,
	`{{range $k, $v := .Subscriber.Attributes}}{{$k}}{{end}}`,
	`{{.Subscriber.Name | printf "%q"}}`,
	`{{.Subscriber.Attributes}}`,
	`{{.Subscriber.Nickname}}`,
	`{{template "x"}}{{define "x"}}y{{end}}`,
}

// notStraightHTML are HTML templates whose actions need escapers that
// straight templates do not have.
var notStraightHTML = []string{
	`<script>var n = {{.Subscriber.Name}};</script>`,
	`<style>p { color: {{.Subscriber.Attributes.color}} }</style>`,
	`<a href={{.UnsubscribeURL}}>unquoted</a>`,
	`<p onclick="f('{{.Subscriber.Name}}')">x</p>`,
}

// straightAlphabet mixes what each escaper treats specially with text it
// leaves alone, invalid UTF-8 included.
var straightAlphabet = []string{"a", "Z", "0", " ", "\t", "<", ">", "&", "'", "\"", "+", "\x00", "%", "%2F", "%zz", "/", "?", "#", "=",
	":", ";", "@", "!", "[", "~", "é", "日本", "\xff", "\u2028", "javascript:", "JavaScript:", "mailto:", "http://", "HTTPS://", "data:", "&amp;"}

func randomText(r *rand.Rand) string {
	var b strings.Builder
	for range r.IntN(8) {
		b.WriteString(straightAlphabet[r.IntN(len(straightAlphabet))])
	}
	return b.String()
}

func randomValue(r *rand.Rand) any {
	switch r.IntN(6) {
	case 0:
		return []float64{0, -3, 0.1, 1e6, 1e21, 123456789, 2.5e-7}[r.IntN(7)]
	case 1:
		return r.IntN(2) == 0
	default:
		return randomText(r)
	}
}

func randomData(r *rand.Rand) *TemplateData {
	attrs := map[string]any{}
	for _, k := range []string{"city", "points", "vip", "avatar", "color"} {
		attrs[k] = randomValue(r)
	}
	return &TemplateData{
		Subscriber:     SubscriberData{Email: randomText(r), Name: randomText(r), Attributes: attrs},
		UnsubscribeURL: randomText(r), PreferencesURL: randomText(r),
		Org:      OrgData{Name: randomText(r), PostalAddress: randomText(r)},
		Campaign: CampaignData{Name: randomText(r), Subject: randomText(r)},
		Data:     map[string]any{"order": map[string]any{"id": randomValue(r)}},
	}
}

func TestStraightMatchesTemplates(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var htmls []*htmlTemplate
	for _, src := range straightHTMLCases {
		h, err := parseHTML("h", src)
		if err != nil {
			t.Fatal(err)
		}
		if h.fast == nil {
			t.Fatalf("%q: no straight form", src)
		}
		htmls = append(htmls, h)
	}
	text, err := parseText("t", "Hi {{.Subscriber.Name}} <{{.Subscriber.Email}}> {{.Subscriber.Attributes.points}} {{.Subscriber.Attributes.vip}} & {{.UnsubscribeURL}}\n")
	if err != nil || text.fast == nil {
		t.Fatalf("text template: %v, straight %v", err, text != nil && text.fast != nil)
	}
	for i := range 3000 {
		d := randomData(r)
		for k, h := range htmls {
			var fast, lib bytes.Buffer
			if !h.fast.execute(&fast, d) {
				t.Fatalf("case %d: straight execution declined complete data", k)
			}
			if err := h.Execute(&lib, d); err != nil {
				t.Fatal(err)
			}
			if fast.String() != lib.String() {
				t.Fatalf("run %d, case %d:\nstraight %q\ntemplate %q\ndata %#v", i, k, fast.String(), lib.String(), d)
			}
		}
		var fast, lib bytes.Buffer
		if !text.fast.execute(&fast, d) {
			t.Fatal("text: straight execution declined complete data")
		}
		if err := text.Execute(&lib, d); err != nil {
			t.Fatal(err)
		}
		if fast.String() != lib.String() {
			t.Fatalf("text:\nstraight %q\ntemplate %q", fast.String(), lib.String())
		}
	}
}

func TestStraightLeavesOtherTemplatesToTheLibrary(t *testing.T) {
	for _, src := range append(notStraight, notStraightHTML...) {
		if h, err := parseHTML("h", src); err == nil && h.fast != nil {
			t.Errorf("HTML %q: has a straight form", src)
		}
	}
	for _, src := range notStraight {
		if x, err := parseText("t", src); err == nil && x.fast != nil {
			t.Errorf("text %q: has a straight form", src)
		}
	}
}

// A value straight execution does not handle (missing, null, a list)
// leaves the whole output to the template, with nothing written twice.
func TestStraightFallsBackPerRecipient(t *testing.T) {
	h, err := parseHTML("h", `<p>{{.Subscriber.Name}} in {{.Subscriber.Attributes.city}}</p>`)
	if err != nil || h.fast == nil {
		t.Fatalf("parseHTML: %v, straight %v", err, h != nil && h.fast != nil)
	}
	for _, city := range []any{nil, []any{"a"}, map[string]any{"x": 1.0}, "missing"} {
		attrs := map[string]any{"city": city}
		if city == "missing" {
			attrs = map[string]any{}
		}
		d := &TemplateData{Subscriber: SubscriberData{Name: "Ann", Attributes: attrs}}
		var want bytes.Buffer
		if err := h.Execute(&want, d); err != nil {
			t.Fatal(err)
		}
		got := bytes.NewBufferString("before|")
		if err := h.run(got, d); err != nil {
			t.Fatal(err)
		}
		if got.String() != "before|"+want.String() {
			t.Errorf("city %#v: got %q, want %q", city, got.String(), "before|"+want.String())
		}
	}
}
