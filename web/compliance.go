package web

import "github.com/labstack/echo/v4"

// complianceRoutes registers the compliance centre: consent review, data-subject requests, retention and the audit log.
func (s *Server) complianceRoutes(d *echo.Group, r roles) {
	d.GET("/compliance", s.comingPage("compliance"), r.viewer)
}
