package web

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/herald-mail/herald/models"
	"github.com/herald-mail/herald/views"
)

// automationPages serves the automation builder, an automation's page
// with its per-step figures, and its test mode.
type automationPages struct{ *app }

func (s *automationPages) automationsPage(c echo.Context) error {
	all, err := s.store.Automations(c.Request().Context())
	if err != nil {
		return err
	}
	return s.render(c, http.StatusOK, views.AutomationsPage(s.page(c, "Automations", "automations"), all))
}

func (s *automationPages) form(c echo.Context, status int, vm views.AutomationFormVM) error {
	lists, err := s.store.Lists(c.Request().Context())
	if err != nil {
		return err
	}
	vm.Lists = lists
	if vm.Segments, err = s.store.Segments(c.Request().Context()); err != nil {
		return err
	}
	if vm.Campaigns, err = s.store.Campaigns(c.Request().Context(), 0, 200); err != nil {
		return err
	}
	if vm.Webhooks, err = s.store.Webhooks(c.Request().Context()); err != nil {
		return err
	}
	title := "New automation"
	if vm.A.ID != 0 {
		title = "Edit " + vm.A.Name
	}
	return s.render(c, status, views.AutomationForm(s.page(c, title, "automations"), vm))
}

func (s *automationPages) newAutomationPage(c echo.Context) error {
	a := models.Automation{TriggerKind: models.TriggerListConfirmed, TestWaitSeconds: 5}
	return s.form(c, http.StatusOK, views.AutomationFormVM{A: a, Steps: []models.AutomationStep{{Kind: models.StepSend}}})
}

func (s *automationPages) editAutomationPage(c echo.Context) error {
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	a, err := s.store.Automation(ctx, id)
	if err != nil {
		return err
	}
	steps, err := s.store.AutomationSteps(ctx, id, a.Version)
	if err != nil {
		return err
	}
	live, err := s.live(c, id)
	if err != nil {
		return err
	}
	return s.form(c, http.StatusOK, views.AutomationFormVM{A: *a, Steps: steps, Live: live})
}

func (s *automationPages) live(c echo.Context, id int64) (bool, error) {
	figs, err := s.store.AutomationFigures(c.Request().Context(), id, 0)
	if err != nil {
		return false, err
	}
	for _, f := range figs {
		if f.Passed > 0 || f.Waiting > 0 {
			return true, nil
		}
	}
	return false, nil
}

// fromForm reads the automation and its steps; errs holds what could not
// be read (numbers). Steps ticked "remove" are left out; "add" appends one.
func fromForm(c echo.Context, id int64) (models.Automation, []models.AutomationStep, map[string]string) {
	errs := map[string]string{}
	a := models.Automation{ID: id, Name: c.FormValue("name"), TriggerKind: c.FormValue("trigger_kind"),
		FromEmail: c.FormValue("from_email"), FromName: strings.TrimSpace(c.FormValue("from_name")),
		TZAttribute: strings.TrimSpace(c.FormValue("tz_attribute")), TZDefault: strings.TrimSpace(c.FormValue("tz_default")),
		ExitAttribute: strings.TrimSpace(c.FormValue("exit_attribute")), ExitValue: c.FormValue("exit_value")}
	if v := c.FormValue("list_id"); v != "" {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			a.ListID = &n
		}
	}
	num := func(field, v string, dst *int) {
		v = strings.TrimSpace(v)
		if v == "" {
			*dst = 0
			return
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			errs[field] = fmt.Sprintf("%q is not a whole number.", v)
			return
		}
		*dst = n
	}
	num("test_wait_seconds", c.FormValue("test_wait_seconds"), &a.TestWaitSeconds)
	for field, dst := range map[string]**int64{"trigger_segment_id": &a.TriggerSegmentID, "trigger_campaign_id": &a.TriggerCampaignID} {
		if v := strings.TrimSpace(c.FormValue(field)); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				errs[field] = fmt.Sprintf("%q is not a whole number.", v)
				continue
			}
			*dst = &n
		}
	}
	a.TriggerEvent, a.TriggerURL = c.FormValue("trigger_event"), strings.TrimSpace(c.FormValue("trigger_url"))
	num("trigger_days", c.FormValue("trigger_days"), &a.TriggerDays)
	a.TriggerAttribute = strings.TrimSpace(c.FormValue("trigger_attribute"))
	a.TriggerTime = strings.TrimSpace(c.FormValue("trigger_time"))
	if c.FormValue("trigger_value_set") != "" {
		v := c.FormValue("trigger_value")
		a.TriggerValue = &v
	}
	f, _ := c.FormParams()
	kinds := f["step_kind"]
	at := func(name string, i int) string {
		if vs := f[name]; i < len(vs) {
			return vs[i]
		}
		return ""
	}
	removed := f["remove"]
	var steps []models.AutomationStep
	for i, k := range kinds {
		if slices.Contains(removed, strconv.Itoa(i+1)) {
			continue
		}
		st := models.AutomationStep{Kind: k, Subject: at("step_subject", i), HTML: at("step_html", i), WaitUntil: strings.TrimSpace(at("step_wait_until", i)),
			WaitWeekday: -1, Cond: at("step_cond", i), CondKey: strings.TrimSpace(at("step_cond_key", i)), CondValue: at("step_cond_value", i)}
		key := fmt.Sprintf("steps.%d.", len(steps)+1)
		var hours int
		num(key+"wait", at("step_wait_days", i), &st.WaitDays)
		num(key+"wait", at("step_wait_hours", i), &hours)
		st.WaitSeconds = hours * 3600
		num(key+"cond_step", at("step_cond_step", i), &st.CondStep)
		num(key+"then_step", at("step_then", i), &st.ThenStep)
		num(key+"else_step", at("step_else", i), &st.ElseStep)
		ref := func(field, v string) *int64 {
			v = strings.TrimSpace(v)
			if v == "" {
				return nil
			}
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				errs[key+field] = fmt.Sprintf("%q is not a whole number.", v)
				return nil
			}
			return &n
		}
		st.SegmentID = ref("segment_id", at("step_segment_id", i))
		st.TargetListID = ref("target_list_id", at("step_target_list_id", i))
		st.WebhookID = ref("webhook_id", at("step_webhook_id", i))
		st.AttrKey, st.AttrValue = strings.TrimSpace(at("step_attr_key", i)), at("step_attr_value", i)
		steps = append(steps, st)
	}
	if add := c.FormValue("add"); add != "" {
		st := models.AutomationStep{Kind: add, WaitWeekday: -1}
		switch add {
		case models.StepWait:
			st.WaitDays = 1
		case models.StepBranch:
			st.Cond, st.CondStep = models.CondClicked, 1
		}
		steps = append(steps, st)
	}
	return a, steps, errs
}

func (s *automationPages) createAutomation(c echo.Context) error {
	a, steps, errs := fromForm(c, 0)
	if c.FormValue("add") != "" || len(errs) > 0 {
		code := http.StatusOK
		if len(errs) > 0 {
			code = http.StatusUnprocessableEntity
		}
		return s.form(c, code, views.AutomationFormVM{A: a, Steps: steps, Errs: errs})
	}
	err := s.store.CreateAutomation(s.audited(c, "automation.create", "automation", a.Name, &a.ID), &a, steps)
	var ve *models.ValidationError
	if errors.As(err, &ve) {
		return s.form(c, http.StatusUnprocessableEntity, views.AutomationFormVM{A: a, Steps: steps, Errs: ve.Fields})
	}
	if err != nil {
		return err
	}
	s.flash(c, fmt.Sprintf("Automation “%s” saved as a draft: try it in test mode, then activate it.", a.Name))
	return seeOther(c, fmt.Sprintf("/automations/%d", a.ID))
}

func (s *automationPages) updateAutomation(c echo.Context) error {
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	if _, err := s.store.Automation(c.Request().Context(), id); err != nil {
		return err
	}
	live, err := s.live(c, id)
	if err != nil {
		return err
	}
	a, steps, errs := fromForm(c, id)
	if c.FormValue("add") != "" || len(errs) > 0 {
		code := http.StatusOK
		if len(errs) > 0 {
			code = http.StatusUnprocessableEntity
		}
		return s.form(c, code, views.AutomationFormVM{A: a, Steps: steps, Live: live, Errs: errs})
	}
	mode := c.FormValue("mode")
	if mode == "" {
		mode = models.EditContinue
	}
	summary := fmt.Sprintf("%s: %d steps saved", a.Name, len(steps))
	if live {
		summary += ", people inside " + editModeText(mode)
	}
	err = s.store.UpdateAutomation(s.audited(c, "automation.update", "automation", summary, &id), &a, steps, mode)
	var ve *models.ValidationError
	if errors.As(err, &ve) {
		return s.form(c, http.StatusUnprocessableEntity, views.AutomationFormVM{A: a, Steps: steps, Live: live, Errs: ve.Fields})
	}
	if err != nil {
		return err
	}
	s.flash(c, "Automation saved.")
	return seeOther(c, fmt.Sprintf("/automations/%d", id))
}

func (s *automationPages) view(c echo.Context, status int, id int64, testEmail string, errs map[string]string) error {
	ctx := c.Request().Context()
	a, err := s.store.Automation(ctx, id)
	if err != nil {
		return err
	}
	vm := views.AutomationVM{A: *a, TestEmail: testEmail, Errs: errs}
	if vm.Steps, err = s.store.AutomationSteps(ctx, id, a.Version); err != nil {
		return err
	}
	if vm.Figures, err = s.store.AutomationFigures(ctx, id, a.Version); err != nil {
		return err
	}
	if isHTMX(c) && status == http.StatusOK {
		return s.render(c, status, views.AutomationFigures(vm))
	}
	if testEmail != "" && len(errs) == 0 {
		if sub, err := s.store.SubscriberByEmail(ctx, testEmail); err == nil {
			if r, err := s.store.AutomationRunOf(ctx, id, sub.ID); err == nil {
				vm.TestRun = r
				if vm.TestPath, err = s.store.AutomationPath(ctx, id, sub.ID); err != nil {
					return err
				}
			}
		}
	}
	return s.render(c, status, views.AutomationPage(s.page(c, a.Name, "automations"), vm))
}

func (s *automationPages) automationPage(c echo.Context) error {
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	return s.view(c, http.StatusOK, id, c.QueryParam("test"), nil)
}

func (s *automationPages) setStatus(c echo.Context) error {
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	status := c.FormValue("status")
	err = s.store.SetAutomationStatus(s.audited(c, "automation.status", "automation", "status "+status, &id), id, status)
	var ve *models.ValidationError
	if errors.As(err, &ve) {
		return s.view(c, http.StatusUnprocessableEntity, id, "", ve.Fields)
	}
	if err != nil {
		return err
	}
	s.flash(c, "Automation "+status+".")
	return seeOther(c, fmt.Sprintf("/automations/%d", id))
}

// testRun starts (or restarts) a test run of one subscriber, or moves the
// automations on now; then the page shows the run's path.
func (s *automationPages) testRun(c echo.Context) error {
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	if _, err := s.store.Automation(ctx, id); err != nil {
		return err
	}
	email := strings.TrimSpace(c.FormValue("email"))
	sub, err := s.store.SubscriberByEmail(ctx, email)
	if errors.Is(err, models.ErrNotFound) || email == "" {
		return s.view(c, http.StatusUnprocessableEntity, id, email, map[string]string{
			"email": "The test address must be a subscriber on one of your lists (add yourself first)."})
	}
	if err != nil {
		return err
	}
	if c.FormValue("action") == "start" {
		if err := s.store.RestartTestRun(ctx, id, sub.ID); err != nil {
			return err
		}
		n, err := s.store.EnterAutomation(s.audited(c, "automation.test", "automation", "test run of "+email, &id), id, []int64{sub.ID}, true, time.Now())
		var ve *models.ValidationError
		if errors.As(err, &ve) {
			return s.view(c, http.StatusUnprocessableEntity, id, email, ve.Fields)
		}
		if err != nil {
			return err
		}
		if n == 0 {
			return s.view(c, http.StatusUnprocessableEntity, id, email, map[string]string{
				"email": "That address is already in this automation for real, or is not active: choose another test address."})
		}
	}
	if _, err := s.store.AdvanceAutomation(ctx, id, time.Now()); err != nil {
		return err
	}
	return seeOther(c, fmt.Sprintf("/automations/%d?test=%s", id, url.QueryEscape(email)))
}
