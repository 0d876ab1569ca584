package web

import (
	"net/http"
	"strings"
	"time"

	"github.com/herald-mail/herald/mailer"
	"github.com/herald-mail/herald/models"
	"github.com/labstack/echo/v4"
)

type templateInput struct {
	Kind    string `json:"kind"`
	Name    string `json:"name"`
	Subject string `json:"subject"`
	HTML    string `json:"html"`
	Text    string `json:"text"`
}

// template validates the input; template syntax and unknown fields are
// reported here, with line numbers, so they never surface at send time.
func (in templateInput) template() (*models.Template, error) {
	t := &models.Template{Kind: in.Kind, Name: strings.TrimSpace(in.Name), Subject: in.Subject, HTML: in.HTML, Text: in.Text}
	if t.Kind == "" {
		t.Kind = models.TemplateCampaign
	}
	errs := t.Validate() // the store's own checks, so both ways in say the same
	if len(errs) == 0 {
		if err := mailer.CheckTemplate(t.Subject, t.HTML, t.Text); err != nil {
			// Under the field it belongs to, in plain words; the pointer
			// (the line with a ^ under the place) goes beside it.
			pb := mailer.ExplainTemplateError(err, t.Subject, t.HTML, t.Text)
			errs[pb.Field] = pb.Message
			if pb.Pointer != "" {
				errs[pb.Field+"_pointer"] = pb.Pointer
			}
		}
	}
	if len(errs) > 0 {
		return nil, unprocessable("The template is not valid.", errs)
	}
	return t, nil
}

func (s *apiHandlers) apiTemplates(c echo.Context) error {
	ts, err := s.store.Templates(c.Request().Context(), c.QueryParam("kind"))
	if err != nil {
		return err
	}
	out := make([]apiTemplateJS, len(ts))
	for i := range ts {
		out[i] = toAPITemplate(&ts[i])
	}
	return c.JSON(200, map[string]any{"data": out})
}

func (s *apiHandlers) apiTemplate(c echo.Context) error {
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	t, err := s.store.Template(c.Request().Context(), id)
	if err != nil {
		return err
	}
	return c.JSON(200, map[string]any{"data": toAPITemplate(t)})
}

func (s *apiHandlers) apiCreateTemplate(c echo.Context) error {
	var in templateInput
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	t, err := in.template()
	if err != nil {
		return err
	}
	chg, err := s.store.Begin(c.Request().Context())
	if err != nil {
		return err
	}
	defer chg.End()
	if err := s.store.CreateTemplate(chg.Ctx(), t); err != nil {
		return err
	}
	if err := chg.Commit(s.auditEntry(c, "template.create", "template", itoa(t.ID), t.Name+" (api)")); err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, map[string]any{"data": toAPITemplate(t)})
}

func (s *apiHandlers) apiUpdateTemplate(c echo.Context) error {
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	var in templateInput
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	t, err := in.template()
	if err != nil {
		return err
	}
	t.ID = id
	chg, err := s.store.Begin(c.Request().Context())
	if err != nil {
		return err
	}
	defer chg.End()
	if err := s.store.UpdateTemplate(chg.Ctx(), t); err != nil {
		return err
	}
	if err := chg.Commit(s.auditEntry(c, "template.update", "template", itoa(id), t.Name+" (api)")); err != nil {
		return err
	}
	return s.apiTemplate(c)
}

func (s *apiHandlers) apiDeleteTemplate(c echo.Context) error {
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	chg, err := s.store.Begin(c.Request().Context())
	if err != nil {
		return err
	}
	defer chg.End()
	t, err := s.removeTemplate(chg.Ctx(), id)
	if err != nil {
		return err
	}
	if err := chg.Commit(s.auditEntry(c, "template.delete", "template", itoa(id), t.Name+" (api)")); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

type apiTemplateJS struct {
	ID        int64     `json:"id"`
	Kind      string    `json:"kind"`
	Name      string    `json:"name"`
	Subject   string    `json:"subject"`
	HTML      string    `json:"html"`
	Text      string    `json:"text"`
	UpdatedAt time.Time `json:"updated_at"`
}

func toAPITemplate(t *models.Template) apiTemplateJS {
	return apiTemplateJS{t.ID, t.Kind, t.Name, t.Subject, t.HTML, t.Text, t.UpdatedAt}
}
