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
	"github.com/herald-mail/herald/internal/jobs"
	"github.com/herald-mail/herald/internal/token"
	"github.com/herald-mail/herald/mailer"
	"github.com/herald-mail/herald/models"
)

// app is what every handler area shares: configuration, the store,
// sessions, the mailer and the logger, and the helpers that render pages
// and errors with them. Each area's handlers are methods on a small
// struct embedding it (campaignPages, sendingPages, …).
type app struct {
	cfg      *config.Config
	store    *models.Store
	sessions *scs.SessionManager
	log      *slog.Logger
	limiter  *loginLimiter
	resets   *loginLimiter // password reset requests
	imports  *jobs.Imports
	mailer   *mailer.Engine
	tracking *Tracking
}

// Server is Herald's HTTP server: the route table over the handler areas.
type Server struct {
	*app
	public   *publicPages
	webhooks *Webhooks // nil when they could not start
	echo     *echo.Echo
}

// New builds the server and its routes. eng is the running mailer that
// campaign actions and transactional sends go to.
func New(cfg *config.Config, store *models.Store, eng *mailer.Engine, log *slog.Logger) *Server {
	sm := scs.New()
	sm.Store = store.Sessions()
	sm.Lifetime = 12 * time.Hour
	sm.IdleTimeout = 2 * time.Hour
	sm.Cookie.Name = "herald_session"
	sm.Cookie.HttpOnly = true
	sm.Cookie.SameSite = http.SameSiteLaxMode
	sm.Cookie.Secure = strings.HasPrefix(cfg.RootURL, "https://")
	s := &Server{app: &app{
		cfg:      cfg,
		store:    store,
		sessions: sm,
		log:      log,
		limiter:  newLoginLimiter(),
		resets:   newResetLimiter(),
		imports:  jobs.NewImports(store, cfg.NodeID, log),
		mailer:   eng,
		tracking: NewTracking(store, token.NewKeyring(cfg.Secrets()...), log, TrackingOptions{}),
	}}
	sm.ErrorFunc = s.sessionError
	s.public, s.webhooks = s.newPublicPages(), s.newWebhooks()
	s.echo = s.routes()
	return s
}

// Imports is the node's import runner; start its Run beside the server,
// so that imports another node left behind are resumed here.
func (s *Server) Imports() *jobs.Imports { return s.imports }

// ServeHTTP makes the server an http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.echo.ServeHTTP(w, r) }

// Shutdown flushes buffered tracking events and waits for running imports
// to stop after ctx's cancellation. Call it after the HTTP server stopped.
func (s *Server) Shutdown(ctx context.Context) {
	if err := s.tracking.Close(ctx); err != nil {
		s.log.Error("tracking flush", "err", err)
	}
	s.imports.Wait(ctx)
}
