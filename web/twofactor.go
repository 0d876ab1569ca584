package web

import (
	"bytes"
	"encoding/base64"
	"errors"
	"image/png"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/herald-mail/herald/models"
	"github.com/herald-mail/herald/views"
)

// Session keys of the half-signed-in state between the password and the
// second factor: the user id and when the password was right. Nothing
// but /login/2fa reads them; loadUser knows only "user_id".
const (
	sessPending2FA   = "2fa_user_id"
	sessPending2FAAt = "2fa_at"
	pending2FAFor    = 5 * time.Minute
)

// totpPeriod is the step of TOTP codes (RFC 6238's default, which every
// authenticator app uses).
const totpPeriod = 30

// matchTOTP returns the time step code is valid for at t, allowing one
// step of clock drift either way.
func matchTOTP(secret, code string, t time.Time) (int64, bool) {
	code = strings.ReplaceAll(strings.TrimSpace(code), " ", "")
	if len(code) != 6 {
		return 0, false
	}
	for _, d := range []int64{0, -1, 1} {
		at := t.Add(time.Duration(d*totpPeriod) * time.Second)
		ok, err := totp.ValidateCustom(code, secret, at, totp.ValidateOpts{Period: totpPeriod, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
		if err == nil && ok {
			return at.Unix() / totpPeriod, true
		}
	}
	return 0, false
}

// signIn starts a signed-in session for u, remembering the user's session
// generation so a password reset can end it.
func signIn(a *app, c echo.Context, u *models.User) error {
	ctx := c.Request().Context()
	if err := a.sessions.RenewToken(ctx); err != nil {
		return err
	}
	a.sessions.Remove(ctx, sessPending2FA)
	a.sessions.Remove(ctx, sessPending2FAAt)
	a.sessions.Put(ctx, "user_id", u.ID)
	a.sessions.Put(ctx, "session_gen", u.SessionGen)
	c.Set(ctxUser, u)
	return nil
}

// startSecondFactor puts the session in the half-signed-in state.
func startSecondFactor(a *app, c echo.Context, u *models.User) error {
	ctx := c.Request().Context()
	if err := a.sessions.RenewToken(ctx); err != nil {
		return err
	}
	a.sessions.Remove(ctx, "user_id")
	a.sessions.Put(ctx, sessPending2FA, u.ID)
	a.sessions.Put(ctx, sessPending2FAAt, time.Now().Unix())
	return c.Redirect(http.StatusSeeOther, "/login/2fa")
}

// pendingUser is the user who gave the right password and owes a code;
// nil when there is none or the password was given too long ago.
func (a *accountPages) pendingUser(c echo.Context) (*models.User, error) {
	ctx := c.Request().Context()
	id := a.sessions.GetInt64(ctx, sessPending2FA)
	if id == 0 || time.Since(time.Unix(a.sessions.GetInt64(ctx, sessPending2FAAt), 0)) > pending2FAFor {
		return nil, nil
	}
	u, err := a.store.User(ctx, id)
	if errors.Is(err, models.ErrNotFound) {
		return nil, nil
	}
	return u, err
}

func (a *accountPages) secondFactorPage(c echo.Context) error {
	u, err := a.pendingUser(c)
	if err != nil {
		return err
	}
	if u == nil {
		return c.Redirect(http.StatusSeeOther, "/login")
	}
	return a.render(c, 200, views.TwoFactorLogin(csrfToken(c), u.Email, ""))
}

// secondFactor checks a TOTP or recovery code and completes the sign-in.
func (a *accountPages) secondFactor(c echo.Context) error {
	ctx := c.Request().Context()
	u, err := a.pendingUser(c)
	if err != nil {
		return err
	}
	if u == nil {
		a.sessions.Put(ctx, "flash", "The sign-in took too long. Enter your password again.")
		return c.Redirect(http.StatusSeeOther, "/login")
	}
	ip := c.RealIP()
	if !a.limiter.Allowed(ip, u.Email) {
		return a.render(c, http.StatusTooManyRequests, views.TwoFactorLogin(csrfToken(c), u.Email,
			"Too many wrong codes. Wait 15 minutes and try again, or ask an admin to reset your two-factor sign-in."))
	}
	code := c.FormValue("code")
	how, err := a.checkSecondFactor(c, u, code)
	if errors.Is(err, models.ErrBadCode) {
		a.limiter.Fail(ip, u.Email)
		a.log.Info("two-factor code refused", "user", u.ID, "ip", ip)
		return a.render(c, http.StatusUnauthorized, views.TwoFactorLogin(csrfToken(c), u.Email,
			"That code is wrong, expired or already used. Enter the current code from your app, or an unused recovery code."))
	}
	if err != nil {
		return err
	}
	if how == "recovery" {
		e := models.AuditEntry{Action: "2fa.recovery_used", ObjectType: "user", ObjectID: itoa(u.ID), Summary: "signed in with a recovery code", IP: ip, UserID: &u.ID, Actor: u.Email}
		if err := a.store.Audit(ctx, e); err != nil {
			return err
		}
	}
	if err := signIn(a.app, c, u); err != nil {
		return err
	}
	if how == "recovery" {
		left, err := a.store.RecoveryCodesLeft(ctx, u.ID)
		if err != nil {
			return err
		}
		a.flash(c, "Signed in with a recovery code; "+itoa(left)+" left. Make new ones under Settings → Two-factor if you are running low.")
	}
	return c.Redirect(http.StatusSeeOther, "/")
}

// checkSecondFactor accepts a current TOTP code (once) or an unused
// recovery code, and says which it was.
func (a *accountPages) checkSecondFactor(c echo.Context, u *models.User, code string) (string, error) {
	ctx := c.Request().Context()
	code = strings.TrimSpace(code)
	if len(strings.ReplaceAll(code, " ", "")) == 6 {
		secret, err := a.store.TOTPSecret(u, a.cfg.Secret)
		if errors.Is(err, models.ErrBadSecret) {
			return "", &userError{http.StatusConflict, "conflict", "Your two-factor secret cannot be opened with this server's secret (it was changed). Sign in with a recovery code, or ask an admin to reset your two-factor sign-in.", nil}
		} else if err != nil {
			return "", err
		}
		step, ok := matchTOTP(secret, code, time.Now())
		if !ok {
			return "", models.ErrBadCode
		}
		return "totp", a.store.UseTOTPStep(ctx, u.ID, step)
	}
	if code == "" {
		return "", models.ErrBadCode
	}
	return "recovery", a.store.UseRecoveryCode(ctx, u.ID, code)
}

// securityView is the signed-in user's two-factor state.
func (a *accountPages) securityView(c echo.Context, u *models.User) (views.SecurityView, error) {
	ctx := c.Request().Context()
	req, err := a.store.Setting(ctx, models.SettingRequire2FA)
	if err != nil {
		return views.SecurityView{}, err
	}
	v := views.SecurityView{Enabled: u.TwoFactor(), Required: req == "on"}
	if v.Enabled {
		v.CodesLeft, err = a.store.RecoveryCodesLeft(ctx, u.ID)
		return v, err
	}
	if u.TOTPSecret == "" {
		return v, nil
	}
	secret, err := a.store.TOTPSecret(u, a.cfg.Secret)
	if errors.Is(err, models.ErrBadSecret) {
		// Sealed under a server secret since replaced: start again.
		v.Error = "The setup you began cannot be read any more (the server secret changed). Set it up again."
		return v, nil
	} else if err != nil {
		return v, err
	}
	key, err := otp.NewKeyFromURL(totpURI(a.issuer(c), u.Email, secret))
	if err != nil {
		return v, err
	}
	img, err := key.Image(200, 200)
	if err != nil {
		return v, err
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return v, err
	}
	v.Pending, v.Secret, v.URI = true, secret, key.URL()
	v.QR = "data:image/png;base64," + base64.StdEncoding.EncodeToString(buf.Bytes())
	return v, nil
}

func (a *accountPages) issuer(c echo.Context) string {
	org, _ := a.store.Setting(c.Request().Context(), models.SettingOrgName)
	if org == "" {
		return "Herald"
	}
	return "Herald (" + org + ")"
}

// totpURI is the otpauth:// URI of a secret, as authenticator apps read
// it from the QR code (the shape totp.Generate writes).
func totpURI(issuer, account, secret string) string {
	v := url.Values{}
	v.Set("secret", secret)
	v.Set("issuer", issuer)
	v.Set("period", "30")
	v.Set("digits", "6")
	v.Set("algorithm", "SHA1")
	u := url.URL{Scheme: "otpauth", Host: "totp", Path: "/" + issuer + ":" + account, RawQuery: v.Encode()}
	return u.String()
}

func (a *accountPages) securityPage(c echo.Context) error {
	v, err := a.securityView(c, currentUser(c))
	if err != nil {
		return err
	}
	return a.render(c, 200, views.SecurityPage(a.page(c, "Two-factor sign-in", "settings"), v))
}

// setup2FA makes a new secret for the user to confirm.
func (a *accountPages) setup2FA(c echo.Context) error {
	u := currentUser(c)
	if u.TwoFactor() {
		a.flash(c, "Two-factor sign-in is on already.")
		return seeOther(c, "/settings/security")
	}
	key, err := totp.Generate(totp.GenerateOpts{Issuer: a.issuer(c), AccountName: u.Email})
	if err != nil {
		return err
	}
	if err := a.store.SetPendingTOTP(c.Request().Context(), u.ID, key.Secret(), a.cfg.Secret); err != nil {
		return err
	}
	return seeOther(c, "/settings/security")
}

// confirm2FA turns two-factor sign-in on once the user proves their app
// shows the right code, and shows the recovery codes once.
func (a *accountPages) confirm2FA(c echo.Context) error {
	ctx := c.Request().Context()
	u := currentUser(c)
	v, err := a.securityView(c, u)
	if err != nil {
		return err
	}
	if !v.Pending {
		return seeOther(c, "/settings/security")
	}
	step, ok := matchTOTP(v.Secret, c.FormValue("code"), time.Now())
	if !ok {
		v.Error = "That code does not match. Check the time on your phone, and enter the 6 digits the app shows now."
		return a.render(c, http.StatusUnprocessableEntity, views.SecurityPage(a.page(c, "Two-factor sign-in", "settings"), v))
	}
	t, err := a.store.Begin(ctx)
	if err != nil {
		return err
	}
	defer t.End()
	codes, err := a.store.EnableTOTP(t.Ctx(), u.ID, step)
	if err != nil {
		return err
	}
	if err := t.Commit(a.auditEntry(c, "2fa.enable", "user", itoa(u.ID), "two-factor sign-in turned on")); err != nil {
		return err
	}
	now := time.Now()
	u.TOTPEnabledAt = &now
	v, err = a.securityView(c, u)
	if err != nil {
		return err
	}
	v.RecoveryCodes = codes
	p := a.page(c, "Two-factor sign-in", "settings")
	p.Flash = "Two-factor sign-in is on. Save your recovery codes now."
	return a.render(c, 200, views.SecurityPage(p, v))
}

// newRecoveryCodes replaces the user's recovery codes.
func (a *accountPages) newRecoveryCodes(c echo.Context) error {
	u := currentUser(c)
	if !u.TwoFactor() {
		return seeOther(c, "/settings/security")
	}
	ctx := c.Request().Context()
	t, err := a.store.Begin(ctx)
	if err != nil {
		return err
	}
	defer t.End()
	codes, err := a.store.NewRecoveryCodes(t.Ctx(), u.ID)
	if err != nil {
		return err
	}
	if err := t.Commit(a.auditEntry(c, "2fa.recovery_codes", "user", itoa(u.ID), "new recovery codes; the old ones no longer work")); err != nil {
		return err
	}
	v, err := a.securityView(c, u)
	if err != nil {
		return err
	}
	v.RecoveryCodes = codes
	return a.render(c, 200, views.SecurityPage(a.page(c, "Two-factor sign-in", "settings"), v))
}

// disable2FA turns the user's own two-factor sign-in off, with a current
// code as proof; not while an admin requires it.
func (a *accountPages) disable2FA(c echo.Context) error {
	ctx := c.Request().Context()
	u := currentUser(c)
	v, err := a.securityView(c, u)
	if err != nil {
		return err
	}
	if !v.Enabled {
		return seeOther(c, "/settings/security")
	}
	if v.Required {
		return forbidden("An admin requires two-factor sign-in for every account, so it cannot be turned off.")
	}
	if _, err := a.checkSecondFactor(c, u, c.FormValue("code")); errors.Is(err, models.ErrBadCode) {
		v.Error = "That code is wrong or already used. Enter the current code from your app, or a recovery code."
		return a.render(c, http.StatusUnprocessableEntity, views.SecurityPage(a.page(c, "Two-factor sign-in", "settings"), v))
	} else if err != nil {
		return err
	}
	t, err := a.store.Begin(ctx)
	if err != nil {
		return err
	}
	defer t.End()
	if err := a.store.DisableTOTP(t.Ctx(), u.ID); err != nil {
		return err
	}
	if err := t.Commit(a.auditEntry(c, "2fa.disable", "user", itoa(u.ID), "two-factor sign-in turned off by its owner")); err != nil {
		return err
	}
	a.flash(c, "Two-factor sign-in is off.")
	return seeOther(c, "/settings/security")
}

// reset2FA is an admin turning someone's two-factor sign-in off (a lost
// phone and lost recovery codes).
func (a *accountPages) reset2FA(c echo.Context) error {
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	target, err := a.store.User(ctx, id)
	if errors.Is(err, models.ErrNotFound) {
		return notFoundErr("There is no such user.")
	} else if err != nil {
		return err
	}
	t, err := a.store.Begin(ctx)
	if err != nil {
		return err
	}
	defer t.End()
	if err := a.store.DisableTOTP(t.Ctx(), id); err != nil {
		return err
	}
	if err := t.Commit(a.auditEntry(c, "2fa.reset", "user", itoa(id), "two-factor sign-in of "+target.Email+" reset by an admin")); err != nil {
		return err
	}
	a.flash(c, "Two-factor sign-in of "+target.Email+" is off; they can set it up again after signing in with their password.")
	return seeOther(c, "/settings/users")
}

// save2FAPolicy turns the requirement of two-factor sign-in on or off.
func (a *accountPages) save2FAPolicy(c echo.Context) error {
	ctx := c.Request().Context()
	val := ""
	if c.FormValue("require") == "on" {
		val = "on"
	}
	before, err := a.store.Setting(ctx, models.SettingRequire2FA)
	if err != nil {
		return err
	}
	if before != val {
		t, err := a.store.Begin(ctx)
		if err != nil {
			return err
		}
		defer t.End()
		if err := a.store.SetSetting(t.Ctx(), models.SettingRequire2FA, val); err != nil {
			return err
		}
		summary := "two-factor sign-in no longer required"
		if val == "on" {
			summary = "two-factor sign-in required for every user"
		}
		if err := t.Commit(a.auditEntry(c, "2fa.policy", "setting", models.SettingRequire2FA, summary)); err != nil {
			return err
		}
	}
	if val == "on" {
		a.flash(c, "Two-factor sign-in is now required: users without it set it up after signing in.")
	} else {
		a.flash(c, "Two-factor sign-in is optional.")
	}
	return seeOther(c, "/settings/users")
}

// require2FA sends a signed-in user without two-factor sign-in to set it
// up when an admin requires it; only the setup pages and sign-out stay
// open to them.
func (a *app) require2FA(c echo.Context, u *models.User) (bool, error) {
	if u.TwoFactor() {
		return false, nil
	}
	if p := c.Path(); p == "/settings/security" || strings.HasPrefix(p, "/settings/security/") {
		return false, nil
	}
	req, err := a.store.Setting(c.Request().Context(), models.SettingRequire2FA)
	if err != nil || req != "on" {
		return false, err
	}
	return true, nil
}
