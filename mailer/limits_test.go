package mailer

import (
	"bytes"
	"errors"
	"runtime"
	"strings"
	"testing"
	ttemplate "text/template"
	"time"
)

// measure runs f and reports how long it took and how many bytes it
// allocated (TotalAlloc counts every allocation, freed or not, so a
// transient 150 MB string shows even if the collector ran).
func measure(f func()) (time.Duration, uint64) {
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	start := time.Now()
	f()
	took := time.Since(start)
	runtime.ReadMemStats(&after)
	return took, after.TotalAlloc - before.TotalAlloc
}

func items(n int) []any {
	l := make([]any, n)
	for i := range l {
		l[i] = float64(i)
	}
	return l
}

// The templates of the hardening report, and their relatives, are refused
// within 2 s and 50 MB, at save time (CheckTemplate) when the template
// alone says so, and at preview or send time (RenderPreview, the same
// bounded execution as the engine's) when the subscriber's data does; the
// error names the limit.
func TestTemplateLimits(t *testing.T) {
	big := strings.Repeat("x", 1500<<10)
	cases := []struct {
		name      string
		html      string // HTML body ("" for a text-only template)
		text      string
		attrs     map[string]any
		atSave    bool   // CheckTemplate refuses it already (sample data is small: it cannot see the others)
		wantInErr string // the limit named in the error
	}{
		{name: "loop over an integer", text: `{{range 50000000}}{{end}}`, atSave: true, wantInErr: "limit of 1000000 steps"},
		{name: "loop in HTML", html: `<p>{{range 50000000}}{{end}}</p>`, atSave: true, wantInErr: "limit of 1000000 steps"},
		{name: "nested loops", text: `{{range 10000}}{{range 10000}}{{end}}{{end}}`, atSave: true, wantInErr: "1000000 steps"},
		{name: "printf width (150 MB)", text: `{{range 5}}{{printf "%010000000d" 0}}{{end}}`, atSave: true, wantInErr: "printf width 10000000 is over the limit of 1000"},
		{name: "printf width in HTML", html: `<p>{{range 5}}{{printf "%010000000d" 0}}{{end}}</p>`, atSave: true, wantInErr: "over the limit of 1000"},
		{name: "printf precision", text: `{{printf "%.99999999f" 1.0}}`, atSave: true, wantInErr: "over the limit of 1000"},
		{name: "printf width from data", text: `{{printf .Subscriber.Attributes.f 0}}`, attrs: map[string]any{"f": "%010000000d"}, wantInErr: "over the limit of 1000"},
		{name: "printf star width", text: `{{printf "%0*d" (len .Subscriber.Attributes.s) 0}}`, attrs: map[string]any{"s": strings.Repeat("x", 5000)}, wantInErr: "printf width 5000 is over the limit of 1000"},
		{name: "loop over the subscriber's data", text: `{{range .Subscriber.Attributes.items}}{{range $.Subscriber.Attributes.items}}.{{end}}{{end}}`,
			attrs: map[string]any{"items": items(20000)}, wantInErr: "limit of 1000000 steps"},
		{name: "loop over a length from data", text: `{{range len .Subscriber.Attributes.s}}{{range len $.Subscriber.Attributes.s}}{{end}}{{end}}`,
			attrs: map[string]any{"s": strings.Repeat("x", 100000)}, wantInErr: "limit of 1000000 steps"},
		{name: "formatting that writes nothing", text: `{{range 900}}{{if eq (printf "%v" $.Subscriber.Attributes.items) ""}}{{end}}{{end}}`,
			attrs: map[string]any{"items": items(20000)}, wantInErr: "formats more than 4 MB per part"},
		{name: "output", text: `{{range 3000}}{{printf "%01000d" 0}}{{end}}`, atSave: true, wantInErr: "over the limit of 2 MB per part"},
		{name: "output of a straight template", text: `{{.Subscriber.Attributes.big}}{{.Subscriber.Attributes.big}}`, attrs: map[string]any{"big": big}, wantInErr: "over the limit of 2 MB per part"},
		{name: "recursion", text: `{{define "a"}}{{template "a"}}{{end}}{{template "a"}}`, atSave: true, wantInErr: "may not recurse"},
		{name: "doubling calls", text: `{{define "a"}}x{{end}}{{define "b"}}{{template "a"}}{{template "a"}}{{end}}{{define "c"}}{{template "b"}}{{template "b"}}{{end}}` +
			`{{define "d"}}{{template "c"}}{{template "c"}}{{end}}{{define "e"}}{{template "d"}}{{template "d"}}{{template "d"}}{{template "d"}}{{end}}` +
			`{{range 100000}}{{template "e"}}{{end}}`, atSave: true, wantInErr: "steps"},
		{name: "loop inside define", text: `{{define "a"}}{{range .}}{{end}}{{end}}{{template "a" .Subscriber.Attributes.items}}`, atSave: true, wantInErr: "inside {{define}}"},
		{name: "assigning $", text: `{{$ = 5}}{{range $}}{{end}}`, atSave: true, wantInErr: "$ cannot be assigned"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := CheckTemplate("s", c.html, c.text)
			if c.atSave && (err == nil || !errors.Is(err, ErrTemplateLimit)) {
				t.Fatalf("CheckTemplate() = %v, want a template limit error", err)
			}
			if !c.atSave && errors.Is(err, ErrTemplateLimit) {
				t.Fatalf("CheckTemplate() = %v, want no limit error (sample data is small)", err)
			}
			d := SampleData()
			d.Subscriber.Attributes = c.attrs
			took, alloc := measure(func() { _, err = RenderPreview("s", c.html, c.text, d) })
			t.Logf("refused in %v, %.1f MB allocated: %v", took, float64(alloc)/(1<<20), err)
			if err == nil || !errors.Is(err, ErrTemplateLimit) {
				t.Fatalf("RenderPreview() = %v, want a template limit error", err)
			}
			if !strings.Contains(err.Error(), c.wantInErr) {
				t.Errorf("RenderPreview() = %q, want it to name the limit (%q)", err, c.wantInErr)
			}
			if took > 2*time.Second {
				t.Errorf("refused after %v, want within 2s", took)
			}
			if alloc > 50<<20 {
				t.Errorf("allocated %d MB, want under 50 MB", alloc>>20)
			}
		})
	}
}

// Templates within the limits give what text/template gives without them:
// loops with declarations, else, break and nested loops, printf with small
// widths, template calls.
func TestBoundedMatchesLibrary(t *testing.T) {
	srcs := []string{
		`{{range $i, $v := .Subscriber.Attributes.items}}{{$i}}={{$v}};{{else}}none{{end}}`,
		`{{range .Subscriber.Attributes.missing}}x{{else}}none{{end}}`,
		`{{range 3}}{{range $.Subscriber.Attributes.items}}{{if eq . 2.0}}{{break}}{{end}}{{.}}{{end}}|{{end}}`,
		`{{range $k, $v := .Subscriber.Attributes}}{{$k}}{{end}}`,
		`{{printf "%05d|%-8s|%.2f|%*d" 42 "ab" 3.14159 4 7}}{{print 1 2 "a" 3}}{{println .Subscriber.Name 4}}{{.Subscriber.Email | printf "<%s>"}}`,
		`{{define "row"}}<{{.}}>{{end}}{{template "row" .Subscriber.Name}}{{template "row" .Org.Name}}`,
		`{{with .Subscriber.Attributes.items}}{{len .}}{{end}} {{range 0}}x{{end}}`,
	}
	d := SampleData()
	d.Subscriber.Attributes = map[string]any{"items": items(5), "city": "Paris"}
	for _, src := range srcs {
		lib := ttemplate.Must(ttemplate.New("t").Option("missingkey=zero").Parse(src))
		var want bytes.Buffer
		if err := lib.Execute(&want, &d); err != nil {
			t.Fatalf("library %q: %v", src, err)
		}
		p, err := RenderPreview("s", "", src, d)
		if err != nil {
			t.Fatalf("RenderPreview(%q) = %v", src, err)
		}
		if p.Text != want.String() {
			t.Errorf("RenderPreview(%q) = %q, want %q", src, p.Text, want.String())
		}
	}
}
