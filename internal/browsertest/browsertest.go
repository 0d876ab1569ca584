// Package browsertest starts a real headless Chromium for journey tests.
// Tests skip when no browser is installed, unless HERALD_REQUIRE_BROWSER is
// set (as in CI), where a missing browser fails them.
package browsertest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Chromium returns the path of the browser, or "".
func Chromium() string {
	for _, p := range []string{os.Getenv("HERALD_CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if p != "" {
			if _, err := os.Stat(p); err == nil {
				return p
			}
		}
	}
	if p, err := exec.LookPath("chromium"); err == nil {
		return p
	}
	return ""
}

// New starts a headless browser for the test and returns its context, with
// a deadline of timeout. The browser is closed when the test ends.
func New(t *testing.T, timeout time.Duration) context.Context {
	t.Helper()
	if testing.Short() {
		t.Skip("browser journey skipped in -short mode")
	}
	bin := Chromium()
	if bin == "" {
		if os.Getenv("HERALD_REQUIRE_BROWSER") != "" {
			t.Fatal("HERALD_REQUIRE_BROWSER is set but chromium is not installed (apt-get install chromium)")
		}
		t.Skip("chromium not installed")
	}
	opts := append([]chromedp.ExecAllocatorOption{},
		chromedp.ExecPath(bin),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1280, 900),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, timeout)
	t.Cleanup(func() {
		cancelTimeout()
		cancelCtx()
		cancelAlloc()
	})
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// Screenshot saves a full-page PNG into dir (created if needed) and logs
// where it is, so a person can look at it.
func Screenshot(t *testing.T, ctx context.Context, dir, name string) {
	t.Helper()
	buf, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Errorf("screenshot %s: %v", name, err)
		return
	}
	os.MkdirAll(dir, 0o755)
	p := filepath.Join(dir, name+".png")
	if err := os.WriteFile(p, buf, 0o644); err != nil {
		t.Errorf("write screenshot: %v", err)
		return
	}
	t.Logf("screenshot: %s", p)
}

// Steps returns the two helpers every journey uses: step runs named
// actions and, when they fail, keeps a screenshot in shots and stops the
// test; text reads the text of the element sel matches, trimmed.
func Steps(t *testing.T, ctx context.Context, shots string) (step func(name string, actions ...chromedp.Action[chromedp.Void]), text func(sel string) string) {
	step = func(name string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, actions...); err != nil {
			Screenshot(t, ctx, shots, "failed-"+strings.ReplaceAll(name, " ", "-"))
			t.Fatalf("%s: %v", name, err)
		}
	}
	text = func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("read %s: %v", sel, err)
		}
		return strings.TrimSpace(s)
	}
	return step, text
}

// ShotDir is where journeys keep screenshots of the pages they change, for
// a person to look at: $HERALD_SCREENSHOTS, or testdata/screenshots in the
// package under test (ignored by git).
func ShotDir() string {
	if d := os.Getenv("HERALD_SCREENSHOTS"); d != "" {
		return d
	}
	return filepath.Join("testdata", "screenshots")
}

// Widths saves the current page at a desktop width (1280 px) and a phone
// width (390 px) into ShotDir as name-1280.png and name-390.png, and leaves
// the browser at the desktop width.
func Widths(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	for _, w := range []int64{390, 1280} {
		// A screenshot taken before the page is laid out again at the new
		// width fails ("Cannot take screenshot with 0 width"): wait for it.
		if err := chromedp.Do(ctx, chromedp.EmulateViewport(w, 900),
			chromedp.Poll[chromedp.Void](`document.body && document.body.getBoundingClientRect().width > 0`,
				chromedp.WithPollingTimeout(5*time.Second))); err != nil {
			t.Errorf("screenshot %s at %d px: %v", name, w, err)
			return
		}
		Screenshot(t, ctx, ShotDir(), fmt.Sprintf("%s-%d", name, w))
	}
}

// ClickLoad clicks the element sel matches and waits until the page the
// click leads to (a form post, a link) has loaded. WaitVisible alone is not
// enough when the next page shows the same element as the one being left:
// it passes on the old page, and reading it then fails with "Cannot find
// context" as the browser swaps the document.
func ClickLoad(sel string) chromedp.Action[chromedp.Void] {
	return func(ctx context.Context, _ *chromedp.Target) (chromedp.Void, error) {
		if err := chromedp.Do(ctx,
			chromedp.Evaluate[chromedp.Void](`window.heraldLeaving = true`),
			chromedp.Click(chromedp.CSS(sel))); err != nil {
			return chromedp.Void{}, err
		}
		// While the document is swapped, evaluating fails ("navigated or
		// closed", "Cannot find context"): those mean "not yet".
		var err error
		for end := time.Now().Add(15 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
			var loaded bool
			loaded, err = chromedp.Run(ctx, chromedp.Evaluate[bool](`!window.heraldLeaving && document.readyState === "complete"`))
			if err == nil && loaded {
				return chromedp.Void{}, nil
			}
		}
		return chromedp.Void{}, fmt.Errorf("the page after clicking %s did not load: %v", sel, err)
	}
}
