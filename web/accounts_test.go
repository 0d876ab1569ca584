package web

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/herald-mail/herald/models"
)

// enable2FA turns on two-factor sign-in for c's user through the security
// page, and returns the secret.
func enable2FA(t *testing.T, c *client) string {
	t.Helper()
	p := c.postForm("/settings/security/setup", url.Values{})
	secret := strings.TrimSpace(p.Doc.Find(`[data-testid="totp-secret"]`).Text())
	if secret == "" {
		t.Fatalf("no secret on the setup page (%d %s)", p.StatusCode, p.Request.URL.Path)
	}
	code, err := totp.GenerateCode(secret, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	p = c.postForm("/settings/security/confirm", url.Values{"code": {code}})
	if n := p.Doc.Find(`[data-testid="recovery-code"]`).Length(); n != models.RecoveryCodeCount {
		t.Fatalf("confirm: %d recovery codes shown (status %d)", n, p.StatusCode)
	}
	return secret
}

// TestRequired2FASendsUsersToSetUp: with two-factor sign-in required, a
// user without it reaches only its setup page until it is on; an admin
// can reset someone's, which sends them back to set it up.
func TestRequired2FASendsUsersToSetUp(t *testing.T) {
	app := newTestApp(t, nil)
	ctx := context.Background()
	admin, viewer := app.user(models.RoleAdmin), app.user(models.RoleViewer)
	if p := admin.postForm("/settings/users/2fa-policy", url.Values{"require": {"on"}}); p.StatusCode != http.StatusOK {
		t.Fatalf("policy: %d", p.StatusCode)
	}
	if v, _ := app.store.Setting(ctx, models.SettingRequire2FA); v != "on" {
		t.Fatalf("require_2fa = %q", v)
	}
	p := viewer.get("/lists")
	if p.Request.URL.Path != "/settings/security" || p.Doc.Find(`[data-testid="twofactor-required"]`).Length() != 1 {
		t.Fatalf("GET /lists without 2FA ended at %s, want the setup page saying it is required", p.Request.URL.Path)
	}
	if p := viewer.postForm("/settings/tokens", url.Values{"name": {"x"}}); p.StatusCode != http.StatusForbidden {
		t.Errorf("POST without 2FA: %d, want 403", p.StatusCode)
	}
	enable2FA(t, viewer)
	if p := viewer.get("/lists"); p.StatusCode != http.StatusOK || p.Request.URL.Path != "/lists" {
		t.Fatalf("GET /lists with 2FA: %d at %s", p.StatusCode, p.Request.URL.Path)
	}
	if p := viewer.postForm("/settings/security/disable", url.Values{"code": {"123456"}}); p.StatusCode != http.StatusForbidden {
		t.Errorf("turning it off while required: %d, want 403", p.StatusCode)
	}

	enable2FA(t, admin)
	u, err := app.store.UserByEmail(ctx, "viewer@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if p := admin.postForm("/settings/users/"+itoa(u.ID)+"/reset-2fa", url.Values{}); p.StatusCode != http.StatusOK {
		t.Fatalf("reset 2FA: %d", p.StatusCode)
	}
	if u, _ = app.store.User(ctx, u.ID); u.TwoFactor() {
		t.Fatal("the viewer still has 2FA after an admin reset it")
	}
	if p := viewer.get("/lists"); p.Request.URL.Path != "/settings/security" {
		t.Errorf("after the reset, /lists ended at %s, want the setup page", p.Request.URL.Path)
	}
	got := strings.Join(auditActions(t, app.store), " ")
	for _, want := range []string{"2fa.policy", "2fa.enable", "2fa.reset"} {
		if !strings.Contains(got, want) {
			t.Errorf("audit log %q lacks %s", got, want)
		}
	}
}

// TestForgotPasswordSaysTheSameAndIsRateLimited: a known and an unknown
// address get the same page; only the known one gets mail; a fourth
// request for one address within the hour is refused, known or not.
func TestForgotPasswordSaysTheSameAndIsRateLimited(t *testing.T) {
	app := newTestApp(t, nil)
	if _, err := app.store.CreateUser(context.Background(), "known@example.com", "", "a long enough password", models.RoleViewer); err != nil {
		t.Fatal(err)
	}
	anon := app.client()
	answer := func(email string) (int, string) {
		p := anon.postForm("/forgot", url.Values{"email": {email}})
		return p.StatusCode, strings.Replace(p.Doc.Find("article").Text(), email, "ADDRESS", 1)
	}
	kc, known := answer("known@example.com")
	uc, unknown := answer("unknown@example.com")
	if kc != http.StatusOK || uc != kc || known != unknown {
		t.Errorf("known: %d %q\nunknown: %d %q", kc, known, uc, unknown)
	}
	msg := waitForMail(t, app.store, "known@example.com")
	if !strings.Contains(msg.Text, "http://herald.test/reset/") {
		t.Errorf("reset mail text = %q", msg.Text)
	}
	if n := mailsTo(t, app.store, "unknown@example.com"); n != 0 {
		t.Errorf("%d messages to the unknown address", n)
	}
	for _, email := range []string{"known@example.com", "unknown@example.com"} {
		answer(email)
		answer(email)
		if code, _ := answer(email); code != http.StatusTooManyRequests {
			t.Errorf("4th request for %s: %d, want 429", email, code)
		}
	}
	if p := anon.postForm("/forgot", url.Values{"email": {"not an address"}}); p.StatusCode != http.StatusUnprocessableEntity {
		t.Errorf("a malformed address: %d, want 422", p.StatusCode)
	}
	if p := anon.get("/reset/forged-token"); p.StatusCode != http.StatusNotFound || p.Doc.Find(`[data-testid="link-problem-action"]`).AttrOr("href", "") != "/forgot" {
		t.Errorf("a forged reset link: %d, want 404 with a way to ask for a new one", p.StatusCode)
	}
}

// TestInvitationRevoked: an admin's invitation is listed as pending until
// revoked; its emailed link then says it was withdrawn. Bad input is
// answered on the form.
func TestInvitationRevoked(t *testing.T) {
	app := newTestApp(t, nil)
	admin := app.user(models.RoleAdmin)
	if p := admin.postForm("/settings/invitations", url.Values{"email": {"not an address"}, "role": {"viewer"}}); p.StatusCode != http.StatusUnprocessableEntity ||
		p.Doc.Find(`[data-testid="err-invite_email"]`).Length() != 1 {
		t.Errorf("a bad address: %d, want 422 with the message beside the field", p.StatusCode)
	}
	if p := admin.postForm("/settings/invitations", url.Values{"email": {"admin@example.com"}, "role": {"viewer"}}); p.StatusCode != http.StatusUnprocessableEntity {
		t.Errorf("inviting an existing account: %d, want 422", p.StatusCode)
	}
	p := admin.postForm("/settings/invitations", url.Values{"email": {"guest@example.org"}, "role": {"marketer"}})
	row := p.Doc.Find(`[data-testid="invitation"]`)
	if p.StatusCode != http.StatusOK || row.Length() != 1 || !strings.Contains(row.Text(), "guest@example.org") {
		t.Fatalf("after inviting: %d, %d pending rows", p.StatusCode, row.Length())
	}
	link := linkPath(t, inviteLinkRE, waitForMail(t, app.store, "guest@example.org").Text)
	anon := app.client()
	if p := anon.get(link); p.StatusCode != http.StatusOK || p.Doc.Find(`form[data-testid="invite-form"]`).Length() != 1 {
		t.Fatalf("the invitation link: %d", p.StatusCode)
	}
	revoke, _ := row.Find("form").Attr("action")
	if p := admin.postForm(revoke, url.Values{}); p.Doc.Find(`[data-testid="invitation"]`).Length() != 0 {
		t.Errorf("still pending after revoking")
	}
	p = anon.get(link)
	if p.StatusCode != http.StatusGone || !strings.Contains(p.Doc.Find(`[data-testid="link-problem-message"]`).Text(), "withdrawn") {
		t.Errorf("a revoked invitation's link: %d %q", p.StatusCode, p.Doc.Find(`[data-testid="link-problem-message"]`).Text())
	}
	if p := anon.postForm(link, url.Values{"name": {"X"}, "password": {"a long enough password"}}); p.StatusCode != http.StatusGone {
		t.Errorf("accepting a revoked invitation: %d, want 410", p.StatusCode)
	}
	if strings.Count(strings.Join(auditActions(t, app.store), " "), "invitation.") != 2 {
		t.Errorf("audit log = %v, want invitation.create and invitation.revoke", auditActions(t, app.store))
	}
}
