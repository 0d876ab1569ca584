package web

import "github.com/labstack/echo/v4"

// composeRoutes registers templates, campaigns, the pre-send checklist and the readiness panel.
func (s *Server) composeRoutes(d *echo.Group, r roles) {
	d.GET("/templates", s.comingPage("templates"), r.viewer)
	d.GET("/campaigns", s.comingPage("campaigns"), r.viewer)
	d.GET("/compliance/readiness", s.comingPage("compliance"), r.viewer)
}
