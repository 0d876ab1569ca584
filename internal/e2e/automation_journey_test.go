package e2e_test

import (
	"bytes"
	"fmt"
	"net/http"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/herald-mail/herald/internal/browsertest"
	"github.com/herald-mail/herald/internal/e2e"
	"github.com/herald-mail/herald/models"
)

// TestAutomationWelcomeJourney is issue 22's welcome-series journey on the
// built binary, delivering by SMTP to a go-smtp receiver on 127.0.0.2
// found through the local DNS.
//
// In Chromium a marketer (made with `herald user create`) builds a
// three-step welcome series (send, wait 2 days, branch on "clicked the
// message of step 1": to the end), walks their own address through it in
// test mode with the wait shortened to a second, and reads the per-step
// figures: the welcome delivered once at the receiver, each step passed
// once, the step's report shared with campaigns. Then they click the
// welcome's tracked link (the binary's real tracking endpoint, from the
// message the receiver holds) and walk the address through again: the
// branch now goes the "clicked" way, the figures count the click, and no
// second welcome leaves.
func TestAutomationWelcomeJourney(t *testing.T) {
	t.Parallel() // functional: no rate or clock is measured, so it may share the machine
	if testing.Short() {
		t.Skip("starts the built binary and a browser")
	}
	ctx := browsertest.New(t, 2*time.Minute)
	shots := filepath.Join(os.TempDir(), "herald-screenshots", "automation-journey-e2e")

	dns := e2e.StartDNS(t)
	port := e2e.FreePort(t)
	alpha := e2e.StartReceiver(t, "127.0.0.2", port, e2e.ReceiverOptions{})
	dns.Provider(t, "mx.alpha.test", "127.0.0.2", "alpha.test")
	h := e2e.Start(t, e2e.Options{Transport: "direct", DNS: dns, MXPort: port})
	h.SendingDomain(t, dns, "news.example")
	const me = "me@alpha.test"
	list := h.List(t, "Newsletter", me)
	if out, err := h.Run("user", "create", "--email", "marketer@herald.test", "--role", "marketer", "--password", "a long enough password"); err != nil {
		t.Fatalf("herald user create: %v\n%s", err, out)
	}

	step, text := browsertest.Steps(t, ctx, shots)
	step("sign in",
		chromedp.Navigate(h.URL+"/login"),
		chromedp.SendKeys(chromedp.CSS(`input[name="email"]`), "marketer@herald.test"),
		chromedp.SendKeys(chromedp.CSS(`input[name="password"]`), "a long enough password"),
		chromedp.Click(chromedp.CSS(`form button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`.shell`)),
	)
	step("open the builder from the navigation",
		chromedp.Click(chromedp.CSS(`a[href="/automations"]`)),
		chromedp.Click(chromedp.CSS(`[data-testid="new-automation"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="automation-form"]`)),
	)
	step("name it, choose the list, write the welcome",
		chromedp.SendKeys(chromedp.CSS(`input[name="name"]`), "Welcome series"),
		chromedp.SetValue(chromedp.CSS(`select[name="list_id"]`), fmt.Sprint(list)),
		chromedp.SendKeys(chromedp.CSS(`input[name="from_email"]`), "hello@news.example"),
		chromedp.SetValue(chromedp.CSS(`input[name="test_wait_seconds"]`), "1"),
		chromedp.SendKeys(chromedp.CSS(`[data-testid="step-1"] input[name="step_subject"]`), "Welcome aboard"),
		chromedp.SendKeys(chromedp.CSS(`[data-testid="step-1"] textarea[name="step_html"]`),
			`<p>Hello {{ .Subscriber.Name }}, <a href="https://example.com/start">start here</a>.</p><p><a href="{{ .UnsubscribeURL }}">Unsubscribe</a> {{ .Org.PostalAddress }}</p>`),
	)
	step("add a wait of two days",
		browsertest.ClickLoad(`[data-testid="add-wait"]`),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="step-2"]`)),
		chromedp.SetValue(chromedp.CSS(`[data-testid="step-2"] input[name="step_wait_days"]`), "2"),
	)
	step("add a branch on a click in the first message",
		browsertest.ClickLoad(`[data-testid="add-branch"]`),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="step-3"]`)),
		chromedp.SetValue(chromedp.CSS(`[data-testid="step-3"] select[name="step_cond"]`), models.CondClicked),
		chromedp.SetValue(chromedp.CSS(`[data-testid="step-3"] input[name="step_cond_step"]`), "1"),
		chromedp.SetValue(chromedp.CSS(`[data-testid="step-3"] input[name="step_then"]`), "-1"),
	)
	browsertest.Screenshot(t, ctx, shots, "automation-builder")
	step("save",
		browsertest.ClickLoad(`[data-testid="save-automation"]`),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="step-figures"]`)),
	)
	for pos, want := range map[int]string{1: "Send “Welcome aboard”", 2: "Wait 2 day(s)", 3: "If clicked the message of step 1: go to the end; else the next step"} {
		if got := text(fmt.Sprintf(`[data-testid="figures-%d"]`, pos)); !strings.Contains(got, want) {
			t.Errorf("step %d reads %q, want %q", pos, got, want)
		}
	}
	var autos struct {
		Data []struct{ ID int64 } `json:"data"`
	}
	h.MustAPI(t, http.StatusOK, "GET", "/automations", nil, &autos)
	if len(autos.Data) != 1 {
		t.Fatalf("automations through the API: %+v, want the one saved", autos.Data)
	}
	page := fmt.Sprintf("%s/automations/%d", h.URL, autos.Data[0].ID)

	passed := func(pos int) bool {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.CSS(fmt.Sprintf(`[data-testid="test-step-%d"]`, pos)), "data-passed"))
		if err != nil {
			t.Fatal(err)
		}
		return v.Value == "true"
	}
	// testRun walks the address through: start, then after the shortened
	// wait move it on; it returns how the run ended.
	testRun := func(name string) string {
		t.Helper()
		step(name+": start a test run",
			chromedp.SetValue(chromedp.CSS(`[data-testid="test-form"] input[name="email"]`), me),
			browsertest.ClickLoad(`[data-testid="test-start"]`),
			chromedp.WaitVisible(chromedp.CSS(`[data-testid="test-run"]`)),
		)
		if got := text(`[data-testid="test-state"]`); got != "active" {
			t.Errorf("%s: test run after the start: %q, want active (waiting before the branch)", name, got)
		}
		if !passed(1) || !passed(2) || passed(3) {
			t.Errorf("%s: after the start: passed %v %v %v, want steps 1 and 2 only", name, passed(1), passed(2), passed(3))
		}
		time.Sleep(1200 * time.Millisecond) // the shortened wait
		step(name+": move it on after the shortened wait",
			browsertest.ClickLoad(`[data-testid="test-advance"]`),
			chromedp.WaitVisible(chromedp.CSS(`[data-testid="test-run"]`)),
		)
		if got := text(`[data-testid="test-state"]`); got != "done" || !passed(3) {
			t.Errorf("%s: test run after the wait: %q, step 3 passed %v; want done through the branch", name, got, passed(3))
		}
		return text(`[data-testid="test-exit"]`)
	}
	if got := testRun("first run"); got != "after the last step" {
		t.Errorf("first run ended %q, want after the last step (the branch's no-click way: nobody clicked yet)", got)
	}

	// The engine sends the welcome to the receiver; the figures follow.
	e2e.Eventually(t, 30*time.Second, "the welcome at the receiver", func() bool { return alpha.Count() >= 1 })
	figure := func(pos int, col string) string {
		t.Helper()
		return text(fmt.Sprintf(`[data-testid="figures-%d"] [data-testid="%s"]`, pos, col))
	}
	reloadUntil := func(what string, cond func() bool) {
		t.Helper()
		for end := time.Now().Add(20 * time.Second); ; time.Sleep(300 * time.Millisecond) {
			step("reload the figures", chromedp.Navigate(page), chromedp.WaitVisible(chromedp.CSS(`[data-testid="step-figures"]`)))
			if cond() {
				return
			}
			if time.Now().After(end) {
				t.Fatalf("the figures never showed %s", what)
			}
		}
	}
	reloadUntil("step 1 sent", func() bool { return figure(1, "sent") == "1" })
	for pos := 1; pos <= 3; pos++ {
		if got := figure(pos, "passed"); got != "1" {
			t.Errorf("step %d passed = %q, want 1", pos, got)
		}
	}
	if got := figure(1, "clicked"); got != "0" {
		t.Errorf("step 1 clicked = %q before any click", got)
	}
	browsertest.Screenshot(t, ctx, shots, "automation-figures")
	step("open the welcome's report, shared with campaigns",
		chromedp.Click(chromedp.CSS(`[data-testid="figures-1"] [data-testid="step-report"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="report"]`)),
	)
	if got := text(`h1`); !strings.Contains(got, "Welcome series: step 1") {
		t.Errorf("report heading %q, want the step's campaign", got)
	}
	if got := text(`[data-testid="delivered"]`); got != "1" {
		t.Errorf("step report: delivered = %q, want 1", got)
	}

	// The reader clicks the welcome's link, past the tracker's scanner
	// delay (a click within 10 s of the send is a link scanner's), while
	// the marketer watches the automation's page: its figures refresh
	// themselves, with no reload.
	step("back to the automation", chromedp.Navigate(page), chromedp.WaitVisible(chromedp.CSS(`[data-testid="step-figures"]`)))
	welcome := alpha.Messages()[0]
	if msg, err := mail.ReadMessage(bytes.NewReader(welcome.Data)); err != nil || decodeHeader(msg.Header.Get("Subject")) != "Welcome aboard" {
		t.Fatalf("the receiver's message is not the welcome (%v):\n%s", err, welcome.Data)
	}
	link := clickRE.FindString(htmlPart(t, welcome.Data))
	if link == "" {
		t.Fatalf("the welcome has no tracked link:\n%s", welcome.Data)
	}
	time.Sleep(time.Until(welcome.At.Add(11 * time.Second)))
	req, _ := http.NewRequest("GET", h.URL+link, nil)
	req.Header.Set("User-Agent", browserUA)
	resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusFound || loc != "https://example.com/start" {
		t.Fatalf("tracked link = %d to %q, want 302 to https://example.com/start", resp.StatusCode, loc)
	}
	e2e.Eventually(t, 20*time.Second, "the click on the page without a reload", func() bool {
		return figure(1, "clicked") == "1"
	})

	if got := testRun("second run"); got != "branch to the end" {
		t.Errorf("second run ended %q, want the branch's clicked way (to the end)", got)
	}
	browsertest.Screenshot(t, ctx, shots, "automation-clicked")
	reloadUntil("the second run's passes", func() bool { return figure(3, "passed") == "1" })
	if got := figure(1, "sent"); got != "1" {
		t.Errorf("step 1 sent = %q after the second run, want still 1", got)
	}
	time.Sleep(time.Second) // room for a wrong second welcome to arrive
	if n := alpha.Count(); n != 1 {
		t.Errorf("the receiver got %d messages, want the one welcome (a second test run sends no step twice)", n)
	}
}
