package web

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/herald-mail/herald/internal/browsertest"
	"github.com/herald-mail/herald/models"
)

// A marketer builds a three-step welcome series in the browser (send,
// wait 2 days, branch on "clicked the first message"), walks a test
// address through it in test mode with the wait shortened to a second,
// and reads the per-step figures: the welcome sent to the test address
// by the engine, each step passed once.
func TestJourneyAutomationWelcomeSeries(t *testing.T) {
	ctx := browsertest.New(t, 120*time.Second)
	app := newTestApp(t, nil)
	base := app.http.URL
	bg := context.Background()
	if _, err := app.store.CreateUser(bg, "marketer@example.com", "", "a long enough password", models.RoleMarketer); err != nil {
		t.Fatal(err)
	}
	if err := app.store.SetSetting(bg, models.SettingPostalAddress, "1 Herald Way, Lyon"); err != nil {
		t.Fatal(err)
	}
	list := &models.List{Name: "Newsletter", Optin: models.OptinSingle, Visibility: models.ListPublic}
	if err := app.store.CreateList(bg, list); err != nil {
		t.Fatal(err)
	}
	me := &models.Subscriber{Email: "me@example.com", Name: "Me"}
	if err := app.store.CreateSubscriber(bg, me, map[int64]string{list.ID: models.SubConfirmed},
		models.Evidence{Source: models.SourceAdmin, Actor: "test"}); err != nil {
		t.Fatal(err)
	}
	shots := filepath.Join(os.TempDir(), "herald-screenshots")
	step, text := browsertest.Steps(t, ctx, shots)

	step("sign in",
		chromedp.Navigate(base+"/login"),
		chromedp.SendKeys(chromedp.CSS(`input[name="email"]`), "marketer@example.com"),
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
		chromedp.SetValue(chromedp.CSS(`select[name="list_id"]`), fmt.Sprint(list.ID)),
		chromedp.SendKeys(chromedp.CSS(`input[name="from_email"]`), "hello@example.com"),
		chromedp.SetValue(chromedp.CSS(`input[name="test_wait_seconds"]`), "1"),
		chromedp.SendKeys(chromedp.CSS(`[data-testid="step-1"] input[name="step_subject"]`), "Welcome aboard"),
		chromedp.SendKeys(chromedp.CSS(`[data-testid="step-1"] textarea[name="step_html"]`),
			`<p>Hello {{ .Subscriber.Name }}, <a href="https://example.com/start">start here</a>.</p><p><a href="{{ .UnsubscribeURL }}">Unsubscribe</a> {{ .Org.PostalAddress }}</p>`),
	)
	step("add a wait of two days",
		chromedp.Click(chromedp.CSS(`[data-testid="add-wait"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="step-2"]`)),
		chromedp.SetValue(chromedp.CSS(`[data-testid="step-2"] input[name="step_wait_days"]`), "2"),
	)
	step("add a branch on a click in the first message",
		chromedp.Click(chromedp.CSS(`[data-testid="add-branch"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="step-3"]`)),
		chromedp.SetValue(chromedp.CSS(`[data-testid="step-3"] select[name="step_cond"]`), models.CondClicked),
		chromedp.SetValue(chromedp.CSS(`[data-testid="step-3"] input[name="step_cond_step"]`), "1"),
		chromedp.SetValue(chromedp.CSS(`[data-testid="step-3"] input[name="step_then"]`), "-1"),
	)
	browsertest.Screenshot(t, ctx, shots, "automation-builder")
	step("save",
		chromedp.Click(chromedp.CSS(`[data-testid="save-automation"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="step-figures"]`)),
	)
	for pos, want := range map[int]string{1: "Send “Welcome aboard”", 2: "Wait 2 day(s)", 3: "If clicked the message of step 1: go to the end; else the next step"} {
		if got := text(fmt.Sprintf(`[data-testid="figures-%d"]`, pos)); !strings.Contains(got, want) {
			t.Errorf("step %d reads %q, want %q", pos, got, want)
		}
	}
	step("start a test run",
		chromedp.SendKeys(chromedp.CSS(`[data-testid="test-form"] input[name="email"]`), "me@example.com"),
		browsertest.ClickLoad(`[data-testid="test-start"]`),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="test-run"]`)),
	)
	if got := text(`[data-testid="test-state"]`); got != "active" {
		t.Errorf("test run after the start: %q, want active (waiting at the branch)", got)
	}
	passed := func(pos int) bool {
		v, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.CSS(fmt.Sprintf(`[data-testid="test-step-%d"]`, pos)), "data-passed"))
		if err != nil {
			t.Fatal(err)
		}
		return v.Value == "true"
	}
	if !passed(1) || !passed(2) || passed(3) {
		t.Errorf("after the start: passed %v %v %v, want steps 1 and 2 only", passed(1), passed(2), passed(3))
	}
	time.Sleep(1200 * time.Millisecond) // the shortened wait
	step("move it on after the shortened wait",
		browsertest.ClickLoad(`[data-testid="test-advance"]`),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="test-run"]`)),
	)
	if got := text(`[data-testid="test-state"]`); got != "done" || !passed(3) {
		t.Errorf("test run after the wait: %q, step 3 passed %v; want done through the branch's no-click way", got, passed(3))
	}
	// The engine sends the welcome through the capture transport; the
	// page's figures follow.
	var sent string
	for end := time.Now().Add(20 * time.Second); time.Now().Before(end); time.Sleep(300 * time.Millisecond) {
		step("reload the figures", chromedp.Navigate(base+"/automations/1"), chromedp.WaitVisible(chromedp.CSS(`[data-testid="step-figures"]`)))
		if sent = text(`[data-testid="figures-1"] [data-testid="sent"]`); sent == "1" {
			break
		}
	}
	if sent != "1" {
		t.Errorf("step 1 sent = %q, want 1 (the test address's welcome)", sent)
	}
	for pos := 1; pos <= 3; pos++ {
		if got := text(fmt.Sprintf(`[data-testid="figures-%d"] [data-testid="passed"]`, pos)); got != "1" {
			t.Errorf("step %d passed = %q, want 1", pos, got)
		}
	}
	browsertest.Screenshot(t, ctx, shots, "automation-figures")
	step("open the welcome's report, shared with campaigns",
		chromedp.Click(chromedp.CSS(`[data-testid="figures-1"] [data-testid="step-report"]`)),
		chromedp.WaitVisible(chromedp.CSS(`h1`)),
	)
	if got := text(`h1`); !strings.Contains(got, "Welcome series: step 1") {
		t.Errorf("report heading %q, want the step's campaign", got)
	}
	msgs, err := app.store.Outbox(bg, models.OutboxQuery{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 1 || msgs[0].Subject != "Welcome aboard" {
		t.Errorf("outbox = %+v, want the one welcome", msgs)
	}
}
