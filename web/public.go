package web

import "github.com/labstack/echo/v4"

// publicRoutes registers the subscriber's public pages: subscribe form, double opt-in confirmation and the preference centre. No session, no CSRF: signed tokens or the
// provider's own authentication.
func (s *Server) publicRoutes(e *echo.Echo) {
}
