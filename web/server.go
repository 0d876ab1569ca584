// Package web serves Herald's dashboard, JSON API and public pages.
package web

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/alexedwards/scs/v2"
	"github.com/labstack/echo/v4"

	"github.com/herald-mail/herald/internal/config"
	"github.com/herald-mail/herald/models"
)

// Server holds what the handlers need: configuration, the store, sessions
// and the logger.
type Server struct {
	cfg      *config.Config
	store    *models.Store
	sessions *scs.SessionManager
	log      *slog.Logger
	limiter  *loginLimiter
	imports  *importRunner
	echo     *echo.Echo
}

// New builds the server and its routes.
func New(cfg *config.Config, store *models.Store, log *slog.Logger) *Server {
	sm := scs.New()
	sm.Store = store.Sessions()
	sm.Lifetime = 12 * time.Hour
	sm.IdleTimeout = 2 * time.Hour
	sm.Cookie.Name = "herald_session"
	sm.Cookie.HttpOnly = true
	sm.Cookie.SameSite = http.SameSiteLaxMode
	sm.Cookie.Secure = strings.HasPrefix(cfg.RootURL, "https://")
	s := &Server{
		cfg:      cfg,
		store:    store,
		sessions: sm,
		log:      log,
		limiter:  newLoginLimiter(),
		imports:  newImportRunner(store, log),
	}
	s.echo = s.routes()
	return s
}

// ServeHTTP makes the server an http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.echo.ServeHTTP(w, r) }

// Shutdown waits for running imports to stop after ctx's cancellation.
func (s *Server) Shutdown(ctx context.Context) { s.imports.Wait(ctx) }
