package web

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/herald-mail/herald/views"
)

// pingTimeout bounds the database check of /readyz and of a failed
// request: a database that has not answered by then counts as down.
const pingTimeout = 2 * time.Second

// retryAfter is what a 503 tells clients to wait, in seconds.
const retryAfter = "30"

// readiness is the body of /readyz.
type readiness struct {
	Ready    bool            `json:"ready"`
	Database readinessCheck  `json:"database"`
	Mailer   mailerReadiness `json:"mailer"`
}

type readinessCheck struct {
	OK      bool   `json:"ok"`
	Problem string `json:"problem,omitempty"`
}

type mailerReadiness struct {
	readinessCheck
	// DatabaseDownSince is when the mailer lost its database; omitted
	// while it has it.
	DatabaseDownSince *time.Time `json:"database_down_since,omitempty"`
	// LastClaim is when the mailer last claimed deliveries successfully.
	LastClaim *time.Time `json:"last_claim,omitempty"`
}

// readyz answers whether this node can do its work: 200 when the database
// answers and the mailer runs with its database, 503 otherwise, with what
// is down. /healthz stays the liveness check: the process answers.
func (s *app) readyz(c echo.Context) error {
	r := readiness{Database: readinessCheck{OK: true}}
	ctx, cancel := context.WithTimeout(c.Request().Context(), pingTimeout)
	defer cancel()
	if err := s.store.Ping(ctx); err != nil {
		s.log.Warn("readiness: database does not answer", "err", err)
		r.Database = readinessCheck{Problem: "the database does not answer; Herald recovers by itself once it does"}
	}
	h := s.mailer.Health()
	r.Mailer.OK = h.Running && h.DatabaseReachable
	if !h.LastClaim.IsZero() {
		r.Mailer.LastClaim = &h.LastClaim
	}
	switch {
	case !h.Running:
		r.Mailer.Problem = "the mailer is not running"
	case !h.DatabaseReachable:
		r.Mailer.DatabaseDownSince = &h.DownSince
		r.Mailer.Problem = "the mailer cannot reach the database: it claims nothing and holds its deliveries until the database answers"
	}
	r.Ready = r.Database.OK && r.Mailer.OK
	c.Response().Header().Set("Cache-Control", "no-store")
	if !r.Ready {
		c.Response().Header().Set("Retry-After", retryAfter)
		return c.JSON(http.StatusServiceUnavailable, r)
	}
	return c.JSON(http.StatusOK, r)
}

// databaseDown reports whether the database fails to answer a ping: what
// a request's failure is checked against before it is called a bug.
func (s *app) databaseDown(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), pingTimeout)
	defer cancel()
	return s.store.Ping(ctx) != nil
}

// unavailable answers a request that failed because the database does not
// answer: 503 with a JSON error for the API, a page saying so otherwise,
// rendered from nothing the database holds.
func (s *app) unavailable(w http.ResponseWriter, r *http.Request, err error) {
	rid := w.Header().Get(echo.HeaderXRequestID)
	s.log.Warn("request failed: database unreachable", "err", err, "method", r.Method, "path", r.URL.Path, "request_id", rid)
	w.Header().Set("Retry-After", retryAfter)
	w.Header().Set("Cache-Control", "no-store")
	if strings.HasPrefix(r.URL.Path, "/api/") {
		w.Header().Set("Content-Type", echo.MIMEApplicationJSONCharsetUTF8)
		w.WriteHeader(http.StatusServiceUnavailable)
		_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"code": "database_unreachable",
			"message":    "Herald cannot reach its database right now. It recovers by itself once the database answers; retry in a minute.",
			"request_id": rid}})
		return
	}
	var buf bytes.Buffer
	_ = views.DatabaseUnavailable(rid, !subscriberFacing(r.URL.Path)).Render(r.Context(), &buf)
	w.Header().Set("Content-Type", echo.MIMETextHTMLCharsetUTF8)
	w.WriteHeader(http.StatusServiceUnavailable)
	_, _ = w.Write(buf.Bytes())
}

// sessionError is the session middleware's error handler: loading or
// saving a session is the first database access of every dashboard
// request, so its failure is where an outage shows first.
func (s *app) sessionError(w http.ResponseWriter, r *http.Request, err error) {
	if s.databaseDown(r.Context()) {
		s.unavailable(w, r, err)
		return
	}
	rid := w.Header().Get(echo.HeaderXRequestID)
	s.log.Error("session failed", "err", err, "method", r.Method, "path", r.URL.Path, "request_id", rid)
	var buf bytes.Buffer
	_ = views.ErrorPage(http.StatusInternalServerError, http.StatusText(http.StatusInternalServerError),
		classify(err).Message, rid, true).Render(r.Context(), &buf)
	w.Header().Set("Content-Type", echo.MIMETextHTMLCharsetUTF8)
	w.WriteHeader(http.StatusInternalServerError)
	_, _ = w.Write(buf.Bytes())
}
