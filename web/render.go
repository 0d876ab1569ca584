package web

import (
	"bytes"
	"sync"

	"github.com/a-h/templ"
	"github.com/labstack/echo/v4"

	"github.com/herald-mail/herald/models"
)

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// render writes a component through a pooled buffer, so a template error
// becomes a clean error page instead of half a page.
func (s *app) render(c echo.Context, status int, comp templ.Component) error {
	buf := bufPool.Get().(*bytes.Buffer)
	buf.Reset()
	defer bufPool.Put(buf)
	if err := comp.Render(c.Request().Context(), buf); err != nil {
		return err
	}
	// A change still open here is one the handler gave up (a refused
	// input re-shows its form): it ends before the answer is written,
	// which saves the session and needs the write lock on SQLite.
	models.EndChanges(c.Request().Context())
	c.Response().Header().Set("Vary", "HX-Request")
	return c.HTMLBlob(status, buf.Bytes())
}

// isHTMX reports whether the request came from htmx (and wants a partial).
func isHTMX(c echo.Context) bool {
	return c.Request().Header.Get("HX-Request") == "true" && c.Request().Header.Get("HX-Boosted") != "true"
}

// seeOther answers a successful form post: HX-Redirect for htmx, 303 otherwise.
func seeOther(c echo.Context, to string) error {
	if isHTMX(c) {
		c.Response().Header().Set("HX-Redirect", to)
		return c.NoContent(200)
	}
	return c.Redirect(303, to)
}

// trackChanges runs each request under models.WithChanges, so that render
// can end a change its handler left open before writing the answer.
func trackChanges(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		c.SetRequest(r.WithContext(models.WithChanges(r.Context())))
		return next(c)
	}
}
