package web

import "github.com/labstack/echo/v4"

// sendingRoutes registers sending domains, domain rules and IP pools.
func (s *Server) sendingRoutes(d *echo.Group, r roles) {
}
