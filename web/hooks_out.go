package web

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/herald-mail/herald/internal/outhook"
	"github.com/herald-mail/herald/models"
	"github.com/herald-mail/herald/views"
)

// hookPages serves Settings → Webhooks: the outgoing webhooks (the
// incoming ESP webhooks are webhooks.go).
type hookPages struct{ *app }

// webhookLogSize is how many attempts a webhook's page shows.
const webhookLogSize = 100

func (s *hookPages) allowPrivate(c echo.Context) (bool, error) {
	v, err := s.store.Setting(c.Request().Context(), models.SettingWebhookPrivate)
	return v == "on", err
}

func (s *hookPages) renderList(c echo.Context, code int, f views.WebhookForm, created *models.Webhook) error {
	hooks, err := s.store.Webhooks(c.Request().Context())
	if err != nil {
		return err
	}
	allow, err := s.allowPrivate(c)
	if err != nil {
		return err
	}
	return s.render(c, code, views.WebhooksPage(s.page(c, "Webhooks", "settings"), hooks, allow, f, created))
}

func (s *hookPages) list(c echo.Context) error {
	return s.renderList(c, http.StatusOK, views.WebhookForm{Events: []string{models.HookBounced, models.HookComplained, models.HookUnsubscribed}}, nil)
}

// form parses and checks a webhook form; the URL is checked against the
// private-target rule as it stands now.
func (s *hookPages) form(c echo.Context) (views.WebhookForm, error) {
	params, err := c.FormParams()
	if err != nil {
		return views.WebhookForm{}, unprocessable("The form could not be read; reload the page and try again.", nil)
	}
	f := views.WebhookForm{URL: strings.TrimSpace(params.Get("url")), Enabled: params.Get("enabled") == "on", Errors: map[string]string{}}
	f.Events, f.Errors, err = s.check(c, f.URL, params["events"])
	return f, err
}

// check validates a webhook's URL (against the private-target rule as it
// stands now) and events, returning the events in canonical order and a
// message per field that is wrong.
func (s *hookPages) check(c echo.Context, rawURL string, events []string) ([]string, map[string]string, error) {
	errs := map[string]string{}
	known, unknown := models.ValidWebhookEvents(events)
	switch {
	case len(unknown) > 0:
		errs["events"] = fmt.Sprintf("Unknown event %q: choose among %s.", unknown[0], strings.Join(models.WebhookEvents, ", "))
	case len(known) == 0:
		errs["events"] = "Choose at least one event to send."
	}
	allow, err := s.allowPrivate(c)
	if err != nil {
		return nil, nil, err
	}
	if err := outhook.CheckURL(c.Request().Context(), rawURL, allow, nil); err != nil {
		var te *outhook.TargetError
		if !errors.As(err, &te) {
			return nil, nil, err
		}
		errs["url"] = te.Msg
	}
	return known, errs, nil
}

func (s *hookPages) create(c echo.Context) error {
	ctx := c.Request().Context()
	f, err := s.form(c)
	if err != nil {
		return err
	}
	if len(f.Errors) > 0 {
		return s.renderList(c, http.StatusUnprocessableEntity, f, nil)
	}
	h, err := s.store.CreateWebhook(ctx, f.URL, f.Events)
	if err != nil {
		return err
	}
	s.audit(c, "webhook.create", h.ID, h.URL+" ("+strings.Join(h.Events, ", ")+")")
	return s.renderList(c, http.StatusOK, views.WebhookForm{}, h)
}

func (s *hookPages) audit(c echo.Context, action string, id int64, summary string) {
	if err := s.store.Audit(c.Request().Context(), s.auditEntry(c, action, "webhook", itoa(id), summary)); err != nil {
		s.log.Error("audit failed", "err", err, "action", action)
	}
}

func (s *hookPages) setPrivate(c echo.Context) error {
	v := ""
	if c.FormValue("allow_private") == "on" {
		v = "on"
	}
	before, err := s.store.Setting(c.Request().Context(), models.SettingWebhookPrivate)
	if err != nil {
		return err
	}
	if before != v {
		if err := s.store.SetSetting(c.Request().Context(), models.SettingWebhookPrivate, v); err != nil {
			return err
		}
		s.audit(c, "settings.update", 0, models.SettingWebhookPrivate+": "+before+" → "+v)
	}
	if v == "on" {
		s.flash(c, "Webhooks may now target loopback and private addresses.")
	} else {
		s.flash(c, "Webhooks to loopback and private addresses are refused again.")
	}
	return seeOther(c, "/settings/webhooks")
}

func (s *hookPages) hook(c echo.Context) (*models.Webhook, error) {
	id, err := idParam(c, "id")
	if err != nil {
		return nil, err
	}
	h, err := s.store.Webhook(c.Request().Context(), id)
	if errors.Is(err, models.ErrNotFound) {
		return nil, notFoundErr("There is no such webhook; it may have been deleted.")
	}
	return h, err
}

func (s *hookPages) renderHook(c echo.Context, code int, h *models.Webhook, f views.WebhookForm) error {
	log, err := s.store.WebhookLog(c.Request().Context(), h.ID, webhookLogSize)
	if err != nil {
		return err
	}
	return s.render(c, code, views.WebhookPage(s.page(c, "Webhook", "settings"), h, f, log))
}

func (s *hookPages) show(c echo.Context) error {
	h, err := s.hook(c)
	if err != nil {
		return err
	}
	return s.renderHook(c, http.StatusOK, h, views.WebhookForm{ID: h.ID, URL: h.URL, Events: h.Events, Enabled: h.Enabled})
}

func (s *hookPages) update(c echo.Context) error {
	h, err := s.hook(c)
	if err != nil {
		return err
	}
	f, err := s.form(c)
	if err != nil {
		return err
	}
	f.ID = h.ID
	if len(f.Errors) > 0 {
		return s.renderHook(c, http.StatusUnprocessableEntity, h, f)
	}
	if err := s.store.UpdateWebhook(c.Request().Context(), h.ID, f.URL, f.Events, f.Enabled); err != nil {
		return err
	}
	s.audit(c, "webhook.update", h.ID, f.URL+" ("+strings.Join(f.Events, ", ")+")")
	s.flash(c, "Webhook saved.")
	return seeOther(c, fmt.Sprintf("/settings/webhooks/%d", h.ID))
}

func (s *hookPages) test(c echo.Context) error {
	h, err := s.hook(c)
	if err != nil {
		return err
	}
	if !h.Enabled {
		return unprocessable("This webhook is disabled: enable it first, then send a test event.", nil)
	}
	now := time.Now()
	if _, err := s.store.EnqueueWebhookEvents(c.Request().Context(), []models.Webhook{*h}, []models.HookEvent{models.TestHookEvent(now)}, now); err != nil {
		return err
	}
	s.flash(c, "Test event queued: it is posted within seconds; refresh the log to see the result.")
	return seeOther(c, fmt.Sprintf("/settings/webhooks/%d", h.ID))
}

func (s *hookPages) delete(c echo.Context) error {
	h, err := s.hook(c)
	if err != nil {
		return err
	}
	if err := s.store.DeleteWebhook(c.Request().Context(), h.ID); err != nil {
		return err
	}
	s.audit(c, "webhook.delete", h.ID, h.URL)
	s.flash(c, "Webhook deleted.")
	return seeOther(c, "/settings/webhooks")
}
