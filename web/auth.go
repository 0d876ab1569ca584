package web

import (
	"errors"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/herald-mail/herald/models"
	"github.com/herald-mail/herald/views"
)

// authPages serves sign-in, first-run setup and sign-out.
type authPages struct{ *app }

func csrfToken(c echo.Context) string {
	t, _ := c.Get(ctxCSRF).(string)
	return t
}

// loginPage shows the sign-in form, or the first-admin setup form while no
// account exists.
func (s *authPages) loginPage(c echo.Context) error {
	if currentUser(c) != nil {
		return c.Redirect(http.StatusSeeOther, "/")
	}
	n, err := s.store.UserCount(c.Request().Context())
	if err != nil {
		return err
	}
	if n == 0 {
		return s.render(c, 200, views.Setup(csrfToken(c), views.LoginForm{}))
	}
	return s.render(c, 200, views.Login(csrfToken(c), views.LoginForm{Notice: s.sessions.PopString(c.Request().Context(), "flash")}))
}

func (s *authPages) setup(c echo.Context) error {
	ctx := c.Request().Context()
	f := views.LoginForm{Email: strings.TrimSpace(c.FormValue("email")), Name: strings.TrimSpace(c.FormValue("name"))}
	password := c.FormValue("password")
	if f.Errors = models.ValidateNewUser(f.Email, password, models.RoleAdmin); len(f.Errors) > 0 {
		return s.render(c, http.StatusUnprocessableEntity, views.Setup(csrfToken(c), f))
	}
	chg, err := s.store.Begin(ctx)
	if err != nil {
		return err
	}
	defer chg.End()
	u, err := s.store.CreateFirstAdmin(chg.Ctx(), f.Email, f.Name, password)
	if errors.Is(err, models.ErrConflict) {
		// Someone finished setup first: the form is gone for good.
		return forbidden("Herald is already set up. Sign in with your account, or ask an admin to invite you.")
	}
	if err != nil {
		return err
	}
	if err := chg.Commit(s.auditEntry(c, "user.setup", "user", itoa(u.ID), "first admin "+u.Email)); err != nil {
		return err
	}
	if err := signIn(s.app, c, u); err != nil {
		return err
	}
	s.flash(c, "Welcome! Start by creating a list, then add or import subscribers.")
	return c.Redirect(http.StatusSeeOther, "/")
}

func (s *authPages) login(c echo.Context) error {
	ctx := c.Request().Context()
	f := views.LoginForm{Email: strings.TrimSpace(c.FormValue("email"))}
	ip := c.RealIP()
	if !s.limiter.Allowed(ip, f.Email) {
		f.Error = "Too many failed attempts. Wait 15 minutes and try again, or ask an admin to reset your password."
		return s.render(c, http.StatusTooManyRequests, views.Login(csrfToken(c), f))
	}
	u, err := s.store.Authenticate(ctx, f.Email, c.FormValue("password"))
	if errors.Is(err, models.ErrBadCredentials) {
		s.limiter.Fail(ip, f.Email)
		s.log.Info("login failed", "email", f.Email, "ip", ip)
		f.Error = "Wrong email or password."
		return s.render(c, http.StatusUnauthorized, views.Login(csrfToken(c), f))
	}
	if err != nil {
		return err
	}
	if u.TwoFactor() {
		// The password was right; the session stays signed out until the
		// second factor is (secondFactor).
		return startSecondFactor(s.app, c, u)
	}
	if err := signIn(s.app, c, u); err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, "/")
}

func (s *authPages) logout(c echo.Context) error {
	if err := s.sessions.Destroy(c.Request().Context()); err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, "/login")
}
