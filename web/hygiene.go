package web

import "github.com/labstack/echo/v4"

// hygieneRoutes registers the suppression list, allow list, staging switch and hygiene rules.
func (s *Server) hygieneRoutes(d *echo.Group, r roles) {
}
