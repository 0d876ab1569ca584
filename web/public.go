package web

import (
	"context"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/herald-mail/herald/internal/token"
	"github.com/herald-mail/herald/mailer"
	"github.com/herald-mail/herald/models"
	"github.com/herald-mail/herald/views"
)

// publicPages serves what subscribers see without an account: the subscribe
// form, the double opt-in confirmation and the preference centre.
type publicPages struct {
	store   *models.Store
	mailer  *mailer.Engine
	keys    *token.Keyring
	root    string // public base URL, no trailing slash
	log     *slog.Logger
	signups *loginLimiter // sign-up attempts per IP
}

// signupsPerMinute is how many sign-ups one IP may post per minute.
const signupsPerMinute = 10

// newPublicPages serves the subscriber's public pages (their routes are
// in routeTable): no session, no CSRF.
func (s *app) newPublicPages() *publicPages {
	signups := newLoginLimiter()
	signups.window = time.Minute
	return &publicPages{store: s.store, mailer: s.mailer, keys: s.tracking.keys, root: s.cfg.RootURL, log: s.log, signups: signups}
}

// brandOf reads the organisation's name and logo for public pages. A
// missing setting, or one that fails to load, only leaves the page plain.
func brandOf(ctx context.Context, store *models.Store) views.Brand {
	all, err := store.Settings(ctx)
	if err != nil {
		return views.Brand{}
	}
	b := views.Brand{OrgName: all[models.SettingOrgName]}
	if logo := all[models.SettingLogoURL]; logo != "" && logoURLError(logo) == "" {
		b.LogoURL = logo
	}
	return b
}

// logoURLError returns what is wrong with a logo address, "" when it may be
// shown: an absolute https URL without credentials.
func logoURLError(raw string) string {
	u, err := url.Parse(raw)
	switch {
	case err != nil || strings.ContainsAny(raw, " \t\r\n\"'<>"):
		return "This is not a valid web address."
	case u.Scheme != "https" || u.Host == "":
		return "Use an https:// address, e.g. https://example.com/logo.png (plain http would show a security warning)."
	case u.User != nil:
		return "Leave user names and passwords out of the address."
	case len(raw) > 1000:
		return "Keep the address under 1000 characters."
	}
	return ""
}

// take counts one attempt under key and reports whether it is within limit
// for the limiter's window.
func (l *loginLimiter) take(key string, limit int) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.recent(key) >= limit {
		return false
	}
	l.failures[key] = append(l.failures[key], l.now())
	return true
}

// subscriberEvidence is the evidence of a change a subscriber makes on a
// public page.
func subscriberEvidence(c echo.Context, source, page string) models.Evidence {
	return models.Evidence{Source: source, IP: c.RealIP(), UserAgent: c.Request().UserAgent(), Page: page, Actor: "subscriber"}
}
