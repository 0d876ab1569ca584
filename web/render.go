package web

import (
	"bytes"
	"sync"

	"github.com/a-h/templ"
	"github.com/labstack/echo/v4"
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
