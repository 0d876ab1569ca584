package web

import (
	"context"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/pquerna/otp/totp"

	"github.com/herald-mail/herald/internal/browsertest"
	"github.com/herald-mail/herald/internal/e2e"
	"github.com/herald-mail/herald/models"
)

var (
	inviteLinkRE = regexp.MustCompile(`https?://[^\s"<>/]+(/invite/[A-Za-z0-9_-]+)`)
	resetLinkRE  = regexp.MustCompile(`https?://[^\s"<>/]+(/reset/[A-Za-z0-9_-]+)`)
)

// nthMailTo waits for the n-th (from 1) captured message to addr, oldest
// first, and returns it whole.
func nthMailTo(t *testing.T, store *models.Store, addr string, n int) *models.OutboxMessage {
	t.Helper()
	ctx := context.Background()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		msgs, err := store.Outbox(ctx, models.OutboxQuery{Limit: 500})
		if err != nil {
			t.Fatal(err)
		}
		var mine []models.OutboxMessage
		for i := len(msgs) - 1; i >= 0; i-- {
			if strings.EqualFold(msgs[i].RcptTo, addr) {
				mine = append(mine, msgs[i])
			}
		}
		if len(mine) >= n {
			full, err := store.OutboxMessage(ctx, mine[n-1].ID)
			if err != nil {
				t.Fatal(err)
			}
			return full
		}
	}
	t.Fatalf("message %d to %s did not reach the outbox within 30s", n, addr)
	return nil
}

// signInSteps signs in with email and password on the login page.
func signInSteps(base, email, password string) []chromedp.Action[chromedp.Void] {
	return []chromedp.Action[chromedp.Void]{
		chromedp.Navigate(base + "/login"),
		chromedp.WaitVisible(chromedp.CSS(`input[name="email"]`)),
		chromedp.SendKeys(chromedp.CSS(`input[name="email"]`), email),
		chromedp.SendKeys(chromedp.CSS(`input[name="password"]`), password),
		chromedp.Click(chromedp.CSS(`button[type="submit"]`)),
	}
}

var logOut = chromedp.Click(chromedp.CSS(`.whoami button[type="submit"]`))

func pathname(t *testing.T, ctx context.Context) string {
	t.Helper()
	p, err := chromedp.Run(ctx, chromedp.Evaluate[string](`location.pathname`))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestJourneyTwoFactor: on the built binary, an admin turns on TOTP
// two-factor sign-in (confirming with a code), signs out, signs in with a
// code computed from the secret, then with a recovery code; the same
// recovery code is refused the second time, and the half-signed-in state
// between password and code reaches nothing.
func TestJourneyTwoFactor(t *testing.T) {
	ctx := browsertest.New(t, 150*time.Second)
	h := e2e.Start(t, e2e.Options{})
	base, shots := h.URL, browsertest.ShotDir()
	step, text := browsertest.Steps(t, ctx, shots)

	step("sign in", append(signInSteps(base, h.Admin, h.Password), chromedp.WaitVisible(chromedp.CSS(`.mainnav`)))...)
	step("set up two-factor",
		chromedp.Navigate(base+"/settings/security"),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="twofactor-state"][data-state="off"]`)),
		chromedp.Click(chromedp.CSS(`[data-testid="setup-2fa"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="totp-qr"]`)),
	)
	secret := text(`[data-testid="totp-secret"]`)
	if len(secret) < 16 {
		t.Fatalf("secret shown = %q", secret)
	}
	browsertest.Widths(t, ctx, "twofactor-setup")
	step("a wrong code leaves it off",
		chromedp.SendKeys(chromedp.CSS(`[data-testid="confirm-form"] input[name="code"]`), "000000"),
		chromedp.Click(chromedp.CSS(`[data-testid="confirm-form"] button`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="twofactor-error"]`)),
	)
	code, err := totp.GenerateCode(secret, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	step("confirm with the app's code",
		chromedp.SetValue(chromedp.CSS(`[data-testid="confirm-form"] input[name="code"]`), code),
		chromedp.Click(chromedp.CSS(`[data-testid="confirm-form"] button`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="recovery-codes"]`)),
	)
	codes := strings.Fields(text(`[data-testid="recovery-codes"] ul`))
	if len(codes) != models.RecoveryCodeCount {
		t.Fatalf("recovery codes shown = %q, want %d", codes, models.RecoveryCodeCount)
	}
	browsertest.Widths(t, ctx, "twofactor-recovery-codes")
	var stored string
	h.Store(t).DB().Raw("SELECT totp_secret FROM users WHERE email = ?", h.Admin).Scan(&stored)
	if stored == "" || strings.Contains(stored, secret) {
		t.Errorf("stored secret %q: want it sealed, not plain", stored)
	}

	step("log out, password only", logOut, chromedp.WaitVisible(chromedp.CSS(`[data-testid="forgot-link"]`)))
	step("password", append(signInSteps(base, h.Admin, h.Password), chromedp.WaitVisible(chromedp.CSS(`[data-testid="twofactor-code"]`)))...)
	step("the half-signed-in session reaches nothing", chromedp.Navigate(base+"/lists"), chromedp.WaitVisible(chromedp.CSS(`input[name="password"]`)))
	if p := pathname(t, ctx); p != "/login" {
		t.Fatalf("after the password alone, /lists went to %s, want /login", p)
	}
	// The code of the next step: the current one was spent confirming.
	next, err := totp.GenerateCode(secret, time.Now().Add(30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	step("TOTP code",
		chromedp.Navigate(base+"/login/2fa"),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="twofactor-code"]`)),
		chromedp.SendKeys(chromedp.CSS(`[data-testid="twofactor-code"]`), next),
		chromedp.Click(chromedp.CSS(`[data-testid="twofactor-login"] form[action="/login/2fa"] button`)),
		chromedp.WaitVisible(chromedp.CSS(`.mainnav`)),
	)

	recovery := codes[4]
	for i, want := range []string{"mainnav", "refused"} {
		step("log out", logOut, chromedp.WaitVisible(chromedp.CSS(`[data-testid="forgot-link"]`)))
		step("password again", append(signInSteps(base, h.Admin, h.Password), chromedp.WaitVisible(chromedp.CSS(`[data-testid="twofactor-code"]`)))...)
		step("recovery code",
			chromedp.SendKeys(chromedp.CSS(`[data-testid="twofactor-code"]`), recovery),
			chromedp.Click(chromedp.CSS(`[data-testid="twofactor-login"] form[action="/login/2fa"] button`)),
		)
		if want == "mainnav" {
			step("signed in", chromedp.WaitVisible(chromedp.CSS(`.mainnav`)))
			if f := text(`[data-testid="flash"]`); !strings.Contains(f, "9 left") {
				t.Errorf("flash after recovery code %d = %q, want 9 left", i, f)
			}
			continue
		}
		step("refused", chromedp.WaitVisible(chromedp.CSS(`[data-testid="twofactor-error"]`)))
		browsertest.Screenshot(t, ctx, shots, "twofactor-recovery-reused")
		if p := pathname(t, ctx); p != "/login/2fa" {
			t.Errorf("after a reused recovery code the browser is at %s", p)
		}
	}
	if got := strings.Join(auditActions(t, h.Store(t)), " "); !strings.Contains(got, "2fa.enable") || strings.Count(got, "2fa.recovery_used") != 1 {
		t.Errorf("audit log = %q, want 2fa.enable and one 2fa.recovery_used", got)
	}
}

// TestJourneyInvitation: an admin invites someone from Settings → Users;
// the invitee opens the link from the captured email, chooses a name and
// password and is signed in with the role given; the link then refuses a
// second use.
func TestJourneyInvitation(t *testing.T) {
	ctx := browsertest.New(t, 120*time.Second)
	h := e2e.Start(t, e2e.Options{})
	base, shots := h.URL, browsertest.ShotDir()
	step, text := browsertest.Steps(t, ctx, shots)
	const invitee = "new.colleague@example.net"

	step("sign in", append(signInSteps(base, h.Admin, h.Password), chromedp.WaitVisible(chromedp.CSS(`.mainnav`)))...)
	step("invite",
		chromedp.Navigate(base+"/settings/users"),
		chromedp.WaitVisible(chromedp.CSS(`form[data-testid="invite-form"]`)),
		chromedp.SendKeys(chromedp.CSS(`form[data-testid="invite-form"] input[name="email"]`), invitee),
		chromedp.SetValue(chromedp.CSS(`form[data-testid="invite-form"] select[name="role"]`), models.RoleViewer),
		chromedp.Click(chromedp.CSS(`form[data-testid="invite-form"] button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="invitations-table"]`)),
	)
	if got := text(`[data-testid="invitations-table"] tbody`); !strings.Contains(got, invitee) || !strings.Contains(got, "viewer") {
		t.Errorf("pending invitations = %q", got)
	}
	browsertest.Widths(t, ctx, "users-invitations")

	msg := nthMailTo(t, h.Store(t), invitee, 1)
	link := linkPath(t, inviteLinkRE, msg.Text)
	if html := linkPath(t, inviteLinkRE, msg.HTML); html != link {
		t.Errorf("HTML link %q, text link %q", html, link)
	}
	step("log out", logOut, chromedp.WaitVisible(chromedp.CSS(`[data-testid="forgot-link"]`)))
	step("open the invitation",
		chromedp.Navigate(base+link),
		chromedp.WaitVisible(chromedp.CSS(`form[data-testid="invite-form"]`)),
	)
	browsertest.Widths(t, ctx, "invitation-accept")
	step("too short a password",
		chromedp.SendKeys(chromedp.CSS(`input[name="name"]`), "New Colleague"),
		chromedp.SendKeys(chromedp.CSS(`input[name="password"]`), "short"),
		chromedp.Evaluate[chromedp.Void](`document.querySelector('input[name="password"]').removeAttribute('minlength')`),
		chromedp.Click(chromedp.CSS(`form[data-testid="invite-form"] button`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="err-password"]`)),
	)
	step("choose a password",
		chromedp.SetValue(chromedp.CSS(`input[name="password"]`), "a colleague's long password"),
		chromedp.Click(chromedp.CSS(`form[data-testid="invite-form"] button`)),
		chromedp.WaitVisible(chromedp.CSS(`.mainnav`)),
	)
	if got := text(`.whoami small`); !strings.Contains(got, invitee) || !strings.Contains(got, "viewer") {
		t.Errorf("signed in as %q, want the invitee as viewer", got)
	}
	step("log out", logOut, chromedp.WaitVisible(chromedp.CSS(`[data-testid="forgot-link"]`)))
	step("the link again", chromedp.Navigate(base+link), chromedp.WaitVisible(chromedp.CSS(`[data-testid="link-problem"]`)))
	if got := text(`[data-testid="link-problem-message"]`); !strings.Contains(got, "already accepted") {
		t.Errorf("reused invitation says %q", got)
	}
	step("sign in with the chosen password", append(signInSteps(base, invitee, "a colleague's long password"), chromedp.WaitVisible(chromedp.CSS(`.mainnav`)))...)
	if got := strings.Join(auditActions(t, h.Store(t)), " "); !strings.Contains(got, "invitation.create") || !strings.Contains(got, "invitation.accept") {
		t.Errorf("audit log = %q", got)
	}
}

// TestJourneyPasswordReset: "Forgot password?" answers the same for a
// known and an unknown address; the captured link sets a new password
// and ends the user's other sessions; the same link is refused when
// reused, and a link past its lifetime (a Herald started with a
// one-second HERALD_RESET_LINK_TTL) is refused as expired.
func TestJourneyPasswordReset(t *testing.T) {
	ctx := browsertest.New(t, 150*time.Second)
	h := e2e.Start(t, e2e.Options{})
	base, shots := h.URL, browsertest.ShotDir()
	step, text := browsertest.Steps(t, ctx, shots)
	other := h.Dashboard(t) // another signed-in session of the same user
	if code, _ := other.Get(t, "/lists"); code != http.StatusOK {
		t.Fatalf("other session: /lists = %d", code)
	}

	ask := func(hbase, email string) string {
		t.Helper()
		step("ask for a reset of "+email,
			chromedp.Navigate(hbase+"/login"),
			chromedp.Click(chromedp.CSS(`[data-testid="forgot-link"]`)),
			chromedp.WaitVisible(chromedp.CSS(`[data-testid="forgot-form"]`)),
			chromedp.SendKeys(chromedp.CSS(`input[name="email"]`), email),
			chromedp.Click(chromedp.CSS(`[data-testid="forgot-form"] button`)),
			chromedp.WaitVisible(chromedp.CSS(`[data-testid="forgot-sent"]`)),
		)
		return strings.Replace(text(`[data-testid="forgot-sent"]`), email, "ADDRESS", 1)
	}
	unknown := ask(base, "nobody@example.org")
	known := ask(base, h.Admin)
	if unknown != known {
		t.Errorf("answers differ:\nunknown: %q\nknown:   %q", unknown, known)
	}
	browsertest.Widths(t, ctx, "forgot-sent")

	link := linkPath(t, resetLinkRE, nthMailTo(t, h.Store(t), h.Admin, 1).Text)
	step("open the reset link", chromedp.Navigate(base+link), chromedp.WaitVisible(chromedp.CSS(`[data-testid="reset-form"]`)))
	step("passwords that differ",
		chromedp.SendKeys(chromedp.CSS(`input[name="password"]`), "my brand new password"),
		chromedp.SendKeys(chromedp.CSS(`input[name="password2"]`), "my brand new passw0rd"),
		chromedp.Click(chromedp.CSS(`[data-testid="reset-form"] button`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="err-password2"]`)),
	)
	step("set the new password",
		chromedp.SetValue(chromedp.CSS(`input[name="password"]`), "my brand new password"),
		chromedp.SetValue(chromedp.CSS(`input[name="password2"]`), "my brand new password"),
		chromedp.Click(chromedp.CSS(`[data-testid="reset-form"] button`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="login-notice"]`)),
	)
	if code, loc := other.Get(t, "/lists"); code != http.StatusSeeOther {
		t.Errorf("the other session after the reset: /lists = %d %q, want 303 to /login", code, loc)
	}
	step("sign in with the new password", append(signInSteps(base, h.Admin, "my brand new password"), chromedp.WaitVisible(chromedp.CSS(`.mainnav`)))...)
	step("log out", logOut, chromedp.WaitVisible(chromedp.CSS(`[data-testid="forgot-link"]`)))
	step("the link again", chromedp.Navigate(base+link), chromedp.WaitVisible(chromedp.CSS(`[data-testid="link-problem"]`)))
	if got := text(`[data-testid="link-problem-message"]`); !strings.Contains(got, "already used") {
		t.Errorf("reused link says %q", got)
	}
	if got := text(`[data-testid="link-problem-action"]`); got != "Ask for a new link" {
		t.Errorf("reused link offers %q", got)
	}
	browsertest.Widths(t, ctx, "reset-link-used")
	if got := strings.Join(auditActions(t, h.Store(t)), " "); !strings.Contains(got, "password.reset_request") || !strings.Contains(got, "password.reset") {
		t.Errorf("audit log = %q", got)
	}

	short := e2e.Start(t, e2e.Options{Env: []string{"HERALD_RESET_LINK_TTL=1s"}})
	ask(short.URL, short.Admin)
	msg := nthMailTo(t, short.Store(t), short.Admin, 1)
	expired := linkPath(t, resetLinkRE, msg.Text)
	time.Sleep(time.Until(msg.CreatedAt.Add(1500 * time.Millisecond)))
	step("an expired link", chromedp.Navigate(short.URL+expired), chromedp.WaitVisible(chromedp.CSS(`[data-testid="link-problem"]`)))
	if got := text(`[data-testid="link-problem-message"]`); !strings.Contains(got, "expired") {
		t.Errorf("expired link says %q", got)
	}
	step("ask for a new one from there",
		chromedp.Click(chromedp.CSS(`[data-testid="link-problem-action"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="forgot-form"]`)),
	)
}
