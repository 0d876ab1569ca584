package web

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/herald-mail/herald/internal/token"
	"github.com/herald-mail/herald/mailer"
	"github.com/herald-mail/herald/models"
	"github.com/herald-mail/herald/views"
)

// Default lifetimes of account links (config.Config's zero values).
const (
	defaultResetTTL  = time.Hour
	defaultInviteTTL = 7 * 24 * time.Hour
)

// accountPages serves invitations, password resets and two-factor
// sign-in (twofactor.go).
type accountPages struct {
	*app
	keys *token.Keyring
	root string
}

func (s *Server) newAccountPages() *accountPages {
	return &accountPages{app: s.app, keys: s.tracking.keys, root: s.cfg.RootURL}
}

// linkSigner signs a link's row id with a random nonce: the row keeps the
// hash of the whole token, so each issued link is unique.
func (a *accountPages) linkSigner(kind token.Kind) models.LinkSigner {
	return func(id int64) string {
		var b [8]byte
		rand.Read(b[:])
		return a.keys.Sign(kind, id, int64(binary.BigEndian.Uint64(b[:])>>1))
	}
}

// linkRow verifies a link's signature and returns the row id it names.
func (a *accountPages) linkRow(c echo.Context, kind token.Kind) (int64, bool) {
	ids, err := a.keys.Verify(c.Param("token"), kind, 2)
	if err != nil {
		return 0, false
	}
	return ids[0], true
}

// sendAccountMail queues one of Herald's own account emails through the
// transactional path, as confirmations are sent (so it lands in the
// outbox under the capture transport).
func (a *accountPages) sendAccountMail(ctx context.Context, tmpl, to string, data map[string]any, override bool) error {
	if _, err := a.store.EnsureAccountTemplate(ctx, tmpl); err != nil {
		return err
	}
	from, err := a.store.Setting(ctx, models.SettingOptinFrom)
	if err != nil {
		return err
	}
	if from == "" {
		from = defaultOptinSender(a.root)
	}
	org, err := a.store.Setting(ctx, models.SettingOrgName)
	if err != nil {
		return err
	}
	_, err = a.mailer.SendTransactional(ctx, mailer.TransactionalRequest{
		Template: tmpl, To: to, From: from, FromName: firstNonEmpty(org, "Herald"), Data: data, OverrideSuppression: override,
	})
	return err
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

func ttlOr(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// accountsView is the Users page's invitations and policy.
func (a *accountPages) accountsView(ctx context.Context) (views.AccountsView, error) {
	inv, err := a.store.PendingInvitations(ctx)
	if err != nil {
		return views.AccountsView{}, err
	}
	req, err := a.store.Setting(ctx, models.SettingRequire2FA)
	if err != nil {
		return views.AccountsView{}, err
	}
	return views.AccountsView{Invitations: inv, Require2FA: req == "on", Role: models.RoleMarketer}, nil
}

// renderUsers renders the Users page with the invitation form's state.
func (a *app) renderUsers(c echo.Context, status int, errs map[string]string, email, role string, acc *views.AccountsView) error {
	ctx := c.Request().Context()
	users, err := a.store.Users(ctx)
	if err != nil {
		return err
	}
	if acc == nil {
		v, err := (&accountPages{app: a}).accountsView(ctx)
		if err != nil {
			return err
		}
		acc = &v
	}
	return a.render(c, status, views.UsersPage(a.page(c, "Users", "settings"), users, currentUser(c).ID, errs, email, role, *acc))
}

// invite emails an invitation with a role (admins, Settings → Users).
func (a *accountPages) invite(c echo.Context) error {
	ctx := c.Request().Context()
	email, role := strings.TrimSpace(c.FormValue("email")), c.FormValue("role")
	errs := map[string]string{}
	for k, v := range models.ValidateInvitation(email, role) {
		errs["invite_"+k] = v
	}
	if len(errs) == 0 {
		me := currentUser(c)
		ttl := ttlOr(a.cfg.InviteLinkTTL, defaultInviteTTL)
		t, err := a.store.Begin(ctx)
		if err != nil {
			return err
		}
		defer t.End()
		inv, tok, err := a.store.CreateInvitation(t.Ctx(), email, role, firstNonEmpty(me.Name, me.Email), ttl, a.linkSigner(token.Invite))
		if err == nil {
			err = a.sendAccountMail(t.Ctx(), models.InvitationTemplate, inv.Email, map[string]any{
				"invite_url": a.root + "/invite/" + tok, "role": inv.Role, "invited_by": inv.InvitedBy,
				"expires": inv.ExpiresAt.UTC().Format("2006-01-02 15:04 UTC"),
			}, false)
		}
		if err == nil {
			err = t.Commit(a.auditEntry(c, "invitation.create", "invitation", itoa(inv.ID), inv.Email+" as "+inv.Role))
		}
		switch {
		case errors.Is(err, models.ErrConflict):
			errs["invite_email"] = "There is already an account with this email."
		case errors.Is(err, mailer.ErrInvalidRequest):
			errs["invite_email"] = "Herald cannot write to this address: " + err.Error()
		case err != nil:
			return err
		default:
			a.flash(c, "Invitation sent to "+inv.Email+".")
			return seeOther(c, "/settings/users")
		}
	}
	acc, err := a.accountsView(ctx)
	if err != nil {
		return err
	}
	acc.Errors, acc.Email, acc.Role = errs, email, role
	return a.renderUsers(c, http.StatusUnprocessableEntity, nil, "", models.RoleMarketer, &acc)
}

func (a *accountPages) revokeInvite(c echo.Context) error {
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	t, err := a.store.Begin(ctx)
	if err != nil {
		return err
	}
	defer t.End()
	inv, err := a.store.RevokeInvitation(t.Ctx(), id)
	switch {
	case errors.Is(err, models.ErrNotFound):
		return notFoundErr("There is no such invitation.")
	case errors.Is(err, models.ErrLinkUsed):
		a.flash(c, "This invitation was already accepted or withdrawn.")
		return seeOther(c, "/settings/users")
	case err != nil:
		return err
	}
	if err := t.Commit(a.auditEntry(c, "invitation.revoke", "invitation", itoa(id), inv.Email)); err != nil {
		return err
	}
	a.flash(c, "Invitation to "+inv.Email+" withdrawn; its link no longer works.")
	return seeOther(c, "/settings/users")
}

// linkProblem answers a link that cannot be used, saying why and what to
// do; a link that is not one of ours reads as not found.
func (a *accountPages) linkProblem(c echo.Context, err error, kind string) error {
	var title, msg, href, action string
	if kind == "invite" {
		title, href, action = "This invitation cannot be used", "/login", "Go to sign in"
		switch {
		case errors.Is(err, models.ErrLinkUsed):
			msg = "This invitation was already accepted. Sign in with the password chosen then, or use “Forgot password?” on the sign-in page."
		case errors.Is(err, models.ErrLinkRevoked):
			msg = "This invitation was withdrawn, or replaced by a newer one. Use the newest invitation email, or ask an admin to invite you again."
		case errors.Is(err, models.ErrLinkExpired):
			msg = "This invitation has expired. Ask an admin to invite you again."
		default:
			msg = "This invitation link is not valid. If you copied it from an email, check that you copied all of it."
		}
	} else {
		title, href, action = "This reset link cannot be used", "/forgot", "Ask for a new link"
		switch {
		case errors.Is(err, models.ErrLinkUsed):
			msg = "This password reset link was already used, or a newer one was sent. Each link works once: ask for a new one if you still need it."
		case errors.Is(err, models.ErrLinkExpired):
			msg = "This password reset link has expired. Ask for a new one."
		default:
			msg = "This password reset link is not valid. If you copied it from an email, check that you copied all of it, or ask for a new one."
		}
	}
	status := http.StatusGone
	if !errors.Is(err, models.ErrLinkUsed) && !errors.Is(err, models.ErrLinkRevoked) && !errors.Is(err, models.ErrLinkExpired) {
		status = http.StatusNotFound
	}
	return a.render(c, status, views.LinkProblem(title, msg, href, action))
}

func isLinkError(err error) bool {
	for _, e := range []error{models.ErrNotFound, models.ErrLinkUsed, models.ErrLinkRevoked, models.ErrLinkExpired} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// invitePage shows an invitation's form. Opening it changes nothing.
func (a *accountPages) invitePage(c echo.Context) error {
	id, ok := a.linkRow(c, token.Invite)
	if !ok {
		return a.linkProblem(c, models.ErrNotFound, "invite")
	}
	inv, err := a.store.Invitation(c.Request().Context(), id, c.Param("token"))
	if isLinkError(err) {
		return a.linkProblem(c, err, "invite")
	} else if err != nil {
		return err
	}
	if currentUser(c) != nil {
		// Someone else's session in this browser must not stay signed in
		// under the account being created.
		if err := a.sessions.Destroy(c.Request().Context()); err != nil {
			return err
		}
		return c.Redirect(http.StatusSeeOther, c.Request().URL.Path)
	}
	return a.render(c, 200, views.InvitePage(csrfToken(c), views.NewPasswordForm{Action: c.Request().URL.Path, Email: inv.Email, Role: inv.Role}))
}

// acceptInvite creates the invited account and signs it in.
func (a *accountPages) acceptInvite(c echo.Context) error {
	id, ok := a.linkRow(c, token.Invite)
	if !ok {
		return a.linkProblem(c, models.ErrNotFound, "invite")
	}
	ctx := c.Request().Context()
	tok := c.Param("token")
	inv, err := a.store.Invitation(ctx, id, tok)
	if isLinkError(err) {
		return a.linkProblem(c, err, "invite")
	} else if err != nil {
		return err
	}
	f := views.NewPasswordForm{Action: c.Request().URL.Path, Email: inv.Email, Role: inv.Role, Name: strings.TrimSpace(c.FormValue("name"))}
	password := c.FormValue("password")
	f.Errors = models.ValidateNewUser(inv.Email, password, inv.Role)
	if len(f.Name) > 200 {
		f.Errors["name"] = "Keep the name under 200 characters."
	}
	if len(f.Errors) > 0 {
		return a.render(c, http.StatusUnprocessableEntity, views.InvitePage(csrfToken(c), f))
	}
	t, err := a.store.Begin(ctx)
	if err != nil {
		return err
	}
	defer t.End()
	u, err := a.store.AcceptInvitation(t.Ctx(), id, tok, f.Name, password)
	if errors.Is(err, models.ErrConflict) {
		return a.render(c, http.StatusConflict, views.LinkProblem("This invitation cannot be used",
			"There is already an account with "+inv.Email+". Sign in with it, or use “Forgot password?”.", "/login", "Go to sign in"))
	}
	if isLinkError(err) {
		return a.linkProblem(c, err, "invite")
	} else if err != nil {
		return err
	}
	e := a.auditEntry(c, "invitation.accept", "user", itoa(u.ID), u.Email+" as "+u.Role+" (invitation "+itoa(id)+")")
	e.UserID, e.Actor = &u.ID, u.Email
	if err := t.Commit(e); err != nil {
		return err
	}
	if err := signIn(a.app, c, u); err != nil {
		return err
	}
	a.flash(c, "Welcome to Herald, your account is ready.")
	return c.Redirect(http.StatusSeeOther, "/")
}

// resetLimiter counts reset requests per IP and per address: a mailbox
// must not be flooded, nor the form used to probe at speed.
func newResetLimiter() *loginLimiter {
	return &loginLimiter{failures: map[string][]time.Time{}, window: time.Hour, perIP: 20, perUser: 3, now: time.Now}
}

func (a *accountPages) forgotPage(c echo.Context) error {
	return a.render(c, 200, views.ForgotPage(csrfToken(c), views.ForgotForm{}))
}

// forgot mails a reset link when the address has an account, and answers
// the same whether it has one or not.
func (a *accountPages) forgot(c echo.Context) error {
	ctx := c.Request().Context()
	f := views.ForgotForm{Email: strings.TrimSpace(c.FormValue("email"))}
	if _, err := models.NormalizeEmail(f.Email); err != nil {
		f.Error = "Enter the email address you sign in with (" + err.Error() + ")."
		return a.render(c, http.StatusUnprocessableEntity, views.ForgotPage(csrfToken(c), f))
	}
	ip := c.RealIP()
	if !a.resets.Allowed(ip, f.Email) {
		f.Error = "Too many reset requests for this address or from your network. Wait an hour and try again, or ask an admin."
		return a.render(c, http.StatusTooManyRequests, views.ForgotPage(csrfToken(c), f))
	}
	a.resets.Fail(ip, f.Email)
	f.Sent = true
	u, err := a.store.UserByEmail(ctx, f.Email)
	if errors.Is(err, models.ErrNotFound) {
		a.log.Info("password reset for an unknown address", "email", f.Email, "ip", ip)
		return a.render(c, 200, views.ForgotPage(csrfToken(c), f))
	} else if err != nil {
		return err
	}
	ttl := ttlOr(a.cfg.ResetLinkTTL, defaultResetTTL)
	t, err := a.store.Begin(ctx)
	if err != nil {
		return err
	}
	defer t.End()
	tok, err := a.store.CreatePasswordReset(t.Ctx(), u.ID, ip, ttl, a.linkSigner(token.Reset))
	if err != nil {
		return err
	}
	err = a.sendAccountMail(t.Ctx(), models.PasswordResetTemplate, u.Email, map[string]any{
		"reset_url": a.root + "/reset/" + tok, "forgot_url": a.root + "/forgot",
		"expires": time.Now().Add(ttl).UTC().Format("2006-01-02 15:04 UTC"),
	}, true)
	if err != nil {
		return err
	}
	e := a.auditEntry(c, "password.reset_request", "user", itoa(u.ID), "reset link emailed to "+u.Email)
	if err := t.Commit(e); err != nil {
		return err
	}
	return a.render(c, 200, views.ForgotPage(csrfToken(c), f))
}

func (a *accountPages) resetPage(c echo.Context) error {
	id, ok := a.linkRow(c, token.Reset)
	if !ok {
		return a.linkProblem(c, models.ErrNotFound, "reset")
	}
	u, err := a.store.PasswordResetUser(c.Request().Context(), id, c.Param("token"))
	if isLinkError(err) {
		return a.linkProblem(c, err, "reset")
	} else if err != nil {
		return err
	}
	return a.render(c, 200, views.ResetPage(csrfToken(c), views.NewPasswordForm{Action: c.Request().URL.Path, Email: u.Email}))
}

// reset sets the new password, ends the user's sessions and sends them to
// sign in (with their second factor, when they have one).
func (a *accountPages) reset(c echo.Context) error {
	id, ok := a.linkRow(c, token.Reset)
	if !ok {
		return a.linkProblem(c, models.ErrNotFound, "reset")
	}
	ctx := c.Request().Context()
	tok := c.Param("token")
	u, err := a.store.PasswordResetUser(ctx, id, tok)
	if isLinkError(err) {
		return a.linkProblem(c, err, "reset")
	} else if err != nil {
		return err
	}
	f := views.NewPasswordForm{Action: c.Request().URL.Path, Email: u.Email, Errors: map[string]string{}}
	password := c.FormValue("password")
	if errs := models.ValidateNewUser(u.Email, password, u.Role); errs["password"] != "" {
		f.Errors["password"] = errs["password"]
	} else if c.FormValue("password2") != password {
		f.Errors["password2"] = "The two passwords differ; type the same one twice."
	}
	if len(f.Errors) > 0 {
		return a.render(c, http.StatusUnprocessableEntity, views.ResetPage(csrfToken(c), f))
	}
	t, err := a.store.Begin(ctx)
	if err != nil {
		return err
	}
	defer t.End()
	u, err = a.store.ResetPassword(t.Ctx(), id, tok, password)
	if isLinkError(err) {
		return a.linkProblem(c, err, "reset")
	} else if err != nil {
		return err
	}
	e := a.auditEntry(c, "password.reset", "user", itoa(u.ID), "password reset by email link; other sessions ended")
	e.UserID, e.Actor = &u.ID, u.Email
	if err := t.Commit(e); err != nil {
		return err
	}
	if err := a.sessions.RenewToken(ctx); err != nil {
		return err
	}
	a.sessions.Remove(ctx, "user_id")
	a.sessions.Put(ctx, "flash", "Your password is changed. Sign in with it.")
	return c.Redirect(http.StatusSeeOther, "/login")
}
