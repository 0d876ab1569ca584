package web

import "github.com/labstack/echo/v4"

// webhookRoutes registers the ESP bounce and complaint webhooks. No session, no CSRF: signed tokens or the
// provider's own authentication.
func (s *Server) webhookRoutes(e *echo.Echo) {
}
