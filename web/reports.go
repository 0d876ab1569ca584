package web

import (
	"github.com/labstack/echo/v4"

	"github.com/herald-mail/herald/views"
)

// reportRoutes registers the dashboard home, live campaign progress and the
// reports.
func (s *Server) reportRoutes(d *echo.Group, r roles) {
	d.GET("/", s.dashboard, r.viewer)
}

func (s *Server) dashboard(c echo.Context) error {
	lists, err := s.store.Lists(c.Request().Context())
	if err != nil {
		return err
	}
	var total int64
	for _, l := range lists {
		total += l.Confirmed
	}
	return s.render(c, 200, views.Dashboard(s.page(c, "Dashboard", "dashboard"), lists, total))
}
