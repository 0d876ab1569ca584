package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/herald-mail/herald/models"
)

type apiStepJS struct {
	Position    int    `json:"position"`
	Kind        string `json:"kind"`
	CampaignID  *int64 `json:"campaign_id"`
	Subject     string `json:"subject"`
	HTML        string `json:"html"`
	Text        string `json:"text"`
	WaitDays    int    `json:"wait_days"`
	WaitSeconds int    `json:"wait_seconds"`
	WaitUntil   string `json:"wait_until"`
	WaitWeekday int    `json:"wait_weekday"`
	Cond        string `json:"cond"`
	CondStep    int    `json:"cond_step"`
	CondKey     string `json:"cond_key"`
	CondValue   string `json:"cond_value"`
	ThenStep    int    `json:"then_step"`
	ElseStep    int    `json:"else_step"`
	SegmentID   *int64 `json:"segment_id"`
	TargetList  *int64 `json:"target_list_id"`
	AttrKey     string `json:"attr_key"`
	AttrValue   string `json:"attr_value"`
	WebhookID   *int64 `json:"webhook_id"`
}

type apiAutomationJS struct {
	ID              int64       `json:"id"`
	Name            string      `json:"name"`
	Status          string      `json:"status"`
	Trigger         string      `json:"trigger"`
	ListID          *int64      `json:"list_id"`
	ExitAttribute   string      `json:"exit_attribute"`
	ExitValue       string      `json:"exit_value"`
	TZAttribute     string      `json:"tz_attribute"`
	TZDefault       string      `json:"tz_default"`
	FromName        string      `json:"from_name"`
	FromEmail       string      `json:"from_email"`
	Version         int         `json:"version"`
	TestWaitSeconds int         `json:"test_wait_seconds"`
	ActivatedAt     *time.Time  `json:"activated_at"`
	CreatedAt       time.Time   `json:"created_at"`
	UpdatedAt       time.Time   `json:"updated_at"`
	Steps           []apiStepJS `json:"steps"`
	TriggerSegment  *int64      `json:"trigger_segment_id"`
	TriggerCampaign *int64      `json:"trigger_campaign_id"`
	TriggerEvent    string      `json:"trigger_event"`
	TriggerURL      string      `json:"trigger_url"`
	TriggerDays     int         `json:"trigger_days"`
	TriggerAttr     string      `json:"trigger_attribute"`
	TriggerValue    *string     `json:"trigger_value"`
	TriggerTime     string      `json:"trigger_time"`
}

func toAPIAutomation(a *models.Automation, steps []models.AutomationStep) apiAutomationJS {
	out := apiAutomationJS{a.ID, a.Name, a.Status, a.TriggerKind, a.ListID, a.ExitAttribute, a.ExitValue, a.TZAttribute, a.TZDefault,
		a.FromName, a.FromEmail, a.Version, a.TestWaitSeconds, a.ActivatedAt, a.CreatedAt, a.UpdatedAt, make([]apiStepJS, len(steps)),
		a.TriggerSegmentID, a.TriggerCampaignID, a.TriggerEvent, a.TriggerURL, a.TriggerDays, a.TriggerAttribute, a.TriggerValue, a.TriggerTime}
	for i, st := range steps {
		out.Steps[i] = apiStepJS{st.Position, st.Kind, st.CampaignID, st.Subject, st.HTML, st.Text, st.WaitDays, st.WaitSeconds,
			st.WaitUntil, st.WaitWeekday, st.Cond, st.CondStep, st.CondKey, st.CondValue, st.ThenStep, st.ElseStep,
			st.SegmentID, st.TargetListID, st.AttrKey, st.AttrValue, st.WebhookID}
	}
	return out
}

type stepInput struct {
	Kind        string `json:"kind"`
	Subject     string `json:"subject"`
	HTML        string `json:"html"`
	Text        string `json:"text"`
	WaitDays    int    `json:"wait_days"`
	WaitSeconds int    `json:"wait_seconds"`
	WaitUntil   string `json:"wait_until"`
	WaitWeekday *int   `json:"wait_weekday"`
	Cond        string `json:"cond"`
	CondStep    int    `json:"cond_step"`
	CondKey     string `json:"cond_key"`
	CondValue   string `json:"cond_value"`
	ThenStep    int    `json:"then_step"`
	ElseStep    int    `json:"else_step"`
	SegmentID   *int64 `json:"segment_id"`
	TargetList  *int64 `json:"target_list_id"`
	AttrKey     string `json:"attr_key"`
	AttrValue   string `json:"attr_value"`
	WebhookID   *int64 `json:"webhook_id"`
}

type automationInput struct {
	Name            string      `json:"name"`
	Trigger         string      `json:"trigger"`
	ListID          *int64      `json:"list_id"`
	ExitAttribute   string      `json:"exit_attribute"`
	ExitValue       string      `json:"exit_value"`
	TZAttribute     string      `json:"tz_attribute"`
	TZDefault       string      `json:"tz_default"`
	FromName        string      `json:"from_name"`
	FromEmail       string      `json:"from_email"`
	TestWaitSeconds *int        `json:"test_wait_seconds"`
	Steps           []stepInput `json:"steps"`
	TriggerSegment  *int64      `json:"trigger_segment_id"`
	TriggerCampaign *int64      `json:"trigger_campaign_id"`
	TriggerEvent    string      `json:"trigger_event"`
	TriggerURL      string      `json:"trigger_url"`
	TriggerDays     int         `json:"trigger_days"`
	TriggerAttr     string      `json:"trigger_attribute"`
	TriggerValue    *string     `json:"trigger_value"`
	TriggerTime     string      `json:"trigger_time"`
	// Status, when set, activates or pauses; OnEdit says what happens to
	// the people inside when the steps change (PUT).
	Status string `json:"status"`
	OnEdit string `json:"on_edit"`
}

func (in automationInput) automation(id int64) (*models.Automation, []models.AutomationStep) {
	a := &models.Automation{ID: id, Name: in.Name, TriggerKind: in.Trigger, ListID: in.ListID, ExitAttribute: in.ExitAttribute,
		ExitValue: in.ExitValue, TZAttribute: in.TZAttribute, TZDefault: in.TZDefault, FromName: in.FromName, FromEmail: in.FromEmail,
		TestWaitSeconds: 5, TriggerSegmentID: in.TriggerSegment, TriggerCampaignID: in.TriggerCampaign, TriggerEvent: in.TriggerEvent,
		TriggerURL: in.TriggerURL, TriggerDays: in.TriggerDays, TriggerAttribute: in.TriggerAttr, TriggerValue: in.TriggerValue,
		TriggerTime: in.TriggerTime}
	if in.TestWaitSeconds != nil {
		a.TestWaitSeconds = *in.TestWaitSeconds
	}
	var steps []models.AutomationStep
	if in.Steps != nil {
		steps = make([]models.AutomationStep, len(in.Steps))
	}
	for i, st := range in.Steps {
		wd := -1
		if st.WaitWeekday != nil {
			wd = *st.WaitWeekday
		}
		steps[i] = models.AutomationStep{Kind: st.Kind, Subject: st.Subject, HTML: st.HTML, Text: st.Text, WaitDays: st.WaitDays,
			WaitSeconds: st.WaitSeconds, WaitUntil: st.WaitUntil, WaitWeekday: wd, Cond: st.Cond, CondStep: st.CondStep,
			CondKey: st.CondKey, CondValue: st.CondValue, ThenStep: st.ThenStep, ElseStep: st.ElseStep, SegmentID: st.SegmentID,
			TargetListID: st.TargetList, AttrKey: st.AttrKey, AttrValue: st.AttrValue, WebhookID: st.WebhookID}
	}
	return a, steps
}

func automationInvalid(err error) error {
	var ve *models.ValidationError
	if errors.As(err, &ve) {
		return unprocessable("The automation is not valid: "+firstMessage(ve.Fields), ve.Fields)
	}
	return err
}

func (s *apiHandlers) apiAutomations(c echo.Context) error {
	ctx := c.Request().Context()
	all, err := s.store.Automations(ctx)
	if err != nil {
		return err
	}
	out := make([]apiAutomationJS, len(all))
	for i := range all {
		steps, err := s.store.AutomationSteps(ctx, all[i].ID, all[i].Version)
		if err != nil {
			return err
		}
		out[i] = toAPIAutomation(&all[i], steps)
	}
	return c.JSON(200, map[string]any{"data": out})
}

func (s *apiHandlers) apiAutomation(c echo.Context) error {
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	return s.answerAutomation(c, id, http.StatusOK)
}

func (s *apiHandlers) apiCreateAutomation(c echo.Context) error {
	var in automationInput
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	a, steps := in.automation(0)
	chg, err := s.store.Begin(c.Request().Context())
	if err != nil {
		return err
	}
	defer chg.End()
	if err := s.store.CreateAutomation(chg.Ctx(), a, steps); err != nil {
		return automationInvalid(err)
	}
	if in.Status != "" {
		if err := s.store.SetAutomationStatus(chg.Ctx(), a.ID, in.Status); err != nil {
			return automationInvalid(err)
		}
	}
	if err := chg.Commit(s.auditEntry(c, "automation.create", "automation", itoa(a.ID), a.Name+" (api)")); err != nil {
		return err
	}
	return s.answerAutomation(c, a.ID, http.StatusCreated)
}

// answerAutomation answers automation id with its current steps.
func (s *apiHandlers) answerAutomation(c echo.Context, id int64, code int) error {
	ctx := c.Request().Context()
	a, err := s.store.Automation(ctx, id)
	if err != nil {
		return err
	}
	steps, err := s.store.AutomationSteps(ctx, id, a.Version)
	if err != nil {
		return err
	}
	return c.JSON(code, map[string]any{"data": toAPIAutomation(a, steps)})
}

func (s *apiHandlers) apiUpdateAutomation(c echo.Context) error {
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	var in automationInput
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	a, steps := in.automation(id)
	mode := in.OnEdit
	if mode == "" {
		mode = models.EditContinue
	}
	chg, err := s.store.Begin(c.Request().Context())
	if err != nil {
		return err
	}
	defer chg.End()
	if err := s.store.UpdateAutomation(chg.Ctx(), a, steps, mode); err != nil {
		return automationInvalid(err)
	}
	if in.Status != "" {
		if err := s.store.SetAutomationStatus(chg.Ctx(), id, in.Status); err != nil {
			return automationInvalid(err)
		}
	}
	summary := a.Name + " (api)"
	if steps != nil {
		summary = fmt.Sprintf("%s: steps saved as version %d, people inside %s (api)", a.Name, a.Version, editModeText(mode))
	}
	if err := chg.Commit(s.auditEntry(c, "automation.update", "automation", itoa(id), summary)); err != nil {
		return err
	}
	return s.answerAutomation(c, id, http.StatusOK)
}

// editModeText says what an edit did to the people inside, for the audit log.
func editModeText(mode string) string {
	if mode == models.EditFinish {
		return "finish their version"
	}
	return "continue on the new version"
}

func (s *apiHandlers) apiDeleteAutomation(c echo.Context) error {
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	chg, err := s.store.Begin(c.Request().Context())
	if err != nil {
		return err
	}
	defer chg.End()
	if err := s.store.DeleteAutomation(chg.Ctx(), id); err != nil {
		return err
	}
	if err := chg.Commit(s.auditEntry(c, "automation.delete", "automation", itoa(id), "(api)")); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

type enterInput struct {
	SubscriberIDs []int64  `json:"subscriber_ids"`
	Emails        []string `json:"emails"`
	Test          bool     `json:"test"`
}

// apiEnterAutomation puts subscribers, by id or address, into an
// automation at its first step.
func (s *apiHandlers) apiEnterAutomation(c echo.Context) error {
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	var in enterInput
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	ctx := c.Request().Context()
	ids, unknown, err := s.automationPeople(ctx, id, in.SubscriberIDs, in.Emails, "enter", "Enter")
	if err != nil {
		return err
	}
	chg, err := s.store.Begin(ctx)
	if err != nil {
		return err
	}
	defer chg.End()
	n, err := s.store.EnterAutomation(chg.Ctx(), id, ids, in.Test, time.Now())
	if err != nil {
		return automationInvalid(err)
	}
	if err := chg.Commit(s.auditEntry(c, "automation.enter", "automation", itoa(id), fmt.Sprintf("%d entered (api)", n))); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"data": map[string]any{"entered": n, "unknown": unknown}})
}

// automationPeople checks the people an enter or exit call names (at
// least one, at most 10,000) and the automation, and returns their ids
// with the addresses no subscriber has.
func (s *apiHandlers) automationPeople(ctx context.Context, id int64, subIDs []int64, emails []string, verb, Verb string) ([]int64, []string, error) {
	if len(subIDs)+len(emails) == 0 {
		return nil, nil, unprocessable("Name the people to "+verb+": subscriber_ids or emails.", map[string]string{"subscriber_ids": "Name at least one subscriber."})
	}
	if len(subIDs)+len(emails) > 10000 {
		return nil, nil, unprocessable(Verb+" at most 10,000 people per call.", map[string]string{"subscriber_ids": "At most 10,000 per call."})
	}
	if _, err := s.store.Automation(ctx, id); err != nil {
		return nil, nil, err
	}
	ids := append([]int64(nil), subIDs...)
	unknown := []string{}
	for _, e := range emails {
		sub, err := s.store.SubscriberByEmail(ctx, e)
		if errors.Is(err, models.ErrNotFound) {
			unknown = append(unknown, e)
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		ids = append(ids, sub.ID)
	}
	return ids, unknown, nil
}

type exitInput struct {
	SubscriberIDs []int64  `json:"subscriber_ids"`
	Emails        []string `json:"emails"`
	Reason        string   `json:"reason"`
}

// apiExitAutomation takes people, by id or address, out of an automation
// ("stop when they buy"): they get no further step.
func (s *apiHandlers) apiExitAutomation(c echo.Context) error {
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	var in exitInput
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	ctx := c.Request().Context()
	ids, unknown, err := s.automationPeople(ctx, id, in.SubscriberIDs, in.Emails, "take out", "Take out")
	if err != nil {
		return err
	}
	reason := in.Reason
	if reason == "" {
		reason = "exit by API"
	}
	chg, err := s.store.Begin(ctx)
	if err != nil {
		return err
	}
	defer chg.End()
	n, err := s.store.ExitAutomation(chg.Ctx(), id, ids, reason, time.Now())
	if err != nil {
		return automationInvalid(err)
	}
	if err := chg.Commit(s.auditEntry(c, "automation.exit", "automation", itoa(id), fmt.Sprintf("%d left: %s (api)", n, reason))); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"data": map[string]any{"exited": n, "unknown": unknown}})
}

type apiStepFiguresJS struct {
	Position     int    `json:"position"`
	Kind         string `json:"kind"`
	Waiting      int64  `json:"waiting"`
	Passed       int64  `json:"passed"`
	Queued       int64  `json:"queued"`
	Sent         int64  `json:"sent"`
	Failed       int64  `json:"failed"`
	Suppressed   int64  `json:"suppressed"`
	Opened       int64  `json:"opened"`
	Clicked      int64  `json:"clicked"`
	Unsubscribed int64  `json:"unsubscribed"`
}

// apiAutomationFigures answers the current version's per-step figures.
func (s *apiHandlers) apiAutomationFigures(c echo.Context) error {
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	figs, err := s.store.AutomationFigures(c.Request().Context(), id, 0)
	if err != nil {
		return err
	}
	out := make([]apiStepFiguresJS, len(figs))
	for i, f := range figs {
		out[i] = apiStepFiguresJS{f.Position, f.Kind, f.Waiting, f.Passed, f.Queued, f.Sent, f.Failed, f.Suppressed, f.Opened, f.Clicked, f.Unsubscribed}
	}
	return c.JSON(200, map[string]any{"data": out})
}
