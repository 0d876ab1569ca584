package web

import (
	"io/fs"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/herald-mail/herald/models"
	"github.com/herald-mail/herald/static"
)

// routes is Herald's whole HTTP surface in one table.
func (s *Server) routes() *echo.Echo {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = s.handleError
	// Client addresses (rate limits, consent evidence) come from the TCP
	// peer, or from X-Forwarded-For only when the peer is one of the
	// configured trusted proxies (clientIP).
	e.IPExtractor = clientIP(s.cfg.Proxies)
	e.Use(middleware.RequestID())
	e.Use(middleware.Recover())
	e.Use(securityHeaders)
	e.Use(s.limitBodies)
	e.Use(middleware.SecureWithConfig(middleware.SecureConfig{
		XSSProtection: "0", ContentTypeNosniff: "nosniff", XFrameOptions: "SAMEORIGIN",
		ReferrerPolicy: "same-origin",
	}))

	staticFS, _ := fs.Sub(static.FS, ".")
	e.GET("/static/*", echo.WrapHandler(http.StripPrefix("/static/", cacheForever(http.FileServer(http.FS(staticFS))))))
	e.GET("/healthz", func(c echo.Context) error { return c.String(200, "ok") })
	e.GET("/readyz", s.readyz)

	// The JSON API: bearer tokens, no cookies, so no CSRF.
	api := e.Group("/api/v1", middleware.BodyLimit("10M"))
	view := s.requireToken(models.RoleViewer)
	api.GET("/lists", s.apiLists, view)
	api.POST("/lists", s.apiCreateList, view)
	api.GET("/lists/:id", s.apiList, view)
	api.PUT("/lists/:id", s.apiUpdateList, view)
	api.DELETE("/lists/:id", s.apiDeleteList, view)
	api.GET("/subscribers", s.apiSubscribers, view)
	api.POST("/subscribers", s.apiCreateSubscriber, view)
	api.GET("/subscribers/:id", s.apiSubscriber, view)
	api.PUT("/subscribers/:id", s.apiUpdateSubscriber, view)
	api.DELETE("/subscribers/:id", s.apiDeleteSubscriber, view)
	api.PUT("/subscribers/:id/lists/:list", s.apiSubscribe, view)
	api.DELETE("/subscribers/:id/lists/:list", s.apiUnsubscribe, view)
	api.GET("/templates", s.apiTemplates, view)
	api.POST("/templates", s.apiCreateTemplate, view)
	api.GET("/templates/:id", s.apiTemplate, view)
	api.PUT("/templates/:id", s.apiUpdateTemplate, view)
	api.DELETE("/templates/:id", s.apiDeleteTemplate, view)
	api.GET("/campaigns", s.apiCampaigns, view)
	api.POST("/campaigns", s.apiCreateCampaign, view)
	api.GET("/campaigns/:id", s.apiCampaign, view)
	api.POST("/campaigns/:id/:action", s.apiCampaignAction, view) // start, pause, resume, cancel
	api.POST("/campaigns/:id/dns-override", s.apiOverrideCampaignDNS, s.requireToken(models.RoleAdmin))
	api.POST("/tx", s.apiTransactional, view)
	api.GET("/outbox", s.apiOutbox, view)
	api.Any("/*", func(c echo.Context) error { return echo.ErrNotFound })

	// Public pages and tracking: signed tokens, no session, no CSRF.
	s.tracking.Routes(e)
	s.publicRoutes(e)
	s.webhookRoutes(e)

	// The dashboard: session cookies, CSRF on every state change.
	d := e.Group("", echo.WrapMiddleware(s.sessions.LoadAndSave), stripQueryCSRF, streamUploads, middleware.CSRFWithConfig(middleware.CSRFConfig{
		TokenLookup:    "header:X-CSRF-Token,form:_csrf",
		ContextKey:     ctxCSRF,
		CookieName:     "herald_csrf",
		CookiePath:     "/",
		CookieHTTPOnly: true,
		CookieSecure:   strings.HasPrefix(s.cfg.RootURL, "https://"),
		CookieSameSite: http.SameSiteStrictMode,
		Skipper:        func(c echo.Context) bool { return strings.HasPrefix(c.Path(), "/static/") },
	}), s.loadUser)

	d.GET("/login", s.loginPage)
	d.POST("/login", s.login)
	d.POST("/setup", s.setup)
	d.POST("/logout", s.logout)

	viewer, marketer, admin := s.requireRole(models.RoleViewer), s.requireRole(models.RoleMarketer), s.requireRole(models.RoleAdmin)

	d.GET("/lists", s.listsPage, viewer)
	d.GET("/lists/new", s.newListPage, marketer)
	d.POST("/lists", s.createList, marketer)
	d.GET("/lists/:id/edit", s.editListPage, marketer)
	d.POST("/lists/:id", s.updateList, marketer)
	d.GET("/lists/:id/delete", s.deleteListPage, marketer)
	d.POST("/lists/:id/delete", s.deleteList, marketer)
	d.GET("/lists/:id/export.csv", s.exportList, viewer)

	d.GET("/subscribers", s.subscribersPage, viewer)
	d.GET("/subscribers/export.csv", s.exportSearch, viewer)
	d.POST("/subscribers/bulk", s.bulkSubscribers, marketer)
	d.GET("/subscribers/new", s.newSubscriberPage, marketer)
	d.POST("/subscribers", s.createSubscriber, marketer)
	d.GET("/subscribers/:id", s.subscriberPage, viewer)
	d.GET("/subscribers/:id/edit", s.editSubscriberPage, marketer)
	d.POST("/subscribers/:id", s.updateSubscriber, marketer)
	d.POST("/subscribers/:id/lists", s.changeSubscriptions, marketer)
	d.POST("/subscribers/:id/blocklist", s.blocklistSubscriber, marketer)
	d.GET("/subscribers/:id/delete", s.deleteSubscriberPage, marketer)
	d.POST("/subscribers/:id/delete", s.deleteSubscriber, marketer)

	d.GET("/imports/new", s.newImportPage, marketer)
	d.POST("/imports", s.uploadImport, marketer)
	d.POST("/imports/:id/start", s.startImport, marketer)
	d.GET("/imports/:id", s.importPage, marketer)
	d.GET("/imports/:id/progress", s.importProgress, marketer)
	d.GET("/imports/:id/errors.csv", s.importErrors, marketer)

	d.GET("/settings", s.settingsPage, viewer)
	d.POST("/settings", s.saveSettings, admin)
	d.GET("/settings/users", s.usersPage, admin)
	d.POST("/settings/users", s.createUser, admin)
	d.POST("/settings/users/:id/role", s.setUserRole, admin)
	d.POST("/settings/users/:id/delete", s.deleteUser, admin)
	d.GET("/settings/tokens", s.tokensPage, viewer)
	d.POST("/settings/tokens", s.createToken, viewer)
	d.POST("/settings/tokens/:id/delete", s.deleteToken, viewer)

	d.GET("/deliverability", s.outboxPage, viewer)
	d.GET("/deliverability/outbox/:id", s.outboxMessagePage, viewer)
	d.GET("/deliverability/outbox/:id/html", s.outboxMessageHTML, viewer)
	d.GET("/metrics", echo.WrapHandler(s.mailer.MetricsHandler()), admin)

	// Each area registers its own pages (one file per area, see its func).
	r := roles{viewer: viewer, marketer: marketer, admin: admin}
	s.composeRoutes(d, r)    // templates, campaigns, checklist, readiness: compose.go
	s.reportRoutes(d, r)     // dashboard home, live progress, reports: reports.go
	s.complianceRoutes(d, r) // consent review, DSR, retention, audit: compliance.go
	s.sendingRoutes(d, r)    // sending domains, domain rules, IP pools: sending.go
	s.hygieneRoutes(d, r)    // suppressions, allow list, staging, hygiene: hygiene.go
	return e
}

func cacheForever(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Vendored files carry their version in the name.
		if strings.HasPrefix(r.URL.Path, "vendor/") {
			w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		}
		h.ServeHTTP(w, r)
	})
}

// roles are the three role guards, handed to each area's route function.
type roles struct{ viewer, marketer, admin echo.MiddlewareFunc }
