package web

import (
	"fmt"
	"io/fs"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/herald-mail/herald/mailer"
	"github.com/herald-mail/herald/models"
	"github.com/herald-mail/herald/static"
)

// role is who may call a route, and so which middleware stack it runs
// behind. Its zero value is no role: a route without one stops the start.
type role int

const (
	roleMissing role = iota

	// No session, no CSRF.
	rolePublic     // anyone: static files, health, the subscribe form
	roleSignedLink // anyone holding a link Herald signed: tracking, unsubscribe, preferences
	roleProvider   // an ESP, authenticated by its own signature or secret

	// The JSON API: bearer tokens, no cookies, so no CSRF.
	roleTokenViewer   // an API token of a viewer or more
	roleTokenMarketer // an API token of a marketer or more
	roleTokenAdmin    // an API token of an admin
	// An API token of a viewer or admin; of a marketer when an admin lets
	// marketers read the compliance centre.
	roleTokenComplianceReader
	roleNone // nobody: the API's catch-all answers 404

	// The dashboard: session cookies, CSRF on every state change.
	roleGuest            // signed out too: login, first-run setup, logout
	roleViewer           // signed in as a viewer or more
	roleMarketer         // signed in as a marketer or more
	roleAdmin            // signed in as an admin
	roleComplianceReader // viewers and admins; marketers when an admin allows it
)

var roleNames = map[role]string{
	rolePublic: "public", roleSignedLink: "signed link", roleProvider: "provider",
	roleTokenViewer: "token viewer", roleTokenMarketer: "token marketer", roleTokenAdmin: "token admin", roleTokenComplianceReader: "token compliance reader", roleNone: "none",
	roleGuest: "guest", roleViewer: "viewer", roleMarketer: "marketer", roleAdmin: "admin",
	roleComplianceReader: "compliance reader",
}

func (r role) String() string {
	if n, ok := roleNames[r]; ok {
		return n
	}
	return fmt.Sprintf("role(%d)", int(r))
}

// stack is the middleware a route runs behind, before its role's guard.
type stack int

const (
	stackBare      stack = iota // the server-wide middleware only
	stackAPI                    // plus the API's body limit
	stackDashboard              // plus session, CSRF and the signed-in user
)

func (r role) stack() stack {
	switch r {
	case roleTokenViewer, roleTokenMarketer, roleTokenAdmin, roleTokenComplianceReader, roleNone:
		return stackAPI
	case roleGuest, roleViewer, roleMarketer, roleAdmin, roleComplianceReader:
		return stackDashboard
	}
	return stackBare
}

// guard is the middleware that enforces the role; nil for roles whose
// handler is its own authority (a signed link, a provider's signature).
func (s *Server) guard(r role) []echo.MiddlewareFunc {
	switch r {
	case roleTokenViewer:
		return []echo.MiddlewareFunc{s.requireToken(models.RoleViewer)}
	case roleTokenMarketer:
		return []echo.MiddlewareFunc{s.requireToken(models.RoleMarketer)}
	case roleTokenAdmin:
		return []echo.MiddlewareFunc{s.requireToken(models.RoleAdmin)}
	case roleTokenComplianceReader:
		return []echo.MiddlewareFunc{s.requireToken(models.RoleViewer), s.complianceReader}
	case roleViewer:
		return []echo.MiddlewareFunc{s.requireRole(models.RoleViewer)}
	case roleMarketer:
		return []echo.MiddlewareFunc{s.requireRole(models.RoleMarketer)}
	case roleAdmin:
		return []echo.MiddlewareFunc{s.requireRole(models.RoleAdmin)}
	case roleComplianceReader:
		return []echo.MiddlewareFunc{s.requireRole(models.RoleViewer), s.complianceReader}
	}
	return nil
}

// anyMethod in a table line stands for every HTTP method.
const anyMethod = "ANY"

// route is one line of the route table.
type route struct {
	method, path string
	role         role
	handler      echo.HandlerFunc
	mw           []echo.MiddlewareFunc // after the role's guard
	note         string
}

// routes builds the Echo router from the route table.
func (s *Server) routes() *echo.Echo {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = s.handleError
	// Client addresses (rate limits, consent evidence) come from the TCP
	// peer, or from X-Forwarded-For only when the peer is one of the
	// configured trusted proxies (clientIP).
	e.IPExtractor = clientIP(s.cfg.Proxies)
	e.Use(middleware.RequestID())
	e.Use(trackChanges)
	e.Use(middleware.Recover())
	e.Use(securityHeaders)
	e.Use(s.limitBodies)
	e.Use(middleware.SecureWithConfig(middleware.SecureConfig{
		XSSProtection: "0", ContentTypeNosniff: "nosniff", XFrameOptions: "SAMEORIGIN",
		ReferrerPolicy: "same-origin",
	}))

	stacks := map[stack]interface {
		Add(method, path string, h echo.HandlerFunc, m ...echo.MiddlewareFunc) *echo.Route
		Any(path string, h echo.HandlerFunc, m ...echo.MiddlewareFunc) []*echo.Route
	}{
		stackBare: e,
		stackAPI:  e.Group("/api/v1", middleware.BodyLimit("10M")),
		stackDashboard: e.Group("", echo.WrapMiddleware(s.sessions.LoadAndSave), stripQueryCSRF, streamUploads, middleware.CSRFWithConfig(middleware.CSRFConfig{
			TokenLookup:    "header:X-CSRF-Token,form:_csrf",
			ContextKey:     ctxCSRF,
			CookieName:     "herald_csrf",
			CookiePath:     "/",
			CookieHTTPOnly: true,
			CookieSecure:   strings.HasPrefix(s.cfg.RootURL, "https://"),
			CookieSameSite: http.SameSiteStrictMode,
			Skipper:        func(c echo.Context) bool { return strings.HasPrefix(c.Path(), "/static/") },
		}), s.loadUser),
	}
	for _, r := range s.routeTable() {
		st := r.role.stack()
		path := r.path
		if st == stackAPI {
			path = strings.TrimPrefix(path, "/api/v1")
		}
		mw := append(s.guard(r.role), r.mw...)
		if r.method == anyMethod {
			stacks[st].Any(path, r.handler, mw...)
			continue
		}
		stacks[st].Add(r.method, path, r.handler, mw...)
	}
	return e
}

// checkRoutes refuses a table line without a role or a handler: a route
// nobody decided the audience of must not be served.
func checkRoutes(rs []route) []route {
	for _, r := range rs {
		if _, ok := roleNames[r.role]; !ok {
			panic(fmt.Sprintf("web: route %s %s has no role; give it one in routeTable (web/routes.go)", r.method, r.path))
		}
		if r.handler == nil {
			panic(fmt.Sprintf("web: route %s %s has no handler", r.method, r.path))
		}
	}
	return rs
}

// MountTracking serves the tracking lines of the route table on e, with no
// session: for a tracker running apart from the dashboard (benchmarks).
func MountTracking(e *echo.Echo, t *Tracking) {
	for _, r := range checkRoutes(trackingRoutes(t)) {
		e.Add(r.method, r.path, r.handler, r.mw...)
	}
}

// MountWebhooks serves the ESP webhook lines of the route table on e.
func MountWebhooks(e *echo.Echo, w *Webhooks) {
	for _, r := range checkRoutes(webhookRoutes(w)) {
		e.Add(r.method, r.path, r.handler, r.mw...)
	}
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

// routeTable is Herald's whole HTTP surface: every route, who may call it
// and what it does. Read it top to bottom to see what is served to whom.
func (s *Server) routeTable() []route {
	staticFS, _ := fs.Sub(static.FS, ".")
	// The handler areas: one small struct each over the shared app.
	var (
		auth        = &authPages{s.app}
		api         = &apiHandlers{s.app}
		lists       = &listPages{s.app}
		subscribers = &subscriberPages{s.app}
		imp         = &importPages{s.app}
		templates   = &templatePages{s.app}
		campaigns   = &campaignPages{s.app}
		segments    = &segmentPages{s.app}
		automations = &automationPages{s.app}
		reports     = &reportPages{s.app}
		settings    = &settingsPages{s.app}
		protection  = &protectionPages{s.app}
		delivery    = &deliveryPages{s.app}
		hooks       = &hookPages{s.app}
		placement   = &placementPages{s.app}
		outbox      = &outboxPages{s.app}
		sending     = &sendingPages{s.app}
		hygiene     = &hygienePages{s.app}
		reputation  = &reputationPages{s.app}
		sunset      = &sunsetPages{s.app}
		compliance  = &compliancePages{s.app}
		accounts    = s.newAccountPages()
	)
	p, small := s.public, middleware.BodyLimit("64K")
	const (
		GET, POST, PUT, DELETE = http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete
	)
	rs := []route{
		{GET, "/static/*", rolePublic, echo.WrapHandler(http.StripPrefix("/static/", cacheForever(http.FileServer(http.FS(staticFS))))), nil, "stylesheets, scripts, icons"},
		{GET, "/healthz", rolePublic, func(c echo.Context) error { return c.String(200, "ok") }, nil, "liveness: the process answers"},
		{GET, "/readyz", rolePublic, s.readyz, nil, "readiness: the database answers"},

		// The JSON API (api_*.go), described by openapi.go. GET needs a
		// viewer's token, any change a marketer's.
		{GET, "/api/v1/lists", roleTokenViewer, api.apiLists, nil, ""},
		{POST, "/api/v1/lists", roleTokenMarketer, api.apiCreateList, nil, ""},
		{GET, "/api/v1/lists/:id", roleTokenViewer, api.apiList, nil, ""},
		{PUT, "/api/v1/lists/:id", roleTokenMarketer, api.apiUpdateList, nil, ""},
		{DELETE, "/api/v1/lists/:id", roleTokenMarketer, api.apiDeleteList, nil, ""},
		{GET, "/api/v1/subscribers", roleTokenViewer, api.apiSubscribers, nil, ""},
		{POST, "/api/v1/subscribers", roleTokenMarketer, api.apiCreateSubscriber, nil, ""},
		{GET, "/api/v1/subscribers/:id", roleTokenViewer, api.apiSubscriber, nil, ""},
		{PUT, "/api/v1/subscribers/:id", roleTokenMarketer, api.apiUpdateSubscriber, nil, ""},
		{DELETE, "/api/v1/subscribers/:id", roleTokenMarketer, api.apiDeleteSubscriber, nil, ""},
		{PUT, "/api/v1/subscribers/:id/lists/:list", roleTokenMarketer, api.apiSubscribe, nil, ""},
		{DELETE, "/api/v1/subscribers/:id/lists/:list", roleTokenMarketer, api.apiUnsubscribe, nil, ""},
		{GET, "/api/v1/templates", roleTokenViewer, api.apiTemplates, nil, ""},
		{POST, "/api/v1/templates", roleTokenMarketer, api.apiCreateTemplate, nil, ""},
		{GET, "/api/v1/templates/:id", roleTokenViewer, api.apiTemplate, nil, ""},
		{PUT, "/api/v1/templates/:id", roleTokenMarketer, api.apiUpdateTemplate, nil, ""},
		{DELETE, "/api/v1/templates/:id", roleTokenMarketer, api.apiDeleteTemplate, nil, ""},
		{GET, "/api/v1/automations", roleTokenViewer, api.apiAutomations, nil, ""},
		{POST, "/api/v1/automations", roleTokenMarketer, api.apiCreateAutomation, nil, ""},
		{GET, "/api/v1/automations/:id", roleTokenViewer, api.apiAutomation, nil, ""},
		{PUT, "/api/v1/automations/:id", roleTokenMarketer, api.apiUpdateAutomation, nil, ""},
		{DELETE, "/api/v1/automations/:id", roleTokenMarketer, api.apiDeleteAutomation, nil, ""},
		{POST, "/api/v1/automations/:id/enter", roleTokenMarketer, api.apiEnterAutomation, nil, "into the first step"},
		{POST, "/api/v1/automations/:id/exit", roleTokenMarketer, api.apiExitAutomation, nil, "stop when they buy"},
		{GET, "/api/v1/automations/:id/figures", roleTokenViewer, api.apiAutomationFigures, nil, "per step"},
		{GET, "/api/v1/segments", roleTokenViewer, api.apiSegments, nil, ""},
		{POST, "/api/v1/segments", roleTokenMarketer, api.apiCreateSegment, nil, ""},
		{GET, "/api/v1/segments/:id", roleTokenViewer, api.apiSegment, nil, ""},
		{PUT, "/api/v1/segments/:id", roleTokenMarketer, api.apiUpdateSegment, nil, ""},
		{DELETE, "/api/v1/segments/:id", roleTokenMarketer, api.apiDeleteSegment, nil, ""},
		{GET, "/api/v1/segments/:id/count", roleTokenViewer, api.apiSegmentCount, nil, "matching people now"},
		{GET, "/api/v1/segments/:id/preview", roleTokenViewer, api.apiSegmentPreview, nil, "the first matching people"},
		{GET, "/api/v1/campaigns", roleTokenViewer, api.apiCampaigns, nil, ""},
		{POST, "/api/v1/campaigns", roleTokenMarketer, api.apiCreateCampaign, nil, ""},
		{GET, "/api/v1/campaigns/:id", roleTokenViewer, api.apiCampaign, nil, ""},
		{PUT, "/api/v1/campaigns/:id", roleTokenMarketer, api.apiUpdateCampaign, nil, "changed fields only: content, sender, audience, send time, ab_test"},
		{POST, "/api/v1/campaigns/:id/winner", roleTokenMarketer, api.apiPickABWinner, nil, "A/B test: send a variant to the rest"},
		{POST, "/api/v1/campaigns/:id/:action", roleTokenMarketer, api.apiCampaignAction, nil, "start, pause, resume, cancel"},
		{POST, "/api/v1/campaigns/:id/dns-override", roleTokenAdmin, api.apiOverrideCampaignDNS, nil, "send despite direct delivery's DNS rule"},
		{GET, "/api/v1/campaigns/:id/report", roleTokenViewer, api.apiCampaignReport, nil, "the report page's figures (api_reports.go)"},
		{POST, "/api/v1/tx", roleTokenMarketer, api.apiTransactional, nil, "one transactional message"},
		{GET, "/api/v1/outbox", roleTokenViewer, api.apiOutbox, nil, ""},
		// Deliverability (api_deliverability.go, api_sending.go): sending
		// domains and rules change only with an admin's token.
		{GET, "/api/v1/suppressions", roleTokenViewer, api.apiSuppressions, nil, ""},
		{POST, "/api/v1/suppressions", roleTokenMarketer, api.apiAddSuppression, nil, ""},
		{DELETE, "/api/v1/suppressions/:id", roleTokenMarketer, api.apiRemoveSuppression, nil, "?reason= is required"},
		{GET, "/api/v1/bounces", roleTokenViewer, api.apiBounces, nil, ""},
		{GET, "/api/v1/events", roleTokenViewer, api.apiEvents, nil, "the activity feed, by cursor"},
		{GET, "/api/v1/sending-domains", roleTokenViewer, api.apiDomains, nil, ""},
		{POST, "/api/v1/sending-domains", roleTokenAdmin, api.apiCreateDomain, nil, ""},
		{GET, "/api/v1/sending-domains/:id", roleTokenViewer, api.apiDomain, nil, "with the DNS records to publish"},
		{POST, "/api/v1/sending-domains/:id/check", roleTokenAdmin, api.apiCheckDomain, nil, ""},
		{GET, "/api/v1/sending-domains/:id/reports", roleTokenViewer, api.apiDomainReports, nil, "DMARC and TLS reports (authreports.go)"},
		{GET, "/api/v1/domain-rules", roleTokenViewer, api.apiRules, nil, ""},
		{POST, "/api/v1/domain-rules", roleTokenAdmin, api.apiSaveRule, nil, ""},
		{GET, "/api/v1/domain-rules/:id", roleTokenViewer, api.apiRule, nil, ""},
		{PUT, "/api/v1/domain-rules/:id", roleTokenAdmin, api.apiSaveRule, nil, ""},
		{DELETE, "/api/v1/domain-rules/:id", roleTokenAdmin, api.apiDeleteRule, nil, ""},
		// Compliance (api_compliance.go): read as the compliance centre
		// is (viewers and admins, marketers when allowed); changed by
		// admins.
		{GET, "/api/v1/consents", roleTokenComplianceReader, api.apiConsents, nil, "the consent ledger"},
		{GET, "/api/v1/subscribers/:id/consents", roleTokenComplianceReader, api.apiConsents, nil, ""},
		{GET, "/api/v1/data-requests", roleTokenComplianceReader, api.apiRequests, nil, ""},
		{POST, "/api/v1/data-requests", roleTokenAdmin, api.apiCreateRequest, nil, ""},
		{GET, "/api/v1/data-requests/:id", roleTokenComplianceReader, api.apiRequest, nil, ""},
		{POST, "/api/v1/data-requests/:id/export", roleTokenAdmin, api.apiExportRequest, nil, "the person's data, and the request closed"},
		{POST, "/api/v1/data-requests/:id/erase", roleTokenAdmin, api.apiEraseRequest, nil, ""},
		{POST, "/api/v1/data-requests/:id/close", roleTokenAdmin, api.apiCloseRequest, nil, "done or rejected, with the outcome"},
		{GET, "/api/v1/openapi.json", rolePublic, serveOpenAPI, nil, "this API's OpenAPI 3 document (openapi.go)"},
		{GET, "/api/v1/webhooks", roleTokenAdmin, hooks.apiWebhooks, nil, "outgoing webhooks (api_webhooks.go)"},
		{POST, "/api/v1/webhooks", roleTokenAdmin, hooks.apiCreateWebhook, nil, "the secret is in this answer only"},
		{GET, "/api/v1/webhooks/:id", roleTokenAdmin, hooks.apiWebhook, nil, ""},
		{PUT, "/api/v1/webhooks/:id", roleTokenAdmin, hooks.apiUpdateWebhook, nil, ""},
		{DELETE, "/api/v1/webhooks/:id", roleTokenAdmin, hooks.apiDeleteWebhook, nil, ""},
		{GET, "/api/v1/webhooks/:id/deliveries", roleTokenAdmin, hooks.apiWebhookDeliveries, nil, "the delivery log"},
		{anyMethod, "/api/v1/*", roleNone, notFound, nil, "unknown API paths: 404 in every method"},

		// Subscribers' public pages (public.go): the signed token in the
		// URL is the authority, and a forged or altered one finds nothing.
		{GET, "/subscribe/:list", rolePublic, p.subscribePage, nil, "a public list's form"},
		{POST, "/subscribe/:list", rolePublic, p.subscribe, []echo.MiddlewareFunc{small}, "rate-limited per IP"},
		{GET, "/confirm/:token", roleSignedLink, p.confirmPage, nil, "double opt-in"},
		{POST, "/confirm/:token", roleSignedLink, p.confirm, []echo.MiddlewareFunc{small}, ""},
		{GET, "/p/:token", roleSignedLink, p.preferences, nil, "preference centre"},
		{GET, "/p/" + mailer.TestLinkToken, rolePublic, testLinkPage(s.store, "preferences"), nil, "a test send's link: changes nothing"},
		{POST, "/p/:token/lists", roleSignedLink, p.saveLists, []echo.MiddlewareFunc{small}, ""},
		{POST, "/p/:token/name", roleSignedLink, p.saveName, []echo.MiddlewareFunc{small}, ""},
		{POST, "/p/:token/export", roleSignedLink, p.export, []echo.MiddlewareFunc{small}, ""},
		{GET, "/p/:token/erase", roleSignedLink, p.erasePage, nil, ""},
		{POST, "/p/:token/erase", roleSignedLink, p.erase, []echo.MiddlewareFunc{small}, ""},
	}
	rs = append(rs, trackingRoutes(s.tracking)...)
	rs = append(rs, webhookRoutes(s.webhooks)...)
	rs = append(rs, []route{
		// The dashboard's own doors (auth.go).
		{GET, "/login", roleGuest, auth.loginPage, nil, "also the first-run setup form"},
		{POST, "/login", roleGuest, auth.login, nil, "rate-limited per IP and address"},
		{POST, "/setup", roleGuest, auth.setup, nil, "only while there is no user"},
		{POST, "/logout", roleGuest, auth.logout, nil, ""},
		// Accounts' emailed links and the second factor (accounts.go,
		// twofactor.go): the signed link, or the half-signed-in session,
		// is the authority.
		{GET, "/login/2fa", roleGuest, accounts.secondFactorPage, nil, "after the password, before the session"},
		{POST, "/login/2fa", roleGuest, accounts.secondFactor, nil, "TOTP or recovery code; rate-limited like /login"},
		{GET, "/forgot", roleGuest, accounts.forgotPage, nil, ""},
		{POST, "/forgot", roleGuest, accounts.forgot, nil, "same answer for every address; rate-limited per IP and address"},
		{GET, "/reset/:token", roleGuest, accounts.resetPage, nil, "signed, expiring, single-use"},
		{POST, "/reset/:token", roleGuest, accounts.reset, nil, "ends the user's other sessions"},
		{GET, "/invite/:token", roleGuest, accounts.invitePage, nil, "signed, expiring, single-use"},
		{POST, "/invite/:token", roleGuest, accounts.acceptInvite, nil, "creates the account and signs it in"},

		{GET, "/", roleViewer, reports.dashboard, nil, "home: recent campaigns, totals"},

		// Lists (lists.go).
		{GET, "/lists", roleViewer, lists.listsPage, nil, ""},
		{GET, "/lists/new", roleMarketer, lists.newListPage, nil, ""},
		{POST, "/lists", roleMarketer, lists.createList, nil, ""},
		{GET, "/lists/:id/edit", roleMarketer, lists.editListPage, nil, ""},
		{POST, "/lists/:id", roleMarketer, lists.updateList, nil, ""},
		{GET, "/lists/:id/delete", roleMarketer, lists.deleteListPage, nil, "asks first"},
		{POST, "/lists/:id/delete", roleMarketer, lists.deleteList, nil, ""},
		{GET, "/lists/:id/export.csv", roleViewer, imp.exportList, nil, ""},

		// Subscribers (subscribers.go, subscribers_bulk.go).
		{GET, "/subscribers", roleViewer, subscribers.subscribersPage, nil, "search"},
		{GET, "/subscribers/export.csv", roleViewer, imp.exportSearch, nil, "a search's matches"},
		{GET, "/subscribers/count", roleViewer, subscribers.subscriberCount, nil, "a search's match count, fetched after its results"},
		{POST, "/subscribers/bulk", roleMarketer, subscribers.bulkSubscribers, nil, "on a selection or on all matches"},
		// The sunset policy (sunset.go).
		{GET, "/subscribers/sunset", roleMarketer, sunset.sunsetPage, nil, ""},
		{POST, "/subscribers/sunset", roleMarketer, sunset.saveSunset, nil, "action and automatic switch: admins only"},
		{POST, "/subscribers/sunset/preview", roleMarketer, sunset.previewSunset, nil, "htmx: the typed rule's count and preview"},
		{POST, "/subscribers/sunset/round", roleMarketer, sunset.startRound, nil, "snapshot list and draft re-engagement campaign"},
		{GET, "/subscribers/sunset/run", roleAdmin, sunset.confirmRun, nil, "asks first, with the dry-run count"},
		{POST, "/subscribers/sunset/run", roleAdmin, sunset.runSunset, nil, ""},
		{GET, "/subscribers/new", roleMarketer, subscribers.newSubscriberPage, nil, ""},
		{POST, "/subscribers", roleMarketer, subscribers.createSubscriber, nil, ""},
		{GET, "/subscribers/:id", roleViewer, subscribers.subscriberPage, nil, ""},
		{GET, "/subscribers/:id/edit", roleMarketer, subscribers.editSubscriberPage, nil, ""},
		{POST, "/subscribers/:id", roleMarketer, subscribers.updateSubscriber, nil, ""},
		{POST, "/subscribers/:id/lists", roleMarketer, subscribers.changeSubscriptions, nil, ""},
		{POST, "/subscribers/:id/blocklist", roleMarketer, subscribers.blocklistSubscriber, nil, ""},
		{GET, "/subscribers/:id/delete", roleMarketer, subscribers.deleteSubscriberPage, nil, "asks first"},
		{POST, "/subscribers/:id/delete", roleMarketer, subscribers.deleteSubscriber, nil, ""},

		// Imports (imports.go).
		{GET, "/imports/new", roleMarketer, imp.newImportPage, nil, ""},
		{POST, "/imports", roleMarketer, imp.uploadImport, nil, "streamed upload (upload.go)"},
		{POST, "/imports/:id/start", roleMarketer, imp.startImport, nil, ""},
		{GET, "/imports/:id", roleMarketer, imp.importPage, nil, ""},
		{GET, "/imports/:id/progress", roleMarketer, imp.importProgress, nil, "htmx poll"},
		{GET, "/imports/:id/errors.csv", roleMarketer, imp.importErrors, nil, ""},

		// Templates (templates.go).
		{GET, "/templates", roleViewer, templates.templatesPage, nil, ""},
		{GET, "/templates/new", roleMarketer, templates.newTemplatePage, nil, ""},
		{POST, "/templates", roleMarketer, templates.createTemplate, nil, ""},
		{POST, "/templates/preview", roleMarketer, templates.previewTemplate, nil, "htmx"},
		{POST, "/templates/score", roleMarketer, templates.scoreTemplate, nil, "htmx: the template's SpamAssassin score"},
		{GET, "/templates/:id/edit", roleMarketer, templates.editTemplatePage, nil, ""},
		{POST, "/templates/:id", roleMarketer, templates.updateTemplate, nil, ""},
		{GET, "/templates/:id/delete", roleMarketer, templates.deleteTemplatePage, nil, "asks first"},
		{POST, "/templates/:id/delete", roleMarketer, templates.deleteTemplate, nil, ""},

		// Automations (automations.go).
		{GET, "/automations", roleViewer, automations.automationsPage, nil, ""},
		{GET, "/automations/new", roleMarketer, automations.newAutomationPage, nil, "the builder"},
		{POST, "/automations", roleMarketer, automations.createAutomation, nil, "or: one more step (add)"},
		{GET, "/automations/:id", roleViewer, automations.automationPage, nil, "steps, per-step figures, test mode"},
		{GET, "/automations/:id/edit", roleMarketer, automations.editAutomationPage, nil, ""},
		{POST, "/automations/:id", roleMarketer, automations.updateAutomation, nil, "a new version once people entered"},
		{POST, "/automations/:id/status", roleMarketer, automations.setStatus, nil, "activate or pause"},
		{POST, "/automations/:id/test", roleMarketer, automations.testRun, nil, "start or move on a test run"},
		// Segments (segments.go).
		{GET, "/segments", roleViewer, segments.segmentsPage, nil, ""},
		{GET, "/segments/new", roleMarketer, segments.newSegmentPage, nil, "the builder"},
		{POST, "/segments", roleMarketer, segments.createSegment, nil, ""},
		{POST, "/segments/builder", roleMarketer, segments.segmentBuilder, nil, "htmx: add, remove or change a condition"},
		{POST, "/segments/count", roleViewer, segments.segmentCount, nil, "htmx: the live count and preview"},
		{GET, "/segments/:id", roleViewer, segments.segmentPage, nil, ""},
		{POST, "/segments/:id", roleMarketer, segments.updateSegment, nil, ""},
		{POST, "/segments/:id/delete", roleMarketer, segments.deleteSegment, nil, ""},

		// Campaigns (campaigns.go) and their reports (reports.go).
		{GET, "/campaigns", roleViewer, campaigns.campaignsPage, nil, ""},
		{GET, "/campaigns/new", roleMarketer, campaigns.newCampaignPage, nil, ""},
		{POST, "/campaigns", roleMarketer, campaigns.createCampaign, nil, ""},
		{POST, "/campaigns/recipients", roleMarketer, campaigns.recipientCount, nil, "htmx: the audience's size"},
		{GET, "/campaigns/:id", roleViewer, campaigns.campaignPage, nil, ""},
		{GET, "/campaigns/:id/progress", roleViewer, campaigns.campaignProgress, nil, "htmx poll"},
		{GET, "/campaigns/:id/edit", roleMarketer, campaigns.editCampaignPage, nil, ""},
		{POST, "/campaigns/:id", roleMarketer, campaigns.updateCampaign, nil, ""},
		{POST, "/campaigns/:id/test", roleMarketer, campaigns.sendCampaignTest, nil, ""},
		{GET, "/campaigns/:id/start", roleMarketer, campaigns.confirmStartPage, nil, "asks first"},
		{POST, "/campaigns/:id/start", roleMarketer, campaigns.startCampaign, nil, ""},
		{POST, "/campaigns/:id/schedule", roleMarketer, campaigns.scheduleCampaign, nil, ""},
		{POST, "/campaigns/:id/unschedule", roleMarketer, campaigns.campaignAction("unschedule"), nil, ""},
		{POST, "/campaigns/:id/pause", roleMarketer, campaigns.campaignAction("pause"), nil, ""},
		{POST, "/campaigns/:id/resume", roleMarketer, campaigns.campaignAction("resume"), nil, ""},
		{GET, "/campaigns/:id/cancel", roleMarketer, campaigns.cancelCampaignPage, nil, "asks first"},
		{POST, "/campaigns/:id/cancel", roleMarketer, campaigns.campaignAction("cancel"), nil, ""},
		{POST, "/campaigns/:id/clone", roleMarketer, campaigns.cloneCampaign, nil, ""},
		{POST, "/campaigns/:id/dns-override", roleAdmin, campaigns.overrideCampaignDNS, nil, "send despite direct delivery's DNS rule"},
		{GET, "/campaigns/:id/report", roleViewer, reports.campaignReport, nil, ""},
		{POST, "/campaigns/:id/winner", roleMarketer, reports.pickABWinner, nil, "A/B test: send a variant to the rest"},
		{GET, "/campaigns/:id/report.csv", roleViewer, reports.campaignReportCSV, nil, ""},

		// Settings, users and API tokens (settings.go).
		{GET, "/settings", roleViewer, settings.settingsPage, nil, ""},
		{POST, "/settings", roleAdmin, settings.saveSettings, nil, ""},
		// Settings → Delivery (settings_delivery.go): transport, relay, bounce mailbox.
		{GET, "/settings/delivery", roleAdmin, delivery.page, nil, "holds the relay and mailbox (passwords masked)"},
		{POST, "/settings/delivery", roleAdmin, delivery.save, nil, ""},
		{POST, "/settings/delivery/test-relay", roleAdmin, delivery.testRelay, nil, "connects to the relay, sends nothing"},
		{POST, "/settings/delivery/test-mailbox", roleAdmin, delivery.testMailbox, nil, "logs in to the mailbox, changes nothing"},
		// Settings → Protection (settings_protection.go): when a campaign pauses by itself.
		{GET, "/settings/protection", roleAdmin, protection.page, nil, ""},
		{POST, "/settings/protection", roleAdmin, protection.save, nil, ""},
		{GET, "/settings/users", roleAdmin, settings.usersPage, nil, ""},
		{POST, "/settings/users", roleAdmin, settings.createUser, nil, ""},
		{POST, "/settings/users/:id/role", roleAdmin, settings.setUserRole, nil, ""},
		{POST, "/settings/users/:id/delete", roleAdmin, settings.deleteUser, nil, ""},
		{POST, "/settings/users/:id/reset-2fa", roleAdmin, accounts.reset2FA, nil, "a lost authenticator"},
		{POST, "/settings/users/2fa-policy", roleAdmin, accounts.save2FAPolicy, nil, "require two-factor for everyone"},
		{POST, "/settings/invitations", roleAdmin, accounts.invite, nil, "emails a signed link"},
		{POST, "/settings/invitations/:id/revoke", roleAdmin, accounts.revokeInvite, nil, ""},
		{GET, "/settings/security", roleViewer, accounts.securityPage, nil, "one's own two-factor sign-in"},
		{POST, "/settings/security/setup", roleViewer, accounts.setup2FA, nil, ""},
		{POST, "/settings/security/confirm", roleViewer, accounts.confirm2FA, nil, "on only after a right code"},
		{POST, "/settings/security/recovery-codes", roleViewer, accounts.newRecoveryCodes, nil, ""},
		{POST, "/settings/security/disable", roleViewer, accounts.disable2FA, nil, "needs a current code"},
		{GET, "/settings/tokens", roleViewer, settings.tokensPage, nil, "one's own tokens"},
		{POST, "/settings/tokens", roleViewer, settings.createToken, nil, "a token has its owner's role"},
		{POST, "/settings/tokens/:id/delete", roleViewer, settings.deleteToken, nil, ""},

		// Outgoing webhooks (hooks_out.go).
		{GET, "/settings/webhooks", roleAdmin, hooks.list, nil, ""},
		{POST, "/settings/webhooks", roleAdmin, hooks.create, nil, "the secret is shown once, in the answer"},
		{POST, "/settings/webhooks/private", roleAdmin, hooks.setPrivate, nil, "allow loopback and private targets"},
		{GET, "/settings/webhooks/:id", roleAdmin, hooks.show, nil, "settings and delivery log"},
		{POST, "/settings/webhooks/:id", roleAdmin, hooks.update, nil, ""},
		{POST, "/settings/webhooks/:id/test", roleAdmin, hooks.test, nil, "queues a test event"},
		{POST, "/settings/webhooks/:id/delete", roleAdmin, hooks.delete, nil, ""},

		// Deliverability: the outbox (outbox.go), bounces (reports.go).
		{GET, "/deliverability", roleViewer, outbox.outboxPage, nil, "the outbox"},
		{GET, "/deliverability/outbox/:id", roleViewer, outbox.outboxMessagePage, nil, ""},
		{GET, "/deliverability/outbox/:id/html", roleViewer, outbox.outboxMessageHTML, nil, "sandboxed frame"},
		{GET, "/deliverability/bounces", roleViewer, reports.bouncesReport, nil, ""},
		{GET, "/metrics", roleAdmin, echo.WrapHandler(s.mailer.MetricsHandler()), nil, "Prometheus"},

		// Sending domains, domain rules and IP pools (sending.go):
		// everyone signed in reads them; only admins change them.
		{GET, "/deliverability/domains", roleViewer, sending.domainsPage, nil, ""},
		{GET, "/deliverability/domains/new", roleAdmin, sending.newDomainPage, nil, ""},
		{POST, "/deliverability/domains", roleAdmin, sending.createDomain, nil, ""},
		{GET, "/deliverability/domains/:id", roleViewer, sending.domainPage, nil, ""},
		{GET, "/deliverability/domains/:id/reports", roleViewer, sending.domainReportsPage, nil, "DMARC aggregate and TLS reports (authreports.go)"},
		{POST, "/deliverability/domains/:id/check", roleAdmin, sending.checkDomain, nil, ""},
		{GET, "/deliverability/domains/:id/rotate", roleAdmin, sending.rotateDomainPage, nil, ""},
		{POST, "/deliverability/domains/:id/rotate", roleAdmin, sending.rotateDomain, nil, ""},
		{GET, "/deliverability/domains/:id/delete", roleAdmin, sending.deleteDomainPage, nil, "asks first"},
		{POST, "/deliverability/domains/:id/delete", roleAdmin, sending.deleteDomain, nil, ""},
		{GET, "/deliverability/rules", roleViewer, sending.rulesPage, nil, ""},
		{GET, "/deliverability/rules/new", roleAdmin, sending.newRulePage, nil, ""},
		{POST, "/deliverability/rules", roleAdmin, sending.createRule, nil, ""},
		{GET, "/deliverability/rules/reset", roleAdmin, sending.resetRulesPage, nil, "asks first"},
		{POST, "/deliverability/rules/reset", roleAdmin, sending.resetRules, nil, ""},
		{GET, "/deliverability/rules/:id/edit", roleAdmin, sending.editRulePage, nil, ""},
		{POST, "/deliverability/rules/:id", roleAdmin, sending.updateRule, nil, ""},
		{GET, "/deliverability/rules/:id/delete", roleAdmin, sending.deleteRulePage, nil, "asks first"},
		{POST, "/deliverability/rules/:id/delete", roleAdmin, sending.deleteRule, nil, ""},
		{GET, "/deliverability/pools/new", roleAdmin, sending.newPoolPage, nil, ""},
		{POST, "/deliverability/pools", roleAdmin, sending.createPool, nil, ""},
		{GET, "/deliverability/pools/:id", roleViewer, sending.poolPage, nil, ""},
		{GET, "/deliverability/pools/:id/edit", roleAdmin, sending.editPoolPage, nil, ""},
		{POST, "/deliverability/pools/:id", roleAdmin, sending.updatePool, nil, ""},
		{GET, "/deliverability/pools/:id/delete", roleAdmin, sending.deletePoolPage, nil, "asks first"},
		{POST, "/deliverability/pools/:id/delete", roleAdmin, sending.deletePool, nil, ""},
		{GET, "/deliverability/pools/:id/ips/new", roleAdmin, sending.newIPPage, nil, ""},
		{POST, "/deliverability/pools/:id/ips", roleAdmin, sending.createIP, nil, ""},
		{GET, "/deliverability/pools/:id/ips/:ip/edit", roleAdmin, sending.editIPPage, nil, ""},
		{POST, "/deliverability/pools/:id/ips/:ip", roleAdmin, sending.updateIP, nil, ""},
		{GET, "/deliverability/pools/:id/ips/:ip/delete", roleAdmin, sending.deleteIPPage, nil, "asks first"},
		{POST, "/deliverability/pools/:id/ips/:ip/delete", roleAdmin, sending.deleteIP, nil, ""},

		// Suppressions, the allow list, staging and hygiene (hygiene.go).
		// Inbox placement (placement.go): seed mailboxes and tests.
		{GET, "/deliverability/placement", roleViewer, placement.testsPage, nil, ""},
		{POST, "/deliverability/placement", roleMarketer, placement.startTest, nil, "sends to every seed"},
		{POST, "/deliverability/placement/gates", roleMarketer, placement.saveGate, nil, "arms or removes a campaign's gate"},
		{GET, "/deliverability/placement/seeds", roleViewer, placement.seedsPage, nil, ""},
		{POST, "/deliverability/placement/seeds", roleAdmin, placement.createSeed, nil, ""},
		{POST, "/deliverability/placement/seeds/:id/delete", roleAdmin, placement.deleteSeed, nil, ""},
		{GET, "/deliverability/placement/:id", roleViewer, placement.testPage, nil, ""},
		{GET, "/deliverability/placement/:id/progress", roleViewer, placement.testResults, nil, "htmx poll"},
		{GET, "/deliverability/suppressions", roleViewer, hygiene.suppressionsPage, nil, ""},
		{GET, "/deliverability/suppressions/export.csv", roleViewer, hygiene.exportSuppressions, nil, ""},
		{POST, "/deliverability/suppressions", roleMarketer, hygiene.addSuppression, nil, ""},
		{POST, "/deliverability/suppressions/upload", roleMarketer, hygiene.uploadSuppressions, nil, "streamed upload (upload.go)"},
		{GET, "/deliverability/suppressions/:id/remove", roleMarketer, hygiene.removeSuppressionPage, nil, "asks first"},
		{POST, "/deliverability/suppressions/:id/remove", roleMarketer, hygiene.removeSuppression, nil, ""},
		{GET, "/deliverability/hygiene", roleViewer, hygiene.hygienePage, nil, ""},
		{POST, "/deliverability/hygiene/rule", roleAdmin, hygiene.saveHygieneRule, nil, ""},
		{POST, "/deliverability/hygiene/preview", roleAdmin, hygiene.previewHygiene, nil, ""},
		{POST, "/deliverability/hygiene/apply", roleAdmin, hygiene.applyHygiene, nil, ""},
		{POST, "/deliverability/hygiene/allow", roleAdmin, hygiene.addAllowEntry, nil, ""},
		{POST, "/deliverability/hygiene/allow/:id/delete", roleAdmin, hygiene.removeAllowEntry, nil, ""},
		{POST, "/deliverability/hygiene/staging", roleAdmin, hygiene.setStaging, nil, ""},

		// Blocklist monitoring (reputation.go).
		{GET, "/deliverability/reputation", roleViewer, reputation.reputationPage, nil, ""},
		{POST, "/deliverability/reputation/check", roleAdmin, reputation.checkNow, nil, "asks the blocklists at once"},
		{GET, "/deliverability/reputation/lists/new", roleAdmin, reputation.newListPage, nil, ""},
		{POST, "/deliverability/reputation/lists", roleAdmin, reputation.saveList, nil, ""},
		{GET, "/deliverability/reputation/lists/:id/edit", roleAdmin, reputation.editListPage, nil, ""},
		{POST, "/deliverability/reputation/lists/:id", roleAdmin, reputation.saveList, nil, ""},

		// The compliance centre (compliance.go): admins and viewers read
		// it, marketers only when an admin allows it; only admins change
		// anything.
		{GET, "/compliance", roleComplianceReader, compliance.consentReview, nil, "consent review"},
		{POST, "/compliance/verify", roleComplianceReader, compliance.verifyLedger, nil, "checks the ledger, changes nothing"},
		{GET, "/compliance/consents.csv", roleComplianceReader, compliance.exportConsentsCSV, nil, ""},
		{GET, "/compliance/consents.json", roleComplianceReader, compliance.exportConsentsJSON, nil, ""},
		{GET, "/compliance/readiness", roleViewer, compliance.readinessPage, nil, "sending readiness (readiness.go)"},
		{GET, "/compliance/coverage", roleComplianceReader, compliance.coveragePage, nil, ""},
		{GET, "/compliance/coverage/repermission", roleAdmin, sunset.confirmRepermission, nil, "asks first (sunset.go)"},
		{POST, "/compliance/coverage/repermission", roleAdmin, sunset.createRepermission, nil, "snapshot list and draft campaign"},
		{GET, "/compliance/coverage/:list", roleComplianceReader, compliance.lackingPage, nil, ""},
		{GET, "/compliance/coverage/:list/repermission", roleAdmin, sunset.confirmRepermission, nil, "asks first"},
		{POST, "/compliance/coverage/:list/repermission", roleAdmin, sunset.createRepermission, nil, "snapshot list and draft campaign"},
		{GET, "/compliance/coverage/:list/lacking.csv", roleComplianceReader, compliance.exportLacking, nil, ""},
		{GET, "/compliance/coverage/:list/unsubscribe", roleAdmin, compliance.confirmUnsubscribeLacking, nil, "asks first"},
		{POST, "/compliance/coverage/:list/unsubscribe", roleAdmin, compliance.unsubscribeLacking, nil, ""},
		{GET, "/compliance/people", roleComplianceReader, compliance.peoplePage, nil, ""},
		{GET, "/compliance/subscribers/:id/certificate", roleComplianceReader, compliance.certificatePage, nil, ""},
		{POST, "/compliance/subscribers/:id/export", roleAdmin, compliance.subjectExport, nil, ""},
		{GET, "/compliance/subscribers/:id/rectify", roleAdmin, compliance.rectifyPage, nil, ""},
		{POST, "/compliance/subscribers/:id/rectify", roleAdmin, compliance.rectify, nil, ""},
		{GET, "/compliance/subscribers/:id/erase", roleAdmin, compliance.erasePage, nil, "asks first"},
		{POST, "/compliance/subscribers/:id/erase", roleAdmin, compliance.erase, nil, ""},
		{GET, "/compliance/requests", roleComplianceReader, compliance.requestsPage, nil, "data-subject requests"},
		{POST, "/compliance/requests", roleAdmin, compliance.createRequest, nil, ""},
		{GET, "/compliance/requests/:id", roleComplianceReader, compliance.requestPage, nil, ""},
		{POST, "/compliance/requests/:id/close", roleAdmin, compliance.closeRequest, nil, ""},
		{GET, "/compliance/retention", roleComplianceReader, compliance.retentionPage, nil, ""},
		{POST, "/compliance/retention", roleAdmin, compliance.saveRetention, nil, ""},
		{POST, "/compliance/retention/run", roleAdmin, compliance.runRetention, nil, ""},
		{POST, "/compliance/access", roleAdmin, compliance.saveComplianceAccess, nil, "lets marketers read the centre"},
		{GET, "/compliance/audit", roleComplianceReader, compliance.auditPage, nil, ""},
		{GET, "/compliance/audit.csv", roleComplianceReader, compliance.exportAudit, nil, ""},
	}...)
	return checkRoutes(rs)
}

// trackingRoutes are the opens, clicks and unsubscribes (tracking.go):
// mail clients, image proxies and mailbox providers call them without
// cookies. MountTracking serves them alone.
func trackingRoutes(t *Tracking) []route {
	test := testLinkPage(t.store, "unsubscribe")
	return []route{
		{http.MethodGet, "/t/o/:token", roleSignedLink, t.open, nil, "open pixel"},
		{http.MethodGet, "/t/c/:token", roleSignedLink, t.click, nil, "click redirect"},
		{http.MethodHead, "/t/c/:token", roleSignedLink, t.click, nil, "link checkers; not counted"},
		{http.MethodGet, "/u/:token", roleSignedLink, t.unsubscribePage, nil, ""},
		{http.MethodPost, "/u/:token", roleSignedLink, t.unsubscribe, nil, "also RFC 8058 one-click"},
		// A campaign's test send links here (Echo prefers the static route).
		{http.MethodGet, "/u/" + mailer.TestLinkToken, rolePublic, test, nil, "a test send's link: changes nothing"},
		{http.MethodPost, "/u/" + mailer.TestLinkToken, rolePublic, test, nil, "a test send's link: changes nothing"},
	}
}

// webhookRoutes are the ESP bounce and complaint webhooks (webhooks.go),
// authenticated by the provider's signature or secret. With no Webhooks
// (they could not start) they answer 404, as if not there.
func webhookRoutes(w *Webhooks) []route {
	h := func(f func(*Webhooks, echo.Context) error) echo.HandlerFunc {
		if w == nil {
			return notFound
		}
		return func(c echo.Context) error { return f(w, c) }
	}
	return []route{
		{http.MethodPost, "/webhooks/ses", roleProvider, h((*Webhooks).ses), nil, "SNS-signed"},
		{http.MethodPost, "/webhooks/sendgrid", roleProvider, h((*Webhooks).sendgrid), nil, "ECDSA-signed"},
		{http.MethodPost, "/webhooks/postmark", roleProvider, h((*Webhooks).postmark), nil, "basic auth"},
		{http.MethodPost, "/webhooks/postmark/:token", roleProvider, h((*Webhooks).postmark), nil, "secret in the URL"},
		{http.MethodPost, "/webhooks/mailgun", roleProvider, h((*Webhooks).mailgun), nil, "HMAC-signed"},
	}
}

func notFound(echo.Context) error { return echo.ErrNotFound }
