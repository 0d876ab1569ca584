package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/herald-mail/herald/mailer"
	"github.com/herald-mail/herald/models"
)

type campaignInput struct {
	Name       string  `json:"name"`
	TemplateID int64   `json:"template_id"`
	Subject    string  `json:"subject"`
	Preheader  string  `json:"preheader"`
	HTML       string  `json:"html"`   // the body; empty: the template's content
	Text       string  `json:"text"`   // the text part; empty: derived from the HTML
	Format     string  `json:"format"` // html (default) or markdown
	FromName   string  `json:"from_name"`
	FromEmail  string  `json:"from_email"`
	ReplyTo    string  `json:"reply_to"`
	Lists      []int64 `json:"lists"`
	// The audience beyond lists (models.Audience).
	Segments        []int64    `json:"segments"`
	ExcludeLists    []int64    `json:"exclude_lists"`
	ExcludeSegments []int64    `json:"exclude_segments"`
	TrackOpens      *bool      `json:"track_opens"`
	TrackClicks     *bool      `json:"track_clicks"`
	UTM             bool       `json:"utm"`
	Transport       string     `json:"transport"`
	ScheduledAt     *time.Time `json:"scheduled_at"`
	// ABTest, when given, sets the campaign's A/B test (api_abtest.go);
	// {"variants": []} removes it.
	ABTest *apiABInput `json:"ab_test"`
	// LocalSendAt "HH:MM" delivers at that local time in each
	// subscriber's zone (attribute TZAttribute, else TZDefault).
	LocalSendAt string `json:"local_send_at"`
	TZAttribute string `json:"tz_attribute"`
	TZDefault   string `json:"tz_default"`
}

type apiCampaignJS struct {
	ID              int64       `json:"id"`
	Name            string      `json:"name"`
	TemplateID      *int64      `json:"template_id"`
	Subject         string      `json:"subject"`
	Preheader       string      `json:"preheader"`
	HTML            string      `json:"html,omitempty"` // one campaign's answer only, not lists
	Text            string      `json:"text,omitempty"`
	TextDerived     *bool       `json:"text_derived,omitempty"` // no text part written: derived from the HTML when sent
	Format          string      `json:"format"`
	FromName        string      `json:"from_name"`
	FromEmail       string      `json:"from_email"`
	ReplyTo         string      `json:"reply_to"`
	Status          string      `json:"status"`
	PauseReason     string      `json:"pause_reason,omitempty"`
	TrackOpens      bool        `json:"track_opens"`
	TrackClicks     bool        `json:"track_clicks"`
	ScheduledAt     *time.Time  `json:"scheduled_at"`
	StartedAt       *time.Time  `json:"started_at"`
	FinishedAt      *time.Time  `json:"finished_at"`
	Lists           []int64     `json:"lists,omitempty"`
	Segments        []int64     `json:"segments,omitempty"`
	ExcludeLists    []int64     `json:"exclude_lists,omitempty"`
	ExcludeSegments []int64     `json:"exclude_segments,omitempty"`
	LocalSendAt     string      `json:"local_send_at,omitempty"`
	TZAttribute     string      `json:"tz_attribute,omitempty"`
	TZDefault       string      `json:"tz_default,omitempty"`
	TZInvalid       int64       `json:"tz_invalid,omitempty"`
	Counters        apiCounters `json:"counters"`
	ABTest          *apiABTest  `json:"ab_test,omitempty"`
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

func toAPICampaign(c *models.Campaign, a models.Audience) apiCampaignJS {
	out := apiCampaignJS{ID: c.ID, Name: c.Name, TemplateID: c.TemplateID, Subject: c.Subject, Preheader: c.Preheader,
		HTML: c.HTML, Text: c.Text, Format: c.Format, FromName: c.FromName,
		FromEmail: c.FromEmail, ReplyTo: c.ReplyTo, Status: c.Status, PauseReason: c.PauseReason, TrackOpens: c.TrackOpens, TrackClicks: c.TrackClicks,
		ScheduledAt: c.ScheduledAt, StartedAt: c.StartedAt, FinishedAt: c.FinishedAt, Lists: a.Lists,
		Segments: a.Segments, ExcludeLists: a.ExcludeLists, ExcludeSegments: a.ExcludeSegments,
		LocalSendAt: c.LocalSendAt, TZAttribute: c.TZAttribute, TZDefault: c.TZDefault, TZInvalid: c.TZInvalid}
	if c.HTML != "" || c.Text != "" { // a list leaves the bodies out
		derived := mailer.ContentOf(c).TextDerived()
		out.TextDerived = &derived
	}
	out.Counters = toAPICounters(c.Counters)
	return out
}

func toAPICounters(k models.Counters) apiCounters {
	return apiCounters{k.Queued, k.Sending, k.Sent, k.Deferred, k.Bounced, k.Failed, k.Suppressed}
}

func (s *apiHandlers) apiCampaigns(c echo.Context) error {
	before, _ := strconv.ParseInt(c.QueryParam("before"), 10, 64)
	cs, err := s.store.Campaigns(c.Request().Context(), before, 50)
	if err != nil {
		return err
	}
	out := make([]apiCampaignJS, len(cs))
	for i := range cs {
		out[i] = toAPICampaign(&cs[i], models.Audience{})
	}
	return c.JSON(200, map[string]any{"data": out})
}

func (s *apiHandlers) apiCampaign(c echo.Context) error {
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	return s.writeAPICampaign(c, http.StatusOK, id)
}

func (s *apiHandlers) writeAPICampaign(c echo.Context, status int, id int64) error {
	cp, err := s.store.Campaign(c.Request().Context(), id)
	if err != nil {
		return err
	}
	out, err := s.campaignWithLists(c.Request().Context(), cp)
	if err != nil {
		return err
	}
	return c.JSON(status, map[string]any{"data": out})
}

// campaignWithLists is a campaign as the API shows it, with its audience
// (lists, segments, exclusions) and its A/B test.
func (s *apiHandlers) campaignWithLists(ctx context.Context, cp *models.Campaign) (apiCampaignJS, error) {
	a, err := s.store.CampaignAudience(ctx, cp.ID)
	if err != nil {
		return apiCampaignJS{}, err
	}
	out := toAPICampaign(cp, a)
	out.ABTest, err = s.apiABOf(ctx, cp)
	return out, err
}

func (s *apiHandlers) apiCreateCampaign(c echo.Context) error {
	ctx := c.Request().Context()
	var in campaignInput
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	cp := &models.Campaign{
		Name: in.Name, TemplateID: optionalID(strconv.FormatInt(in.TemplateID, 10)), Subject: in.Subject,
		Preheader: in.Preheader, HTML: in.HTML, Text: in.Text, Format: in.Format,
		FromName: in.FromName, FromEmail: in.FromEmail, ReplyTo: in.ReplyTo, Transport: in.Transport,
		TrackOpens: in.TrackOpens == nil || *in.TrackOpens, TrackClicks: in.TrackClicks == nil || *in.TrackClicks, UTM: in.UTM,
		SendTime: models.SendTime{LocalSendAt: in.LocalSendAt, TZAttribute: in.TZAttribute, TZDefault: in.TZDefault},
	}
	in.ABTest.apply(cp)
	a := models.Audience{Lists: in.Lists, Segments: in.Segments, ExcludeLists: in.ExcludeLists, ExcludeSegments: in.ExcludeSegments}
	if errs, err := s.validateCampaign(ctx, cp, a); err != nil {
		return err
	} else if len(errs) > 0 {
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
	if err := s.store.SetCampaignAudience(chg.Ctx(), cp.ID, a); err != nil {
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

// campaignPatch is an update through the API: the fields sent replace the
// campaign's, the others stay.
type campaignPatch struct {
	Name      *string  `json:"name"`
	Subject   *string  `json:"subject"`
	Preheader *string  `json:"preheader"`
	HTML      *string  `json:"html"`
	Text      *string  `json:"text"`
	Format    *string  `json:"format"`
	FromName  *string  `json:"from_name"`
	FromEmail *string  `json:"from_email"`
	ReplyTo   *string  `json:"reply_to"`
	Lists     *[]int64 `json:"lists"`
	// The audience beyond lists; each sent replaces the campaign's.
	Segments        *[]int64 `json:"segments"`
	ExcludeLists    *[]int64 `json:"exclude_lists"`
	ExcludeSegments *[]int64 `json:"exclude_segments"`
	TrackOpens      *bool    `json:"track_opens"`
	TrackClicks     *bool    `json:"track_clicks"`
	UTM             *bool    `json:"utm"`
	// The send-time option: local_send_at "" sends at once.
	LocalSendAt *string `json:"local_send_at"`
	TZAttribute *string `json:"tz_attribute"`
	TZDefault   *string `json:"tz_default"`
	// ABTest, when sent, replaces the A/B test; {"variants": []} removes it.
	ABTest *apiABInput `json:"ab_test"`
}

// apiUpdateCampaign changes a draft or scheduled campaign: its content
// (subject, preheader, body, text part, format), sender, audience (lists,
// segments, exclusions), tracking,
// send time and A/B test, the fields sent only. Only this campaign
// changes, never its template.
func (s *apiHandlers) apiUpdateCampaign(c echo.Context) error {
	ctx := c.Request().Context()
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	var in campaignPatch
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	cp, err := s.store.Campaign(ctx, id)
	if err != nil {
		return err
	}
	a, err := s.store.CampaignAudience(ctx, id)
	if err != nil {
		return err
	}
	set := func(dst *string, v *string) {
		if v != nil {
			*dst = *v
		}
	}
	set(&cp.Name, in.Name)
	set(&cp.Subject, in.Subject)
	set(&cp.Preheader, in.Preheader)
	set(&cp.HTML, in.HTML)
	set(&cp.Text, in.Text)
	set(&cp.Format, in.Format)
	set(&cp.FromName, in.FromName)
	set(&cp.FromEmail, in.FromEmail)
	set(&cp.ReplyTo, in.ReplyTo)
	set(&cp.LocalSendAt, in.LocalSendAt)
	set(&cp.TZAttribute, in.TZAttribute)
	set(&cp.TZDefault, in.TZDefault)
	for dst, v := range map[*bool]*bool{&cp.TrackOpens: in.TrackOpens, &cp.TrackClicks: in.TrackClicks, &cp.UTM: in.UTM} {
		if v != nil {
			*dst = *v
		}
	}
	for dst, v := range map[*[]int64]*[]int64{&a.Lists: in.Lists, &a.Segments: in.Segments,
		&a.ExcludeLists: in.ExcludeLists, &a.ExcludeSegments: in.ExcludeSegments} {
		if v != nil {
			*dst = *v
		}
	}
	if in.ABTest != nil {
		in.ABTest.apply(cp)
	} else if cp.Variants, err = s.store.CampaignVariants(ctx, id); err != nil {
		// Validate checks the test it is given: the stored one.
		return err
	}
	if errs, err := s.validateCampaign(ctx, cp, a); err != nil {
		return err
	} else if len(errs) > 0 {
		return unprocessable("The campaign is not valid.", errs)
	}
	if in.ABTest == nil {
		cp.Variants = nil // UpdateCampaign leaves the test alone
	}
	// The settings, the audience, the send time and the entry change
	// together.
	chg, err := s.store.Begin(ctx)
	if err != nil {
		return err
	}
	defer chg.End()
	err = s.store.UpdateCampaign(chg.Ctx(), cp, a.Lists)
	if err == nil {
		err = s.store.SetCampaignAudience(chg.Ctx(), id, a)
	}
	if err == nil {
		err = s.store.SetCampaignSendTime(chg.Ctx(), id, cp.SendTime)
	}
	if err != nil {
		var se *models.CampaignStateError
		if errors.As(err, &se) {
			return conflict(fmt.Sprintf("The campaign is %s and can no longer be edited; clone it to send it again.", se.Status))
		}
		return err
	}
	if err := chg.Commit(s.auditEntry(c, "campaign.update", "campaign", itoa(id), cp.Name+" (api)")); err != nil {
		return err
	}
	return s.writeAPICampaign(c, http.StatusOK, id)
}

// apiCampaignAction starts, pauses, resumes or cancels a campaign.
func (s *apiHandlers) apiCampaignAction(c echo.Context) error {
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
			_, err = s.startOrGate(ctx, cp)
			return err
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

// apiOverrideCampaignDNS is overrideCampaignDNS for the JSON API
// ({"reason": "…"}), for admins' tokens.
func (s *apiHandlers) apiOverrideCampaignDNS(c echo.Context) error {
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	cp, err := s.store.Campaign(c.Request().Context(), id)
	if err != nil {
		return err
	}
	var in struct {
		Reason string `json:"reason"`
	}
	if err := json.NewDecoder(c.Request().Body).Decode(&in); err != nil {
		return unprocessable(`Send a JSON object with the reason: {"reason": "…"}.`, map[string]string{"reason": "missing"})
	}
	_, err = s.overrideDNS(c, cp, in.Reason)
	var ve *models.ValidationError
	if errors.As(err, &ve) {
		return unprocessable(ve.Fields["reason"], ve.Fields)
	}
	if err != nil {
		return err
	}
	return s.writeAPICampaign(c, http.StatusOK, id)
}
