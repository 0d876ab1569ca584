package web

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/herald-mail/herald/models"
)

// apiWebhook is an outgoing webhook in the API; Secret is set only in the
// answer to its creation.
type apiWebhook struct {
	ID             int64     `json:"id"`
	URL            string    `json:"url"`
	Events         []string  `json:"events"`
	Enabled        bool      `json:"enabled"`
	DisabledReason string    `json:"disabled_reason,omitempty"`
	Secret         string    `json:"secret,omitempty"`
	CreatedAt      time.Time `json:"created_at"`
}

func toAPIWebhook(h *models.Webhook) apiWebhook {
	return apiWebhook{ID: h.ID, URL: h.URL, Events: h.Events, Enabled: h.Enabled, DisabledReason: h.DisabledReason, CreatedAt: h.CreatedAt}
}

type webhookInput struct {
	URL     string   `json:"url"`
	Events  []string `json:"events"`
	Enabled *bool    `json:"enabled"` // PUT only; absent keeps it
}

func (s *hookPages) apiWebhooks(c echo.Context) error {
	hooks, err := s.store.Webhooks(c.Request().Context())
	if err != nil {
		return err
	}
	out := make([]apiWebhook, len(hooks))
	for i := range hooks {
		out[i] = toAPIWebhook(&hooks[i])
	}
	return c.JSON(http.StatusOK, map[string]any{"data": out})
}

func (s *hookPages) apiWebhook(c echo.Context) error {
	h, err := s.hook(c)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"data": toAPIWebhook(h)})
}

// apiWebhookInput reads and checks a webhook's JSON for create and update:
// the input with its URL trimmed, and its events; a 422 naming the fields
// that are not valid.
func (s *hookPages) apiWebhookInput(c echo.Context) (webhookInput, []string, error) {
	var in webhookInput
	if err := decodeJSON(c, &in); err != nil {
		return in, nil, err
	}
	in.URL = strings.TrimSpace(in.URL)
	events, errs, err := s.check(c, in.URL, in.Events)
	if err != nil {
		return in, nil, err
	}
	if len(errs) > 0 {
		return in, nil, unprocessable("The webhook is not valid.", errs)
	}
	return in, events, nil
}

func (s *hookPages) apiCreateWebhook(c echo.Context) error {
	in, events, err := s.apiWebhookInput(c)
	if err != nil {
		return err
	}
	h, err := s.store.CreateWebhook(c.Request().Context(), in.URL, events)
	if err != nil {
		return err
	}
	s.audit(c, "webhook.create", h.ID, h.URL+" ("+strings.Join(h.Events, ", ")+")")
	out := toAPIWebhook(h)
	out.Secret = h.Secret
	return c.JSON(http.StatusCreated, map[string]any{"data": out})
}

func (s *hookPages) apiUpdateWebhook(c echo.Context) error {
	h, err := s.hook(c)
	if err != nil {
		return err
	}
	in, events, err := s.apiWebhookInput(c)
	if err != nil {
		return err
	}
	enabled := h.Enabled
	if in.Enabled != nil {
		enabled = *in.Enabled
	}
	if err := s.store.UpdateWebhook(c.Request().Context(), h.ID, in.URL, events, enabled); err != nil {
		return err
	}
	s.audit(c, "webhook.update", h.ID, in.URL+" ("+strings.Join(events, ", ")+")")
	if h, err = s.store.Webhook(c.Request().Context(), h.ID); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"data": toAPIWebhook(h)})
}

func (s *hookPages) apiDeleteWebhook(c echo.Context) error {
	h, err := s.hook(c)
	if err != nil {
		return err
	}
	if err := s.store.DeleteWebhook(c.Request().Context(), h.ID); err != nil && !errors.Is(err, models.ErrNotFound) {
		return err
	}
	s.audit(c, "webhook.delete", h.ID, h.URL)
	return c.NoContent(http.StatusNoContent)
}

// apiWebhookLog is one attempt (or a delivery not attempted yet) in the API.
type apiWebhookLog struct {
	At          time.Time  `json:"at"`
	EventID     string     `json:"event_id"`
	Event       string     `json:"event"`
	Attempt     int        `json:"attempt"`
	StatusCode  int        `json:"status_code,omitempty"`
	Error       string     `json:"error,omitempty"`
	State       string     `json:"state"`
	NextAttempt *time.Time `json:"next_attempt_at,omitempty"`
}

func (s *hookPages) apiWebhookDeliveries(c echo.Context) error {
	h, err := s.hook(c)
	if err != nil {
		return err
	}
	log, err := s.store.WebhookLog(c.Request().Context(), h.ID, webhookLogSize)
	if err != nil {
		return err
	}
	out := make([]apiWebhookLog, len(log))
	for i, e := range log {
		out[i] = apiWebhookLog{At: e.At, EventID: e.EventID, Event: e.Event, Attempt: e.Attempt, StatusCode: e.Code, Error: e.Error, State: e.Status}
		if !e.NextAt.IsZero() {
			next := e.NextAt
			out[i].NextAttempt = &next
		}
	}
	return c.JSON(http.StatusOK, map[string]any{"data": out})
}
