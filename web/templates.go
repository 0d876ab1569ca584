package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/a-h/templ"
	"github.com/herald-mail/herald/mailer"
	"github.com/herald-mail/herald/mailer/defaults"
	"github.com/herald-mail/herald/models"
	"github.com/herald-mail/herald/views"
	"github.com/labstack/echo/v4"
)

// templatePages serves the dashboard's template pages and the live preview.
type templatePages struct{ *app }

func (s *templatePages) templatesPage(c echo.Context) error {
	ts, err := s.store.Templates(c.Request().Context(), "")
	if err != nil {
		return err
	}
	return s.render(c, 200, views.TemplatesPage(s.page(c, "Templates", "templates"), ts))
}

func templateFromForm(c echo.Context) templateInput {
	return templateInput{Kind: c.FormValue("kind"), Name: c.FormValue("name"), Subject: c.FormValue("subject"),
		HTML: c.FormValue("html"), Text: c.FormValue("text")}
}

func (in templateInput) model() models.Template {
	return models.Template{Kind: in.Kind, Name: in.Name, Subject: in.Subject, HTML: in.HTML, Text: in.Text}
}

// templateForm renders the template form with its preview.
func (s *templatePages) templateForm(c echo.Context, status int, title string, t models.Template, errs map[string]string) error {
	pv := s.preview(c.Request().Context(), t.Subject, t.HTML, t.Text, "")
	pv.Scoring = s.mailer != nil && s.mailer.SpamScoring() != nil
	return s.render(c, status, views.TemplateForm(s.page(c, title, "templates"), t, errs, pv))
}

func (s *templatePages) newTemplatePage(c echo.Context) error {
	t := models.Template{Kind: models.TemplateCampaign, Subject: defaults.NewsletterSubject, HTML: defaults.NewsletterHTML}
	if ts, err := s.store.Templates(c.Request().Context(), ""); err == nil && len(ts) == 0 {
		t.Name = "Newsletter"
	}
	return s.templateForm(c, 200, "New template", t, nil)
}

// fieldErrors extracts the field messages of a validation error.
func fieldErrors(err error) (map[string]string, bool) {
	var ue *userError
	if errors.As(err, &ue) && ue.Code == http.StatusUnprocessableEntity {
		return ue.Fields, true
	}
	return nil, false
}

func (s *templatePages) createTemplate(c echo.Context) error {
	in := templateFromForm(c)
	t, err := in.template()
	if errs, ok := fieldErrors(err); ok {
		return s.templateForm(c, http.StatusUnprocessableEntity, "New template", in.model(), errs)
	}
	if err != nil {
		return err
	}
	chg, err := s.store.Begin(c.Request().Context())
	if err != nil {
		return err
	}
	defer chg.End()
	if err := s.store.CreateTemplate(chg.Ctx(), t); errors.Is(err, models.ErrConflict) {
		return s.templateForm(c, http.StatusUnprocessableEntity, "New template", in.model(),
			map[string]string{"name": "A " + t.Kind + " template with this name exists; choose another name."})
	} else if err != nil {
		return err
	}
	if err := chg.Commit(s.auditEntry(c, "template.create", "template", itoa(t.ID), t.Name)); err != nil {
		return err
	}
	s.flash(c, fmt.Sprintf("Template “%s” saved.", t.Name))
	return seeOther(c, fmt.Sprintf("/templates/%d/edit", t.ID))
}

func (s *templatePages) editTemplatePage(c echo.Context) error {
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	t, err := s.store.Template(c.Request().Context(), id)
	if err != nil {
		return err
	}
	return s.templateForm(c, 200, "Edit template", *t, nil)
}

func (s *templatePages) updateTemplate(c echo.Context) error {
	ctx := c.Request().Context()
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	if _, err := s.store.Template(ctx, id); err != nil {
		return err
	}
	in := templateFromForm(c)
	t, err := in.template()
	if errs, ok := fieldErrors(err); ok {
		m := in.model()
		m.ID = id
		return s.templateForm(c, http.StatusUnprocessableEntity, "Edit template", m, errs)
	}
	if err != nil {
		return err
	}
	if other, err := s.store.TemplateByName(ctx, t.Kind, t.Name); err == nil && other.ID != id {
		m := in.model()
		m.ID = id
		return s.templateForm(c, http.StatusUnprocessableEntity, "Edit template", m,
			map[string]string{"name": "Another " + t.Kind + " template has this name; choose another name."})
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
	if err := chg.Commit(s.auditEntry(c, "template.update", "template", itoa(id), t.Name)); err != nil {
		return err
	}
	s.flash(c, fmt.Sprintf("Template “%s” saved.", t.Name))
	return seeOther(c, fmt.Sprintf("/templates/%d/edit", id))
}

func (s *templatePages) deleteTemplatePage(c echo.Context) error {
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	t, err := s.store.Template(c.Request().Context(), id)
	if err != nil {
		return err
	}
	return s.render(c, 200, views.ConfirmDelete(s.page(c, "Delete template", "templates"), "the template “"+t.Name+"”",
		"The template is deleted for good. Campaigns already sent keep their reports.",
		fmt.Sprintf("/templates/%d/delete", id), fmt.Sprintf("/templates/%d/edit", id)))
}

func (s *templatePages) deleteTemplate(c echo.Context) error {
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
	if err := chg.Commit(s.auditEntry(c, "template.delete", "template", itoa(id), t.Name)); err != nil {
		return err
	}
	s.flash(c, fmt.Sprintf("Template “%s” deleted.", t.Name))
	return seeOther(c, "/templates")
}

// removeTemplate deletes a template no unsent campaign uses (the dashboard
// and the API share it).
func (s *app) removeTemplate(ctx context.Context, id int64) (*models.Template, error) {
	t, err := s.store.Template(ctx, id)
	if err != nil {
		return nil, err
	}
	n, err := s.store.TemplateUsage(ctx, id)
	if err != nil {
		return nil, err
	}
	if n > 0 {
		return nil, conflict(fmt.Sprintf("The template “%s” is used by %d campaigns not yet sent; choose another template for them (or cancel them) first.", t.Name, n))
	}
	if err := s.store.DeleteTemplate(ctx, id); err != nil {
		return nil, err
	}
	return t, nil
}

// preview renders a template for the live preview, with sample data or the
// data of the subscriber whose address is given.
func (s *templatePages) preview(ctx context.Context, subject, html, text, email string) views.TemplatePreview {
	d := mailer.SampleData()
	pv := views.TemplatePreview{As: "sample data"}
	if settings, err := s.store.Settings(ctx); err == nil {
		if v := settings[models.SettingOrgName]; v != "" {
			d.Org.Name = v
		}
		if v := settings[models.SettingPostalAddress]; v != "" {
			d.Org.PostalAddress = v
		}
	}
	if email = strings.TrimSpace(email); email != "" {
		if sub, err := s.store.SubscriberByEmail(ctx, email); err == nil {
			d.Subscriber = mailer.SubscriberData{Email: sub.Email, Name: sub.Name, Attributes: sub.Attributes}
			pv.As = "the data of " + sub.Email
		} else {
			pv.Notice = "No subscriber has the address " + email + "; sample data shown."
		}
	}
	p, err := mailer.RenderPreview(subject, html, text, d)
	if err != nil {
		pb := mailer.ExplainTemplateError(err, subject, html, text)
		pv.Error = fieldLabelOf(pb.Field) + ": " + pb.Message
		pv.Problem = views.TemplateProblem{Field: pb.Field, Message: pb.Message, Pointer: pb.Pointer}
		return pv
	}
	pv.Subject, pv.HTML, pv.Text = p.Subject, p.HTML, p.Text
	return pv
}

func fieldLabelOf(f string) string {
	switch f {
	case "subject":
		return "Subject"
	case "text":
		return "Text body"
	}
	return "HTML body"
}

func (s *templatePages) previewTemplate(c echo.Context) error {
	pv := s.preview(c.Request().Context(), c.FormValue("subject"), c.FormValue("html"), c.FormValue("text"), c.FormValue("preview_email"))
	return s.render(c, 200, templ.Join(views.TemplatePreviewPane(pv), views.TemplateProblemsOOB(pv.Problem)))
}

// scoreTemplate shows the template, as typed, to spamd: rendered and
// signed as a campaign from the first sending domain would send it, with
// open and click tracking as the organisation has them.
func (s *templatePages) scoreTemplate(c echo.Context) error {
	ctx := c.Request().Context()
	var sc views.TemplateScore
	var sp *mailer.SpamScoring
	if s.mailer != nil {
		sp = s.mailer.SpamScoring()
	}
	if sp == nil {
		sc.Error = "Content scoring is off: start Herald with HERALD_SPAMD=host:port of SpamAssassin's spamd."
		return s.render(c, 200, views.TemplateScorePane(sc))
	}
	settings, err := s.store.Settings(ctx)
	if err != nil {
		return err
	}
	domains, err := s.store.SendingDomains(ctx)
	if err != nil {
		return err
	}
	from := "news@example.com"
	if len(domains) > 0 {
		from = "news@" + domains[0].Domain
	}
	cp := &models.Campaign{Name: "Template preview", Subject: c.FormValue("subject"), HTML: c.FormValue("html"), Text: c.FormValue("text"),
		FromName: settings[models.SettingOrgName], FromEmail: from, TrackOpens: true, TrackClicks: true}
	msg, err := s.mailer.SampleMessageOf(ctx, cp)
	if err != nil {
		pb := mailer.ExplainTemplateError(err, cp.Subject, cp.HTML, cp.Text)
		sc.Error = "The template does not render: " + fieldLabelOf(pb.Field) + ": " + pb.Message
		return s.render(c, 200, views.TemplateScorePane(sc))
	}
	rep, err := sp.Client.Report(ctx, msg)
	if err != nil {
		sc.Error = "spamd at " + sp.Client.Addr + " did not answer: " + err.Error()
		return s.render(c, 200, views.TemplateScorePane(sc))
	}
	limit, action := mailer.SpamLimit(settings)
	score := strconv.FormatFloat(rep.Score, 'f', 1, 64)
	sc.Check = views.Check{ID: "template.spam_score", OK: rep.Score < limit, Blocking: action == mailer.SpamActionBlock, Score: score,
		Detail: "Scored as a campaign from " + from + " sends it (signed when that domain has a key, tracked): " + score +
			" points; SpamAssassin treats " + strconv.FormatFloat(rep.Threshold, 'f', 1, 64) + " or more as spam, your limit is " +
			strconv.FormatFloat(limit, 'f', 1, 64) + "."}
	for _, r := range mailer.ScoreRules(rep.Rules) {
		sc.Check.Rules = append(sc.Check.Rules, views.SpamRule{Name: r.Name, Points: strconv.FormatFloat(r.Score, 'f', 1, 64),
			Description: r.Description, Hint: r.Hint})
	}
	return s.render(c, 200, views.TemplateScorePane(sc))
}
