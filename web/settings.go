package web

import (
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/herald-mail/herald/mailer"
	"github.com/herald-mail/herald/models"
	"github.com/herald-mail/herald/views"
)

// settingsPages serves settings, users and API tokens.
type settingsPages struct{ *app }

func (s *settingsPages) settingsPage(c echo.Context) error {
	all, err := s.store.Settings(c.Request().Context())
	if err != nil {
		return err
	}
	f := views.SettingsForm{
		OrgName: all[models.SettingOrgName], PostalAddress: all[models.SettingPostalAddress],
		LogoURL: all[models.SettingLogoURL], TrackingMode: all[models.SettingTrackingMode],
		OptinFrom: all[models.SettingOptinFrom], OptinDefault: defaultOptinSender(s.cfg.RootURL),
		Spamd: s.cfg.Spamd,
	}
	if f.TrackingMode == "" {
		f.TrackingMode = models.TrackingFull
	}
	limit, action := mailer.SpamLimit(all)
	f.SpamLimit, f.SpamAction = strconv.FormatFloat(limit, 'f', -1, 64), action
	return s.render(c, 200, views.SettingsPage(s.page(c, "Settings", "settings"), f))
}

func (s *settingsPages) saveSettings(c echo.Context) error {
	ctx := c.Request().Context()
	f := views.SettingsForm{
		OrgName:       strings.TrimSpace(c.FormValue("org_name")),
		PostalAddress: strings.TrimSpace(c.FormValue("postal_address")),
		LogoURL:       strings.TrimSpace(c.FormValue("logo_url")),
		TrackingMode:  c.FormValue("tracking_mode"),
		OptinFrom:     strings.TrimSpace(c.FormValue("optin_from")),
		OptinDefault:  defaultOptinSender(s.cfg.RootURL),
		SpamLimit:     strings.TrimSpace(c.FormValue("spam_limit")),
		SpamAction:    c.FormValue("spam_action"),
		Spamd:         s.cfg.Spamd,
		Errors:        map[string]string{},
	}
	if len(f.OrgName) > 200 {
		f.Errors["org_name"] = "Keep the name under 200 characters."
	}
	if len(f.PostalAddress) > 500 {
		f.Errors["postal_address"] = "Keep the address under 500 characters."
	}
	if f.LogoURL != "" {
		if msg := logoURLError(f.LogoURL); msg != "" {
			f.Errors["logo_url"] = msg
		}
	}
	if f.TrackingMode == "" {
		f.TrackingMode = models.TrackingFull
	}
	if !slices.ContainsFunc(views.TrackingModes, func(m views.TrackingModeOption) bool { return m.Value == f.TrackingMode }) {
		f.Errors["tracking_mode"] = "Choose full, aggregate counts only, or off."
		f.TrackingMode = models.TrackingFull
	}
	if f.OptinFrom != "" {
		if e, err := models.NormalizeEmail(f.OptinFrom); err != nil {
			f.Errors["optin_from"] = err.Error() + "."
		} else {
			f.OptinFrom = e
		}
	}
	if f.SpamLimit == "" {
		f.SpamLimit = strconv.FormatFloat(mailer.DefaultSpamLimit, 'f', -1, 64)
	}
	if v, err := mailer.ParseSpamLimit(f.SpamLimit); err != nil {
		f.Errors["spam_limit"] = "Enter a score between 0.1 and 100, e.g. 3 or 5."
	} else {
		f.SpamLimit = strconv.FormatFloat(v, 'f', -1, 64)
	}
	if f.SpamAction == "" {
		f.SpamAction = mailer.SpamActionWarn
	}
	if f.SpamAction != mailer.SpamActionWarn && f.SpamAction != mailer.SpamActionBlock {
		f.Errors["spam_action"] = "Choose warn or block."
		f.SpamAction = mailer.SpamActionWarn
	}
	if len(f.Errors) > 0 {
		return s.render(c, http.StatusUnprocessableEntity, views.SettingsPage(s.page(c, "Settings", "settings"), f))
	}
	before, err := s.store.Settings(ctx)
	if err != nil {
		return err
	}
	t, err := s.store.Begin(ctx)
	if err != nil {
		return err
	}
	defer t.End()
	var entries []models.AuditEntry
	for k, v := range map[string]string{
		models.SettingOrgName: f.OrgName, models.SettingPostalAddress: f.PostalAddress, models.SettingLogoURL: f.LogoURL,
		models.SettingTrackingMode: f.TrackingMode, models.SettingOptinFrom: f.OptinFrom,
		mailer.SettingSpamLimit: f.SpamLimit, mailer.SettingSpamAction: f.SpamAction,
	} {
		if before[k] == v {
			continue
		}
		if before[k] == "" && ((k == mailer.SettingSpamLimit && f.SpamLimit == strconv.FormatFloat(mailer.DefaultSpamLimit, 'f', -1, 64)) ||
			(k == mailer.SettingSpamAction && v == mailer.SpamActionWarn)) {
			continue // the defaults, unchanged: nothing to store or audit
		}
		if err := s.store.SetSetting(t.Ctx(), k, v); err != nil {
			return err
		}
		entries = append(entries, s.auditEntry(c, "settings.update", "setting", k, before[k]+" → "+v))
	}
	if err := t.Commit(entries...); err != nil {
		return err
	}
	s.flash(c, "Settings saved.")
	return seeOther(c, "/settings")
}

func (s *settingsPages) usersPage(c echo.Context) error {
	return s.renderUsers(c, 200, nil, "", models.RoleMarketer, nil)
}

func (s *settingsPages) createUser(c echo.Context) error {
	ctx := c.Request().Context()
	email, role, password := strings.TrimSpace(c.FormValue("email")), c.FormValue("role"), c.FormValue("password")
	errs := models.ValidateNewUser(email, password, role)
	if len(errs) == 0 {
		t, err := s.store.Begin(ctx)
		if err != nil {
			return err
		}
		defer t.End()
		u, err := s.store.CreateUser(t.Ctx(), email, "", password, role)
		if err == nil {
			err = t.Commit(s.auditEntry(c, "user.create", "user", itoa(u.ID), u.Email+" as "+role))
		}
		switch {
		case errors.Is(err, models.ErrConflict):
			errs["email"] = "There is already an account with this email."
		case err != nil:
			return err
		default:
			s.flash(c, "User added. Give them their password through a safe channel.")
			return seeOther(c, "/settings/users")
		}
	}
	return s.renderUsers(c, http.StatusUnprocessableEntity, errs, email, role, nil)
}

func (s *settingsPages) setUserRole(c echo.Context) error {
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	role := c.FormValue("role")
	if !models.RoleAtLeast(role, models.RoleViewer) {
		return badRequest("Choose admin, marketer or viewer.")
	}
	if err := s.store.SetUserRole(s.audited(c, "user.role", "user", "→ "+role, &id), id, role); err != nil {
		return err
	}
	s.flash(c, "Role changed.")
	return seeOther(c, "/settings/users")
}

func (s *settingsPages) deleteUser(c echo.Context) error {
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	if id == currentUser(c).ID {
		return badRequest("You cannot remove your own account.")
	}
	if err := s.store.DeleteUser(s.audited(c, "user.delete", "user", "", &id), id); err != nil {
		return err
	}
	s.flash(c, "User removed.")
	return seeOther(c, "/settings/users")
}

func (s *settingsPages) tokensPage(c echo.Context) error {
	return s.renderTokens(c, "")
}

func (s *settingsPages) renderTokens(c echo.Context, fresh string) error {
	toks, err := s.store.APITokens(c.Request().Context(), currentUser(c).ID)
	if err != nil {
		return err
	}
	return s.render(c, 200, views.TokensPage(s.page(c, "API tokens", "settings"), toks, fresh))
}

func (s *settingsPages) createToken(c echo.Context) error {
	name := strings.TrimSpace(c.FormValue("name"))
	if name == "" || len(name) > 100 {
		return unprocessable("Give the token a name of up to 100 characters, so you know later what uses it.", nil)
	}
	tx, err := s.store.Begin(c.Request().Context())
	if err != nil {
		return err
	}
	defer tx.End()
	plain, t, err := s.store.CreateAPIToken(tx.Ctx(), currentUser(c).ID, name)
	if err != nil {
		return err
	}
	if err := tx.Commit(s.auditEntry(c, "token.create", "api_token", itoa(t.ID), name)); err != nil {
		return err
	}
	return s.renderTokens(c, plain)
}

func (s *settingsPages) deleteToken(c echo.Context) error {
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	t, err := s.store.Begin(c.Request().Context())
	if err != nil {
		return err
	}
	defer t.End()
	if err := s.store.DeleteAPIToken(t.Ctx(), currentUser(c).ID, id); err != nil {
		return err
	}
	if err := t.Commit(s.auditEntry(c, "token.delete", "api_token", itoa(id), "")); err != nil {
		return err
	}
	s.flash(c, "Token revoked.")
	return seeOther(c, "/settings/tokens")
}
