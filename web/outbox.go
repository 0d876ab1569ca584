package web

import (
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/herald-mail/herald/models"
	"github.com/herald-mail/herald/views"
)

// outboxPages serves the outbox: what was sent, or captured, and each message.
type outboxPages struct{ *app }

func (s *outboxPages) outboxPage(c echo.Context) error {
	before, _ := strconv.ParseInt(c.QueryParam("before"), 10, 64)
	msgs, err := s.store.Outbox(c.Request().Context(), models.OutboxQuery{Before: before, Limit: 50})
	if err != nil {
		return err
	}
	var next int64
	if len(msgs) == 50 {
		next = msgs[len(msgs)-1].ID
	}
	labels, err := s.store.OutboxLabels(c.Request().Context(), msgs)
	if err != nil {
		return err
	}
	return s.render(c, 200, views.OutboxPage(s.page(c, "Outbox", "deliverability"), msgs, labels, next, s.delivery().Transport))
}

func (s *outboxPages) outboxMessage(c echo.Context) (*models.OutboxMessage, error) {
	id, err := idParam(c, "id")
	if err != nil {
		return nil, err
	}
	return s.store.OutboxMessage(c.Request().Context(), id)
}

func (s *outboxPages) outboxMessagePage(c echo.Context) error {
	m, err := s.outboxMessage(c)
	if err != nil {
		return err
	}
	return s.render(c, 200, views.OutboxMessagePage(s.page(c, m.Subject, "deliverability"), m))
}

// outboxMessageHTML serves a captured HTML part for the sandboxed preview
// frame. The CSP forbids scripts and the sandbox gives the frame no origin,
// so mail content can never act on the dashboard.
func (s *outboxPages) outboxMessageHTML(c echo.Context) error {
	m, err := s.outboxMessage(c)
	if err != nil {
		return err
	}
	h := c.Response().Header()
	h.Set("Content-Security-Policy", "sandbox; script-src 'none'; default-src 'none'; img-src * data:; style-src 'unsafe-inline'; frame-ancestors 'self'")
	h.Set("X-Frame-Options", "SAMEORIGIN")
	return c.HTMLBlob(200, []byte(m.HTML))
}
