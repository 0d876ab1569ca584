package web

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/herald-mail/herald/mailer"
	"github.com/herald-mail/herald/models"
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

func (s *Server) apiTemplates(c echo.Context) error {
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

func (s *Server) apiTemplate(c echo.Context) error {
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

func (s *Server) apiCreateTemplate(c echo.Context) error {
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

func (s *Server) apiUpdateTemplate(c echo.Context) error {
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

func (s *Server) apiDeleteTemplate(c echo.Context) error {
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

type campaignInput struct {
	Name        string     `json:"name"`
	TemplateID  int64      `json:"template_id"`
	Subject     string     `json:"subject"`
	FromName    string     `json:"from_name"`
	FromEmail   string     `json:"from_email"`
	ReplyTo     string     `json:"reply_to"`
	Lists       []int64    `json:"lists"`
	TrackOpens  *bool      `json:"track_opens"`
	TrackClicks *bool      `json:"track_clicks"`
	UTM         bool       `json:"utm"`
	Transport   string     `json:"transport"`
	ScheduledAt *time.Time `json:"scheduled_at"`
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

type apiCampaignJS struct {
	ID          int64       `json:"id"`
	Name        string      `json:"name"`
	TemplateID  *int64      `json:"template_id"`
	Subject     string      `json:"subject"`
	FromName    string      `json:"from_name"`
	FromEmail   string      `json:"from_email"`
	ReplyTo     string      `json:"reply_to"`
	Status      string      `json:"status"`
	TrackOpens  bool        `json:"track_opens"`
	TrackClicks bool        `json:"track_clicks"`
	ScheduledAt *time.Time  `json:"scheduled_at"`
	StartedAt   *time.Time  `json:"started_at"`
	FinishedAt  *time.Time  `json:"finished_at"`
	Lists       []int64     `json:"lists,omitempty"`
	Counters    apiCounters `json:"counters"`
}

type apiCounters struct {
	Queued     int64 `json:"queued"`
	Sending    int64 `json:"sending"`
	Sent       int64 `json:"sent"`
	Deferred   int64 `json:"deferred"`
	Bounced    int64 `json:"bounced"`
	Failed     int64 `json:"failed"`
	Suppressed int64 `json:"suppressed"`
}

func toAPICampaign(c *models.Campaign, lists []int64) apiCampaignJS {
	out := apiCampaignJS{ID: c.ID, Name: c.Name, TemplateID: c.TemplateID, Subject: c.Subject, FromName: c.FromName,
		FromEmail: c.FromEmail, ReplyTo: c.ReplyTo, Status: c.Status, TrackOpens: c.TrackOpens, TrackClicks: c.TrackClicks,
		ScheduledAt: c.ScheduledAt, StartedAt: c.StartedAt, FinishedAt: c.FinishedAt, Lists: lists}
	k := c.Counters
	out.Counters = apiCounters{k.Queued, k.Sending, k.Sent, k.Deferred, k.Bounced, k.Failed, k.Suppressed}
	return out
}

func (s *Server) apiCampaigns(c echo.Context) error {
	before, _ := strconv.ParseInt(c.QueryParam("before"), 10, 64)
	cs, err := s.store.Campaigns(c.Request().Context(), before, 50)
	if err != nil {
		return err
	}
	out := make([]apiCampaignJS, len(cs))
	for i := range cs {
		out[i] = toAPICampaign(&cs[i], nil)
	}
	return c.JSON(200, map[string]any{"data": out})
}

func (s *Server) apiCampaign(c echo.Context) error {
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	return s.writeAPICampaign(c, http.StatusOK, id)
}

func (s *Server) writeAPICampaign(c echo.Context, status int, id int64) error {
	ctx := c.Request().Context()
	cp, err := s.store.Campaign(ctx, id)
	if err != nil {
		return err
	}
	lists, err := s.store.CampaignLists(ctx, id)
	if err != nil {
		return err
	}
	return c.JSON(status, map[string]any{"data": toAPICampaign(cp, lists)})
}

func (s *Server) apiCreateCampaign(c echo.Context) error {
	ctx := c.Request().Context()
	var in campaignInput
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	cp := &models.Campaign{
		Name: in.Name, TemplateID: &in.TemplateID, Subject: in.Subject,
		FromName: in.FromName, FromEmail: in.FromEmail, ReplyTo: in.ReplyTo, Transport: in.Transport,
		TrackOpens: in.TrackOpens == nil || *in.TrackOpens, TrackClicks: in.TrackClicks == nil || *in.TrackClicks, UTM: in.UTM,
	}
	if errs := s.validateCampaign(ctx, cp, in.Lists); len(errs) > 0 {
		return unprocessable("The campaign is not valid.", errs)
	}
	chg, err := s.store.Begin(c.Request().Context())
	if err != nil {
		return err
	}
	defer chg.End()
	if err := s.store.CreateCampaign(chg.Ctx(), cp, in.Lists); err != nil {
		return err
	}
	created := s.auditEntry(c, "campaign.create", "campaign", itoa(cp.ID), cp.Name+" (api)")
	if in.ScheduledAt != nil {
		if bad, _, err := s.startBlocker(chg.Ctx(), cp.ID); err != nil {
			return err
		} else if bad != nil {
			// The draft stays, with its entry; only the schedule is refused.
			if err := chg.Commit(created); err != nil {
				return err
			}
			return unprocessable(blockedMessage(bad)+" The campaign was saved as a draft (id "+itoa(cp.ID)+").", map[string]string{bad.ID: bad.Detail})
		}
		if err := s.store.ScheduleCampaign(chg.Ctx(), cp.ID, *in.ScheduledAt); err != nil {
			return err
		}
	}
	if err := chg.Commit(created); err != nil {
		return err
	}
	return s.writeAPICampaign(c, http.StatusCreated, cp.ID)
}

// apiCampaignAction starts, pauses, resumes or cancels a campaign.
func (s *Server) apiCampaignAction(c echo.Context) error {
	ctx := c.Request().Context()
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	cp, err := s.store.Campaign(ctx, id)
	if err != nil {
		return err
	}
	// The action and its entry commit together (models.Tx); the engine
	// hears of it after the commit.
	chg, err := s.store.Begin(ctx)
	if err != nil {
		return err
	}
	defer chg.End()
	ctx = chg.Ctx()
	actions := map[string]func() error{
		"start": func() error {
			// The readiness rules decide, as for the dashboard's Send now.
			if cp.Status != models.CampaignDraft && cp.Status != models.CampaignScheduled {
				return &models.CampaignStateError{ID: id, Status: cp.Status, Action: "start"}
			}
			bad, _, err := s.startBlocker(ctx, id)
			if err != nil {
				return err
			}
			if bad != nil {
				return unprocessable(blockedMessage(bad), map[string]string{bad.ID: bad.Detail})
			}
			return s.mailer.StartCampaign(ctx, id)
		},
		"pause":  func() error { return s.mailer.Pause(ctx, id) },
		"resume": func() error { return s.mailer.Resume(ctx, id) },
		"cancel": func() error { return s.mailer.Cancel(ctx, id) },
	}
	action := c.Param("action")
	do, ok := actions[action]
	if !ok {
		return notFoundErr("Unknown campaign action; use start, pause, resume or cancel.")
	}
	if err := do(); err != nil {
		var se *models.CampaignStateError
		if errors.As(err, &se) {
			return conflict(fmt.Sprintf("The campaign is %s and cannot be %s.", se.Status, pastTense(action)))
		}
		return err
	}
	if err := chg.Commit(s.auditEntry(c, "campaign."+action, "campaign", itoa(id), "(api)")); err != nil {
		return err
	}
	return s.writeAPICampaign(c, http.StatusOK, id)
}

func pastTense(action string) string {
	return map[string]string{"start": "started", "pause": "paused", "resume": "resumed", "cancel": "cancelled"}[action]
}

type txInput struct {
	Template   string         `json:"template"`
	TemplateID int64          `json:"template_id"`
	To         string         `json:"to"`
	Name       string         `json:"name"`
	From       string         `json:"from"`
	FromName   string         `json:"from_name"`
	ReplyTo    string         `json:"reply_to"`
	Data       map[string]any `json:"data"`
	// OverrideSuppression sends even to a suppressed address (password
	// resets, receipts); it must be asked for explicitly.
	OverrideSuppression bool `json:"override_suppression"`
}

// apiTransactional sends one transactional message ahead of campaign traffic.
func (s *Server) apiTransactional(c echo.Context) error {
	var in txInput
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	// An override is queued together with its entry (models.Tx); other
	// messages, the hot path, need no transaction of their own.
	ctx := c.Request().Context()
	var chg *models.Tx
	if in.OverrideSuppression {
		var err error
		if chg, err = s.store.Begin(ctx); err != nil {
			return err
		}
		defer chg.End()
		ctx = chg.Ctx()
	}
	id, err := s.mailer.SendTransactional(ctx, mailer.TransactionalRequest{
		Template: in.Template, TemplateID: in.TemplateID, To: in.To, Name: in.Name,
		From: in.From, FromName: in.FromName, ReplyTo: in.ReplyTo, Data: in.Data, OverrideSuppression: in.OverrideSuppression,
	})
	if errors.Is(err, mailer.ErrInvalidRequest) {
		return unprocessable(strings.TrimPrefix(err.Error(), "mailer: invalid request: "), nil)
	}
	if err != nil {
		return err
	}
	if in.OverrideSuppression {
		// Overrides are rare and consequential: each is in the audit log.
		if err := chg.Commit(s.auditEntry(c, "tx.override_suppression", "delivery", itoa(id), "transactional message to "+in.To+" sent past any suppression")); err != nil {
			return err
		}
	}
	return c.JSON(http.StatusAccepted, map[string]any{"data": map[string]any{"delivery_id": id}})
}

func (s *Server) apiOutbox(c echo.Context) error {
	campaign, _ := strconv.ParseInt(c.QueryParam("campaign"), 10, 64)
	before, _ := strconv.ParseInt(c.QueryParam("before"), 10, 64)
	msgs, err := s.store.Outbox(c.Request().Context(), models.OutboxQuery{CampaignID: campaign, Before: before})
	if err != nil {
		return err
	}
	type row struct {
		ID         int64     `json:"id"`
		CampaignID int64     `json:"campaign_id"`
		To         string    `json:"to"`
		Subject    string    `json:"subject"`
		MessageID  string    `json:"message_id"`
		CreatedAt  time.Time `json:"created_at"`
	}
	out := make([]row, len(msgs))
	for i, m := range msgs {
		out[i] = row{m.ID, m.CampaignID, m.RcptTo, m.Subject, m.MessageID, m.CreatedAt}
	}
	return c.JSON(200, map[string]any{"data": out})
}
