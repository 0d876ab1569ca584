package web

import (
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/herald-mail/herald/views"
)

// Request body limits. Every route that reads a body is bounded: a route
// without its own limit gets defaultBodyLimit, so a client cannot make
// the server buffer or spool an unbounded body to disk.
const (
	defaultBodyLimit     = 4 << 20
	apiBodyLimit         = 10 << 20
	suppressionBodyLimit = 20 << 20
	// formOverhead is what a multipart form adds around an import file.
	formOverhead = 1 << 20
)

// importMaxBytes is the largest import file (-import-max-mb).
func (s *app) importMaxBytes() int64 {
	if s.cfg.ImportMaxBytes == 0 {
		return views.MaxImportMB << 20
	}
	return s.cfg.ImportMaxBytes
}

// bodyLimit is the largest body accepted for path.
func (s *app) bodyLimit(path string) int64 {
	switch {
	case path == "/imports":
		return s.importMaxBytes() + formOverhead
	case path == "/deliverability/suppressions/upload":
		return suppressionBodyLimit
	case strings.HasPrefix(path, "/api/"):
		return apiBodyLimit
	}
	return defaultBodyLimit
}

// limitBodies refuses a body whose announced length is over the route's
// limit before reading any of it, and stops reading one that grows past it
// unannounced. It also removes the temporary files of a parsed multipart
// form when the request ends: net/http does that only for the request it
// made, and the session middleware hands the handlers a copy (with
// WithContext), so the copy's form, with subscriber data in its files,
// stayed in the temp folder forever.
func (s *app) limitBodies(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		defer func() {
			for _, req := range []*http.Request{r, c.Request()} {
				if req.MultipartForm != nil {
					_ = req.MultipartForm.RemoveAll()
				}
			}
		}()
		if r.Body == nil || r.Body == http.NoBody {
			return next(c)
		}
		limit := s.bodyLimit(r.URL.Path)
		if limit > defaultBodyLimit {
			// An upload: more time than a form to arrive (the server's
			// ReadTimeout would cut a large file on a slow link).
			_ = http.NewResponseController(c.Response().Writer).SetReadDeadline(time.Now().Add(uploadReadTimeout))
		}
		if r.ContentLength > limit {
			// Reading no further: the client learns now, not after sending
			// a gigabyte, and the connection is closed after the answer.
			c.Response().Header().Set("Connection", "close")
			return &userError{http.StatusRequestEntityTooLarge, "too_large",
				fmt.Sprintf("The upload is %d MB; the limit here is %d MB.", (r.ContentLength+1<<20-1)>>20, limit>>20), nil}
		}
		r.Body = http.MaxBytesReader(c.Response(), r.Body, limit)
		return next(c)
	}
}

// contentSecurityPolicy is every page's policy: scripts only from Herald's
// own files (no inline script or handler attributes: static/app.js binds
// the few behaviours by data attributes), styles from Herald and inline
// (Pico, htmx's indicator style and style attributes; styles cannot run
// code), images from anywhere over https and data: (brand logos, and
// email previews in srcdoc frames, which inherit this policy), no
// plugins, no <base>, and no framing by other sites. Routes that need
// more or less set their own (the outbox's HTML part).
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; " +
	"img-src 'self' data: https: http:; font-src 'self'; connect-src 'self'; object-src 'none'; " +
	"base-uri 'none'; frame-ancestors 'self'"

// securityHeaders sets the policy and its companions on every response,
// before the handler runs, so error pages and redirects carry them too.
func securityHeaders(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Response().Header()
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		return next(c)
	}
}

// stripQueryCSRF removes a _csrf parameter from the query string: Echo's
// form lookup reads r.Form, which merges the query into the body's
// fields, and a token in a URL ends up in logs, history and Referer
// headers. The token is accepted only from the form body or the
// X-CSRF-Token header.
func stripQueryCSRF(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		if strings.Contains(r.URL.RawQuery, "csrf") {
			q := r.URL.Query()
			q.Del("_csrf")
			r.URL.RawQuery = q.Encode()
		}
		return next(c)
	}
}

// clientIP extracts the client address: the TCP peer, or, when the peer is
// one of the trusted proxies, the first address in X-Forwarded-For that
// is not a trusted proxy itself. With no trusted proxies configured,
// X-Forwarded-For and X-Real-IP are never believed: without a proxy (a LAN,
// a container's published port) anyone could forge them and dodge the
// per-IP login and signup limits or write a false IP into consent
// evidence.
func clientIP(proxies []*net.IPNet) echo.IPExtractor {
	if len(proxies) == 0 {
		return echo.ExtractIPDirect()
	}
	opts := []echo.TrustOption{echo.TrustLoopback(false), echo.TrustLinkLocal(false), echo.TrustPrivateNet(false)}
	for _, p := range proxies {
		opts = append(opts, echo.TrustIPRange(p))
	}
	return echo.ExtractIPFromXFFHeader(opts...)
}

// HTTP server timeouts. A client gets readHeaderTimeout to send its
// headers and readTimeout for the whole request (uploads extend their
// own deadline); a kept-alive connection waits idleTimeout for the next
// request. Without them a drip-fed request holds a connection and its
// goroutine for as long as the client likes.
const (
	readHeaderTimeout = 10 * time.Second
	readTimeout       = 2 * time.Minute
	idleTimeout       = 2 * time.Minute
	uploadReadTimeout = 30 * time.Minute
)

// HTTPServer is the http.Server that serves h, with Herald's timeouts.
func HTTPServer(h http.Handler) *http.Server {
	return &http.Server{Handler: h, ReadHeaderTimeout: readHeaderTimeout, ReadTimeout: readTimeout, IdleTimeout: idleTimeout}
}
