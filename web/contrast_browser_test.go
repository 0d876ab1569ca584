package web

import (
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/herald-mail/herald/internal/browsertest"
)

// contrastJS lists the text on the page whose contrast with what is behind
// it is under WCAG AA (4.5:1, or 3:1 for large text), from the browser's
// computed colours: each element with its own visible text, its colour
// (with opacity) over the first opaque background among its ancestors.
const contrastJS = `(() => {
  const parse = c => { const m = c.match(/rgba?\(([^)]+)\)/); if (!m) return null;
    const p = m[1].split(/[ ,\/]+/).filter(Boolean).map(Number); return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1]; };
  const lum = ([r, g, b]) => { const f = v => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b); };
  const over = (fg, bg) => [0, 1, 2].map(i => fg[i] * fg[3] + bg[i] * (1 - fg[3])).concat(1);
  const background = el => { const layers = [];
    for (let e = el; e; e = e.parentElement) { const c = parse(getComputedStyle(e).backgroundColor);
      if (c && c[3] > 0) { layers.push(c); if (c[3] >= 1) break; } }
    let bg = [255, 255, 255, 1]; for (let i = layers.length - 1; i >= 0; i--) bg = over(layers[i], bg); return bg; };
  const out = [];
  for (const el of document.querySelectorAll("body *")) {
    if (![...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim())) continue;
    const cs = getComputedStyle(el), r = el.getBoundingClientRect();
    if (cs.visibility !== "visible" || cs.display === "none" || r.width === 0 || r.height === 0) continue;
    if (el.closest("[disabled],[aria-hidden=true],svg,option")) continue;
    let op = 1; for (let e = el; e; e = e.parentElement) op *= Number(getComputedStyle(e).opacity);
    const bg = background(el), fg0 = parse(cs.color); fg0[3] *= op;
    const fg = over(fg0, bg), a = lum(fg), b = lum(bg), ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    const size = parseFloat(cs.fontSize), bold = Number(cs.fontWeight) >= 700;
    const need = size >= 24 || (bold && size >= 18.66) ? 3 : 4.5;
    if (ratio < need) out.push(ratio.toFixed(2) + ":1 " + el.tagName.toLowerCase() + (el.className && typeof el.className === "string" ? "." + el.className.trim().replace(/\s+/g, ".") : "") +
      " " + JSON.stringify(el.textContent.trim().slice(0, 40)) + " " + cs.color + " on rgb(" + bg.slice(0, 3).map(Math.round).join(",") + ")");
  }
  return out;
})()`

// TestContrastEveryPage opens every dashboard page the crawl reaches, at
// desktop width and with the phone menu open, and fails on any text whose
// computed contrast is under WCAG AA.
func TestContrastEveryPage(t *testing.T) {
	ctx := browsertest.New(t, 4*time.Minute)
	app := newTestApp(t, nil)
	seedEverything(t, app.store)
	c := app.user("admin")
	pages := crawl(t, c)
	base := app.http.URL
	// The browser signs in with the same account.
	step, _ := browsertest.Steps(t, ctx, browsertest.ShotDir())
	step("sign in",
		chromedp.Navigate(base+"/login"),
		chromedp.SendKeys(chromedp.CSS(`input[name="email"]`), "admin@example.com"),
		chromedp.SendKeys(chromedp.CSS(`input[name="password"]`), "correct horse battery"),
		chromedp.Click(chromedp.CSS(`button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`.mainnav`)),
	)
	failures := map[string][]string{}
	check := func(name string) {
		bad, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](contrastJS))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(bad) > 0 {
			failures[name] = bad
		}
	}
	for _, p := range pages {
		step("open "+p, chromedp.Navigate(base+p), chromedp.WaitReady(chromedp.CSS("body")))
		check(p)
	}
	step("phone menu", chromedp.EmulateViewport(390, 844), chromedp.Navigate(base+"/"),
		chromedp.Click(chromedp.CSS(`.navtoggle summary`)), chromedp.WaitVisible(chromedp.CSS(`.mainnav`)))
	check("/ (390 px, menu open)")
	if len(failures) > 0 {
		var keys []string
		for k := range failures {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var b strings.Builder
		for _, k := range keys {
			b.WriteString("\n" + k + ":\n  " + strings.Join(failures[k], "\n  "))
		}
		t.Errorf("text under 4.5:1 (3:1 large) on %d of %d pages:%s", len(failures), len(pages)+1, b.String())
	}
	t.Logf("checked %d pages", len(pages)+1)
}
