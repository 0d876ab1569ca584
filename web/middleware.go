package web

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/herald-mail/herald/internal/config"
	"github.com/herald-mail/herald/models"
	"github.com/herald-mail/herald/views"
)

const (
	ctxUser = "user"
	ctxCSRF = "csrf"
)

// currentUser is the signed-in user of a request, nil for anonymous ones.
func currentUser(c echo.Context) *models.User {
	u, _ := c.Get(ctxUser).(*models.User)
	return u
}

// loadUser puts the session's user, if any, into the context.
func (s *app) loadUser(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		ctx := c.Request().Context()
		if id := s.sessions.GetInt64(ctx, "user_id"); id != 0 {
			u, err := s.store.User(ctx, id)
			switch {
			case err == nil && u.SessionGen != s.sessions.GetInt64(ctx, "session_gen"):
				// The password was reset since this session began.
				_ = s.sessions.Destroy(ctx)
			case err == nil:
				c.Set(ctxUser, u)
			case errors.Is(err, models.ErrNotFound):
				_ = s.sessions.Destroy(ctx) // the account was deleted
			default:
				// Not a sign-out: the user exists, the database did not
				// answer (handleError says which).
				return err
			}
		}
		return next(c)
	}
}

// requireRole lets through users with at least min's power. Anonymous page
// requests are sent to the login page.
func (s *app) requireRole(min string) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			u := currentUser(c)
			if u == nil {
				if c.Request().Method == http.MethodGet {
					return c.Redirect(http.StatusSeeOther, "/login")
				}
				return echo.NewHTTPError(http.StatusUnauthorized)
			}
			if !models.RoleAtLeast(u.Role, min) {
				return forbidden("Your role (" + u.Role + ") cannot do this; ask an admin.")
			}
			if must, err := s.require2FA(c, u); err != nil {
				return err
			} else if must {
				if c.Request().Method == http.MethodGet {
					return c.Redirect(http.StatusSeeOther, "/settings/security")
				}
				return forbidden("An admin requires two-factor sign-in: set it up under Settings → Two-factor first.")
			}
			return next(c)
		}
	}
}

// requireToken authenticates API requests by bearer token and checks the
// owner's role: GET needs viewer, anything else marketer (or min).
func (s *app) requireToken(min string) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			h := c.Request().Header.Get("Authorization")
			tok, ok := strings.CutPrefix(h, "Bearer ")
			if !ok || tok == "" {
				return &userError{http.StatusUnauthorized, "unauthorized", "Send an API token in the Authorization header: \"Bearer hrld_…\". Create one under Settings → API tokens.", nil}
			}
			u, err := s.store.UserByAPIToken(c.Request().Context(), strings.TrimSpace(tok))
			if errors.Is(err, models.ErrNotFound) {
				return &userError{http.StatusUnauthorized, "unauthorized", "The API token is not valid (it may have been revoked).", nil}
			}
			if err != nil {
				return err // the token could not be checked: 503 while the database is down
			}
			need := min
			if c.Request().Method != http.MethodGet && models.RoleAtLeast(models.RoleMarketer, need) {
				need = models.RoleMarketer
			}
			if !models.RoleAtLeast(u.Role, need) {
				return forbidden("This token's user is a " + u.Role + " and cannot do this.")
			}
			c.Set(ctxUser, u)
			return next(c)
		}
	}
}

// page builds the frame data of a dashboard page.
func (s *app) page(c echo.Context, title, active string) views.Page {
	p := views.Page{Title: title, Active: active, Path: c.Request().URL.Path, RequestID: c.Response().Header().Get(echo.HeaderXRequestID)}
	if tok, ok := c.Get(ctxCSRF).(string); ok {
		p.CSRF = tok
	}
	if u := currentUser(c); u != nil {
		p.UserEmail, p.UserRole = u.Email, u.Role
	}
	p.Flash = s.sessions.PopString(c.Request().Context(), "flash")
	return p
}

// delivery is the delivery configuration in effect: the engine's, built
// from the environment over Settings → Delivery, or the server's own
// configuration when no engine says.
func (s *app) delivery() *config.Config {
	if s.mailer != nil {
		if d := s.mailer.Delivery(); d != nil {
			return d
		}
	}
	return s.cfg
}

// flash shows msg on the next page the user sees.
func (s *app) flash(c echo.Context, msg string) {
	s.sessions.Put(c.Request().Context(), "flash", msg)
}

// evidence records who made a change from the dashboard or the API.
func evidence(c echo.Context, source string) models.Evidence {
	ev := models.Evidence{Source: source, IP: c.RealIP(), UserAgent: c.Request().UserAgent()}
	if u := currentUser(c); u != nil {
		ev.Actor = u.Email
	}
	return ev
}

// audit writes an audit entry for a change made by the current user.
func (s *app) audit(c echo.Context, action, objectType, objectID, summary string) error {
	if err := s.store.Audit(c.Request().Context(), s.auditEntry(c, action, objectType, objectID, summary)); err != nil {
		s.log.Error("audit failed", "err", err, "action", action)
		return err
	}
	return nil
}

// auditEntry is an entry for the request's user and address. A handler
// that changes the database commits it with the change (models.Tx):
//
//	t, err := s.store.Begin(c.Request().Context())
//	defer t.End() // rolls back what was not committed
//	... store calls made with t.Ctx() ...
//	err = t.Commit(s.auditEntry(c, ...))
//
// so an entry that cannot be written undoes the change. s.audit is for
// actions that change nothing else (an export, a test send).
func (s *app) auditEntry(c echo.Context, action, objectType, objectID, summary string) models.AuditEntry {
	e := models.AuditEntry{Action: action, ObjectType: objectType, ObjectID: objectID, Summary: summary, IP: c.RealIP()}
	if u := currentUser(c); u != nil {
		e.UserID, e.Actor = &u.ID, u.Email
	}
	return e
}

// audited returns the request's context carrying an audit entry: the
// store change made with it writes the entry in its own transaction
// (models.WithAudit), so the change and its entry commit together.
// objectID, when not nil, is read after the change (a created row's id).
// Use it for the change alone, not for reads before it.
func (s *app) audited(c echo.Context, action, objectType, summary string, objectID *int64) context.Context {
	return models.WithAudit(c.Request().Context(), s.auditEntry(c, action, objectType, "", summary), objectID)
}

// loginLimiter counts failed sign-ins per IP and per account in a sliding
// window, so neither one address nor one account can be guessed at speed.
type loginLimiter struct {
	mu       sync.Mutex
	failures map[string][]time.Time
	window   time.Duration
	perIP    int
	perUser  int
	now      func() time.Time
}

func newLoginLimiter() *loginLimiter {
	return &loginLimiter{failures: map[string][]time.Time{}, window: 15 * time.Minute, perIP: 20, perUser: 5, now: time.Now}
}

func (l *loginLimiter) recent(key string) int {
	cut := l.now().Add(-l.window)
	ts := l.failures[key]
	i := 0
	for i < len(ts) && ts[i].Before(cut) {
		i++
	}
	ts = ts[i:]
	if len(ts) == 0 {
		delete(l.failures, key)
	} else {
		l.failures[key] = ts
	}
	return len(ts)
}

// Allowed reports whether a sign-in from ip for account may be tried now.
func (l *loginLimiter) Allowed(ip, account string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.recent("ip:"+ip) < l.perIP && l.recent("user:"+strings.ToLower(account)) < l.perUser
}

// Fail records a failed sign-in.
func (l *loginLimiter) Fail(ip, account string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	t := l.now()
	l.failures["ip:"+ip] = append(l.failures["ip:"+ip], t)
	k := "user:" + strings.ToLower(account)
	l.failures[k] = append(l.failures[k], t)
}
