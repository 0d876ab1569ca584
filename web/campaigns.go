package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // the schedule form's time zones, whatever the host has installed

	"github.com/labstack/echo/v4"

	"github.com/herald-mail/herald/mailer"
	"github.com/herald-mail/herald/models"
	"github.com/herald-mail/herald/views"
)

// campaignPages serves the dashboard's campaign pages: the form, the checklist, test sends, start, schedule and the live progress.
type campaignPages struct{ *app }

// startBlocker returns the first blocking rule a campaign fails, nil when
// it may start, with every check.
func (s *app) startBlocker(ctx context.Context, id int64) (*mailer.Check, []mailer.Check, error) {
	checks, err := s.readiness().CampaignChecks(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	return mailer.Failed(checks), checks, nil
}

// blockedMessage is what a refused start says: the rule, what was found
// and what to do.
func blockedMessage(c *mailer.Check) string {
	msg := "The campaign cannot start: " + c.Title + " — " + strings.TrimSuffix(c.Detail, ".") + "."
	if c.FixHint != "" {
		msg += " " + c.FixHint
	}
	return msg
}

// ---- templates

// ---- campaigns

func (s *campaignPages) campaignsPage(c echo.Context) error {
	ctx := c.Request().Context()
	before, _ := strconv.ParseInt(c.QueryParam("before"), 10, 64)
	cs, err := s.store.Campaigns(ctx, before, 50)
	if err != nil {
		return err
	}
	var next int64
	if len(cs) == 50 {
		next = cs[len(cs)-1].ID
	}
	ts, err := s.store.Templates(ctx, models.TemplateCampaign)
	if err != nil {
		return err
	}
	return s.render(c, 200, views.CampaignsPage(s.page(c, "Campaigns", "campaigns"), cs, next, len(ts) > 0))
}

// validateCampaign checks a campaign's settings and lists against the
// store (the form and the API share it).
func (s *app) validateCampaign(ctx context.Context, cp *models.Campaign, a models.Audience) (map[string]string, error) {
	errs := cp.Validate()
	for k, v := range cp.SendTime.Validate() {
		errs[k] = v
	}
	checkVariants(cp, errs)
	if errs["from_email"] == "" {
		if _, err := mailer.HeaderAddress(cp.FromEmail); err != nil {
			errs["from_email"] = err.Error()
		}
	}
	if cp.TemplateID != nil && cp.ID == 0 {
		if _, err := s.store.Template(ctx, *cp.TemplateID); err != nil {
			errs["template_id"] = "Choose an existing template."
		}
	}
	if errs["html"] == "" && errs["format"] == "" && (strings.TrimSpace(cp.HTML) != "" || strings.TrimSpace(cp.Text) != "") {
		// The content is checked as it will be sent, with its part and
		// line when it does not compile.
		if err := mailer.CheckContent(mailer.ContentOf(cp)); err != nil {
			field := "html"
			if strings.HasPrefix(err.Error(), "subject") {
				field = "subject"
			} else if strings.HasPrefix(err.Error(), "text body") {
				field = "text"
			}
			errs[field] = "The message does not render: " + err.Error()
		}
	}
	if cp.ReplyTo != "" {
		// The check the transactional API makes too: the value goes into
		// a header field.
		if e, err := mailer.HeaderAddress(cp.ReplyTo); err != nil {
			errs["reply_to"] = err.Error()
		} else {
			cp.ReplyTo = e
		}
	}
	aerrs, err := s.store.ValidateAudience(ctx, a)
	if err != nil {
		return nil, err
	}
	for k, v := range aerrs {
		errs[k] = v
	}
	if cp.SendingDomainID != nil {
		if _, err := s.store.SendingDomain(ctx, *cp.SendingDomainID); err != nil {
			errs["sending_domain_id"] = "Choose an existing sending domain."
		}
	}
	if cp.IPPoolID != nil {
		if _, err := s.store.IPPool(ctx, *cp.IPPoolID); err != nil {
			errs["ip_pool_id"] = "Choose an existing IP pool."
		}
	}
	if s.mailer != nil && !s.mailer.HasTransport(cp.Transport) {
		errs["transport"] = fmt.Sprintf("Transport %q is not configured; leave it empty for the default, or use one of %q.", cp.Transport, s.mailer.TransportNames())
	}
	return errs, nil
}

func optionalID(v string) *int64 {
	id, err := strconv.ParseInt(v, 10, 64)
	if err != nil || id <= 0 {
		return nil
	}
	return &id
}

// isInvalid reports a validation error (a segment whose conditions no
// longer compile, say): the live count then shows 0 rather than failing.
func isInvalid(err error) bool {
	var ve *models.ValidationError
	return errors.As(err, &ve)
}

func formLists(c echo.Context) []int64 {
	form, _ := c.FormParams()
	var ids []int64
	for _, v := range form["lists"] {
		if id, err := strconv.ParseInt(v, 10, 64); err == nil && id > 0 {
			ids = append(ids, id)
		}
	}
	return ids
}

func formIDs(c echo.Context, name string) []int64 {
	form, _ := c.FormParams()
	var ids []int64
	for _, v := range form[name] {
		if id, err := strconv.ParseInt(v, 10, 64); err == nil && id > 0 {
			ids = append(ids, id)
		}
	}
	return ids
}

// formAudience reads the campaign form's lists, segments and exclusions.
func formAudience(c echo.Context) models.Audience {
	return models.Audience{Lists: formLists(c), Segments: formIDs(c, "segments"),
		ExcludeLists: formIDs(c, "exclude_lists"), ExcludeSegments: formIDs(c, "exclude_segments")}
}

func campaignFromForm(c echo.Context) (models.Campaign, models.Audience) {
	cp := models.Campaign{
		Name: c.FormValue("name"), TemplateID: optionalID(c.FormValue("template_id")), Subject: strings.TrimSpace(c.FormValue("subject")),
		FromName: strings.TrimSpace(c.FormValue("from_name")), FromEmail: strings.TrimSpace(c.FormValue("from_email")),
		ReplyTo: strings.TrimSpace(c.FormValue("reply_to")), SendingDomainID: optionalID(c.FormValue("sending_domain_id")),
		IPPoolID: optionalID(c.FormValue("ip_pool_id")), TrackOpens: c.FormValue("track_opens") == "on",
		TrackClicks: c.FormValue("track_clicks") == "on", UTM: c.FormValue("utm") == "on",
		Preheader: strings.TrimSpace(c.FormValue("preheader")), HTML: c.FormValue("html"), Text: c.FormValue("text"),
		Format: c.FormValue("format"),
	}
	if c.FormValue("send_mode") == "local" {
		cp.SendTime = models.SendTime{LocalSendAt: c.FormValue("local_send_at"), TZAttribute: c.FormValue("tz_attribute"),
			TZDefault: c.FormValue("tz_default")}
	}
	abFromForm(c, &cp)
	return cp, formAudience(c)
}

// campaignForm renders the campaign form with its choices.
func (s *campaignPages) campaignForm(c echo.Context, status int, title string, cp models.Campaign, a models.Audience, errs map[string]string) error {
	ctx := c.Request().Context()
	vm := views.CampaignFormVM{Campaign: cp, Selected: map[int64]bool{}, Audience: a, Errs: errs}
	var err error
	if vm.Lists, err = s.store.Lists(ctx); err != nil {
		return err
	}
	if vm.Segments, err = s.store.Segments(ctx); err != nil {
		return err
	}
	if vm.Templates, err = s.store.Templates(ctx, models.TemplateCampaign); err != nil {
		return err
	}
	if vm.Domains, err = s.store.SendingDomains(ctx); err != nil {
		return err
	}
	if vm.Pools, err = s.store.IPPools(ctx); err != nil {
		return err
	}
	for _, l := range a.Lists {
		vm.Selected[l] = true
	}
	if vm.Recipients, err = s.store.CountAudience(ctx, a); err != nil && !isInvalid(err) {
		return err
	}
	return s.render(c, status, views.CampaignForm(s.page(c, title, "campaigns"), vm))
}

func (s *campaignPages) newCampaignPage(c echo.Context) error {
	ctx := c.Request().Context()
	cp := models.Campaign{TrackOpens: true, TrackClicks: true, TemplateID: optionalID(c.QueryParam("template"))}
	if name, err := s.store.Setting(ctx, models.SettingOrgName); err == nil {
		cp.FromName = name
	}
	var a models.Audience
	if ls, err := s.store.Lists(ctx); err == nil && len(ls) == 1 {
		a.Lists = []int64{ls[0].ID}
	}
	if id := optionalID(c.QueryParam("segment")); id != nil {
		a.Segments = []int64{*id}
	}
	if cp.TemplateID == nil {
		if ts, err := s.store.Templates(ctx, models.TemplateCampaign); err == nil && len(ts) == 1 {
			cp.TemplateID = &ts[0].ID
		}
	}
	return s.campaignForm(c, 200, "New campaign", cp, a, nil)
}

func (s *campaignPages) createCampaign(c echo.Context) error {
	ctx := c.Request().Context()
	cp, a := campaignFromForm(c)
	if errs, err := s.validateCampaign(ctx, &cp, a); err != nil {
		return err
	} else if len(errs) > 0 {
		return s.campaignForm(c, http.StatusUnprocessableEntity, "New campaign", cp, a, errs)
	}
	chg, err := s.store.Begin(ctx)
	if err != nil {
		return err
	}
	defer chg.End()
	if err := s.store.CreateCampaign(chg.Ctx(), &cp, a.Lists); err != nil {
		return err
	}
	if err := s.store.SetCampaignAudience(chg.Ctx(), cp.ID, a); err != nil {
		return err
	}
	if err := chg.Commit(s.auditEntry(c, "campaign.create", "campaign", itoa(cp.ID), cp.Name)); err != nil {
		return err
	}
	s.flash(c, fmt.Sprintf("Campaign “%s” saved as a draft with the template's message: write yours under Edit, send yourself a test, then send it or schedule it.", cp.Name))
	return seeOther(c, fmt.Sprintf("/campaigns/%d", cp.ID))
}

func (s *campaignPages) recipientCount(c echo.Context) error {
	n, err := s.store.CountAudience(c.Request().Context(), formAudience(c))
	if err != nil && !isInvalid(err) {
		return err
	}
	return s.render(c, 200, views.RecipientCount(n))
}

func (s *campaignPages) campaignParam(c echo.Context) (*models.Campaign, error) {
	id, err := idParam(c, "id")
	if err != nil {
		return nil, err
	}
	return s.store.Campaign(c.Request().Context(), id)
}

func (s *campaignPages) editCampaignPage(c echo.Context) error {
	cp, err := s.campaignParam(c)
	if err != nil {
		return err
	}
	if cp.Status != models.CampaignDraft && cp.Status != models.CampaignScheduled {
		return conflict(fmt.Sprintf("The campaign is %s and can no longer be edited; clone it to send it again.", cp.Status))
	}
	a, err := s.store.CampaignAudience(c.Request().Context(), cp.ID)
	if err != nil {
		return err
	}
	if cp.Variants, err = s.store.CampaignVariants(c.Request().Context(), cp.ID); err != nil {
		return err
	}
	return s.campaignForm(c, 200, "Edit campaign", *cp, a, nil)
}

func (s *campaignPages) updateCampaign(c echo.Context) error {
	ctx := c.Request().Context()
	cur, err := s.campaignParam(c)
	if err != nil {
		return err
	}
	cp, a := campaignFromForm(c)
	// The template stays what the content started from; the content is
	// the form's.
	cp.ID, cp.Status, cp.Transport, cp.TemplateID = cur.ID, cur.Status, cur.Transport, cur.TemplateID
	if errs, err := s.validateCampaign(ctx, &cp, a); err != nil {
		return err
	} else if len(errs) > 0 {
		return s.campaignForm(c, http.StatusUnprocessableEntity, "Edit campaign", cp, a, errs)
	}
	// The settings, the audience and the send time change together, with
	// the entry.
	chg, err := s.store.Begin(ctx)
	if err != nil {
		return err
	}
	defer chg.End()
	if err := s.store.UpdateCampaign(chg.Ctx(), &cp, a.Lists); err != nil {
		return s.campaignStateError(err, "edited")
	}
	if err := s.store.SetCampaignAudience(chg.Ctx(), cp.ID, a); err != nil {
		return s.campaignStateError(err, "edited")
	}
	if err := s.store.SetCampaignSendTime(chg.Ctx(), cp.ID, cp.SendTime); err != nil {
		return s.campaignStateError(err, "edited")
	}
	if err := chg.Commit(s.auditEntry(c, "campaign.update", "campaign", itoa(cp.ID), cp.Name)); err != nil {
		return err
	}
	s.flash(c, "Campaign saved.")
	return seeOther(c, fmt.Sprintf("/campaigns/%d", cp.ID))
}

// campaignStateError turns a refused status change into a clear 409.
func (s *campaignPages) campaignStateError(err error, what string) error {
	var se *models.CampaignStateError
	if errors.As(err, &se) {
		return conflict(fmt.Sprintf("The campaign is %s and cannot be %s.", se.Status, what))
	}
	return err
}

// zones are the time zones offered by the schedule form.
var zones = []string{"UTC", "Europe/London", "Europe/Dublin", "Europe/Lisbon", "Europe/Paris", "Europe/Berlin", "Europe/Madrid",
	"Europe/Rome", "Europe/Amsterdam", "Europe/Brussels", "Europe/Zurich", "Europe/Stockholm", "Europe/Warsaw", "Europe/Athens",
	"Europe/Helsinki", "Europe/Istanbul", "Europe/Moscow", "Africa/Casablanca", "Africa/Lagos", "Africa/Cairo", "Africa/Johannesburg",
	"Africa/Nairobi", "Asia/Dubai", "Asia/Karachi", "Asia/Kolkata", "Asia/Dhaka", "Asia/Bangkok", "Asia/Jakarta", "Asia/Singapore",
	"Asia/Hong_Kong", "Asia/Shanghai", "Asia/Taipei", "Asia/Seoul", "Asia/Tokyo", "Australia/Perth", "Australia/Adelaide",
	"Australia/Brisbane", "Australia/Sydney", "Pacific/Auckland", "Pacific/Honolulu", "America/Anchorage", "America/Los_Angeles",
	"America/Denver", "America/Phoenix", "America/Chicago", "America/Mexico_City", "America/New_York", "America/Toronto",
	"America/Bogota", "America/Lima", "America/Santiago", "America/Halifax", "America/Sao_Paulo", "America/Argentina/Buenos_Aires"}

// campaignPageVM gathers what the campaign page shows.
func (s *campaignPages) campaignPageVM(ctx context.Context, cp *models.Campaign) (views.CampaignPageVM, error) {
	vm := views.CampaignPageVM{Campaign: *cp, Zones: zones, ScheduleZone: "UTC", Errs: map[string]string{}}
	if cp.TemplateID != nil {
		if t, err := s.store.Template(ctx, *cp.TemplateID); err == nil {
			vm.TemplateName = t.Name
		}
	}
	if vm.TemplateName == "" {
		vm.TemplateName = "none"
	}
	a, err := s.store.CampaignAudience(ctx, cp.ID)
	if err != nil {
		return vm, err
	}
	all, err := s.store.Lists(ctx)
	if err != nil {
		return vm, err
	}
	segs, err := s.store.Segments(ctx)
	if err != nil {
		return vm, err
	}
	for _, l := range all {
		if slices.Contains(a.Lists, l.ID) {
			vm.ListNames = append(vm.ListNames, l.Name)
		}
		if slices.Contains(a.ExcludeLists, l.ID) {
			vm.ExcludeNames = append(vm.ExcludeNames, "list "+l.Name)
		}
	}
	for _, g := range segs {
		if slices.Contains(a.Segments, g.ID) {
			vm.SegmentNames = append(vm.SegmentNames, g.Name)
		}
		if slices.Contains(a.ExcludeSegments, g.ID) {
			vm.ExcludeNames = append(vm.ExcludeNames, "segment "+g.Name)
		}
	}
	checks, err := s.readiness().CampaignChecks(ctx, cp.ID)
	if err != nil {
		return vm, err
	}
	vm.Checks = toViewChecks(checks, cp)
	if cp.ScheduledAt != nil {
		vm.ScheduleAt = cp.ScheduledAt.UTC().Format("2006-01-02T15:04")
	}
	pr, err := s.progressVM(ctx, cp.ID)
	if err != nil {
		return vm, err
	}
	vm.Progress = *pr
	if cp.Status == models.CampaignRunning || cp.Status == models.CampaignPaused || cp.Status == models.CampaignFinished {
		if vm.ComplaintWarning, err = s.complaintWarning(ctx, cp); err != nil {
			return vm, err
		}
	}
	return vm, nil
}

// complaintWarning says when a campaign's complaint rate is at or above
// automatic protection's warning threshold, over the minimum sample.
func (s *campaignPages) complaintWarning(ctx context.Context, cp *models.Campaign) (string, error) {
	p, err := s.store.Protection(ctx)
	if err != nil {
		return "", err
	}
	st, err := s.store.CampaignBounceStats(ctx, cp.ID)
	if err != nil {
		return "", err
	}
	sent := cp.Sent + cp.Bounced
	if sent < p.MinSent || st.Complaints == 0 {
		return "", nil
	}
	pct := models.Percent(st.Complaints, sent)
	if pct < p.ComplaintWarnPct {
		return "", nil
	}
	return fmt.Sprintf("Complaint rate %.2f%% (%d complaints for %d messages sent) is at or above the %g%% that Gmail and Yahoo ask senders to stay under; "+
		"automatic protection pauses at %g%%. Check that these recipients asked for this mail and that unsubscribing is easy.",
		pct, st.Complaints, sent, p.ComplaintWarnPct, p.ComplaintPausePct), nil
}

func (s *campaignPages) campaignPage(c echo.Context) error {
	cp, err := s.campaignParam(c)
	if err != nil {
		return err
	}
	vm, err := s.campaignPageVM(c.Request().Context(), cp)
	if err != nil {
		return err
	}
	return s.render(c, 200, views.CampaignPage(s.page(c, cp.Name, "campaigns"), vm))
}

// rerenderCampaign answers a refused action on the campaign page: status,
// the messages beside the fields and a notice at the top.
func (s *campaignPages) rerenderCampaign(c echo.Context, status int, cp *models.Campaign, adjust func(*views.CampaignPageVM)) error {
	vm, err := s.campaignPageVM(c.Request().Context(), cp)
	if err != nil {
		return err
	}
	adjust(&vm)
	p := s.page(c, cp.Name, "campaigns")
	if msg := vm.Errs["emails"] + vm.Errs["test_as"] + vm.Errs["test_data"]; msg != "" {
		// Below the fold the test form's error goes unseen: say it at the top.
		p.Alert = "The test was not sent: " + msg
	}
	return s.render(c, status, views.CampaignPage(p, vm))
}

// progressVM reads a campaign's live progress.
func (s *campaignPages) progressVM(ctx context.Context, id int64) (*views.ProgressVM, error) {
	lp, err := s.mailer.LiveProgress(ctx, id, 5)
	if err != nil {
		return nil, err
	}
	k := lp.Counters
	vm := &views.ProgressVM{ID: id, Status: lp.Status, Counters: k, Total: k.Total(), Done: k.Sent + k.Bounced + k.Failed + k.Suppressed}
	switch {
	case lp.Status == models.CampaignFinished:
		vm.Percent = 100
	case vm.Total > 0:
		vm.Percent = int(vm.Done * 100 / vm.Total)
		if vm.Percent == 100 && lp.Status != models.CampaignCancelled {
			vm.Percent = 99 // until finished: more recipients may come (materialisation) or the end is being recorded
		}
	}
	vm.Poll = lp.Status == models.CampaignScheduled || lp.Status == models.CampaignRunning || lp.Status == models.CampaignPaused
	now := time.Now()
	if lp.Status == models.CampaignRunning {
		vm.ETA = views.ETA(vm.Done, vm.Total, lp.StartedAt, now)
	}
	if lp.Status == models.CampaignRunning || lp.Status == models.CampaignPaused {
		// Deliveries held for their local hour: say what they wait for,
		// or the panel would look stuck.
		if cp, err := s.store.Campaign(ctx, id); err == nil && cp.ByZone() {
			w, err := s.store.CampaignZoneWait(ctx, id, now)
			if err != nil {
				return nil, err
			}
			vm.Waiting = views.ZoneWaitText(cp.LocalSendAt, *w)
		}
	}
	for _, d := range lp.Destinations {
		vm.Destinations = append(vm.Destinations, views.DestinationVM{Key: d.Key, Rate: d.Rate, Queued: d.Queued,
			Connections: d.Connections, Suspended: d.SuspendedUntil.After(now)})
	}
	return vm, nil
}

// campaignProgress is the partial the campaign page polls every second.
func (s *campaignPages) campaignProgress(c echo.Context) error {
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	vm, err := s.progressVM(c.Request().Context(), id)
	if err != nil {
		return err
	}
	return s.render(c, 200, views.CampaignProgressPanel(*vm))
}

// testMergeData is what a test's merge fields are filled with: the data of
// the subscriber whose address is in test_as, or else the sample name and
// attributes (JSON) the marketer typed. On a mistake it names the field
// and says what to change.
func (s *campaignPages) testMergeData(c echo.Context) (name string, attrs models.Attributes, field, msg string) {
	if as := strings.TrimSpace(c.FormValue("test_as")); as != "" {
		sub, err := s.store.SubscriberByEmail(c.Request().Context(), as)
		if err != nil {
			return "", nil, "test_as", "No subscriber has the address " + as + ": type the address of one of your subscribers, or leave it empty and use sample data."
		}
		return sub.Name, sub.Attributes, "", ""
	}
	attrs, err := models.ParseAttributes(c.FormValue("test_data"))
	if err != nil {
		return "", nil, "test_data", "The sample attributes are not valid: " + err.Error()
	}
	return strings.TrimSpace(c.FormValue("test_name")), attrs, "", ""
}

// testRecipients parses up to five addresses separated by commas, spaces
// or new lines.
func testRecipients(raw string) ([]string, string) {
	fields := strings.FieldsFunc(raw, func(r rune) bool { return r == ',' || r == ';' || r == ' ' || r == '\n' || r == '\r' || r == '\t' })
	if len(fields) == 0 {
		return nil, "Enter at least one address."
	}
	if len(fields) > 5 {
		return nil, fmt.Sprintf("Send a test to at most 5 addresses (%d given).", len(fields))
	}
	out := make([]string, 0, len(fields))
	for _, f := range fields {
		e, err := models.NormalizeEmail(f)
		if err != nil {
			return nil, err.Error()
		}
		out = append(out, e)
	}
	return out, ""
}

// sendCampaignTest sends the campaign's template to a few addresses through
// the engine's transactional path: the same rendering, signing and
// transport as the campaign (so a test lands in the capture outbox).
func (s *campaignPages) sendCampaignTest(c echo.Context) error {
	ctx := c.Request().Context()
	cp, err := s.campaignParam(c)
	if err != nil {
		return err
	}
	raw := c.FormValue("emails")
	to, msg := testRecipients(raw)
	if msg == "" && cp.TemplateID == nil {
		msg = "The campaign has no template: edit it and choose one first."
	}
	name, attrs, field, dataMsg := s.testMergeData(c)
	keep := func(vm *views.CampaignPageVM) {
		vm.TestEmails, vm.TestAs, vm.TestName, vm.TestData = raw, c.FormValue("test_as"), c.FormValue("test_name"), c.FormValue("test_data")
	}
	if msg != "" || dataMsg != "" {
		return s.rerenderCampaign(c, http.StatusUnprocessableEntity, cp, func(vm *views.CampaignPageVM) {
			keep(vm)
			if msg != "" {
				vm.Errs["emails"] = msg
			} else {
				vm.Errs[field] = dataMsg
			}
		})
	}
	data := map[string]any{}
	for k, v := range attrs {
		data[k] = v
	}
	data["test"] = true
	// The tests are queued together with their entry: all or none.
	chg, err := s.store.Begin(ctx)
	if err != nil {
		return err
	}
	defer chg.End()
	for _, e := range to {
		_, err := s.mailer.SendTransactional(chg.Ctx(), mailer.TransactionalRequest{TemplateID: *cp.TemplateID, To: e, Name: name, Subject: cp.Subject,
			From: cp.FromEmail, FromName: cp.FromName, ReplyTo: cp.ReplyTo, Data: data, Test: true, TestOf: cp.ID})
		if errors.Is(err, mailer.ErrInvalidRequest) {
			return s.rerenderCampaign(c, http.StatusUnprocessableEntity, cp, func(vm *views.CampaignPageVM) {
				keep(vm)
				vm.Errs["emails"] = strings.TrimPrefix(err.Error(), "mailer: invalid request: ")
			})
		}
		if err != nil {
			return err
		}
	}
	if err := chg.Commit(s.auditEntry(c, "campaign.test", "campaign", itoa(cp.ID), strings.Join(to, ", "))); err != nil {
		return err
	}
	s.flash(c, "Test sent to "+strings.Join(to, ", ")+". With the capture transport it is in Deliverability → Outbox.")
	return seeOther(c, fmt.Sprintf("/campaigns/%d", cp.ID))
}

// startCampaign sends a campaign now, unless a blocking rule fails.
func (s *campaignPages) startCampaign(c echo.Context) error {
	ctx := c.Request().Context()
	cp, err := s.campaignParam(c)
	if err != nil {
		return err
	}
	if cp.Status != models.CampaignDraft && cp.Status != models.CampaignScheduled {
		return conflict(fmt.Sprintf("The campaign is %s and cannot be started.", cp.Status))
	}
	bad, _, err := s.startBlocker(ctx, cp.ID)
	if err != nil {
		return err
	}
	if bad != nil {
		return s.rerenderCampaign(c, http.StatusUnprocessableEntity, cp, func(vm *views.CampaignPageVM) {
			vm.Errs["start"] = blockedMessage(bad)
			vm.Notice = ""
		})
	}
	if c.FormValue("confirm") != "yes" {
		// Sending cannot be undone: a post without the confirmation's
		// answer only shows the confirmation.
		return s.confirmStartPage(c)
	}
	chg, err := s.store.Begin(c.Request().Context())
	if err != nil {
		return err
	}
	defer chg.End()
	gate, err := s.startOrGate(chg.Ctx(), cp)
	if err != nil {
		return s.campaignStateError(err, "started")
	}
	if err := chg.Commit(s.auditEntry(c, "campaign.start", "campaign", itoa(cp.ID), cp.Name)); err != nil {
		return err
	}
	if gate != nil {
		s.flash(c, fmt.Sprintf("Placement gate: the campaign is paused while a placement test goes to %d seed(s); it resumes by itself if enough reach the inbox (Deliverability → Placement).", len(gate.Results)))
		return seeOther(c, fmt.Sprintf("/campaigns/%d", cp.ID))
	}
	s.flash(c, "Sending started.")
	return seeOther(c, fmt.Sprintf("/campaigns/%d", cp.ID))
}

// scheduleCampaign sets a campaign to start at a local time in a zone;
// the time is stored in UTC.
func (s *campaignPages) scheduleCampaign(c echo.Context) error {
	ctx := c.Request().Context()
	cp, err := s.campaignParam(c)
	if err != nil {
		return err
	}
	at, zone := c.FormValue("at"), c.FormValue("zone")
	errs := map[string]string{}
	loc, lerr := time.LoadLocation(zone)
	if lerr != nil || zone == "" || zone == "Local" {
		errs["zone"] = "Choose a time zone from the list."
		loc = time.UTC
	}
	t, perr := time.ParseInLocation("2006-01-02T15:04", at, loc)
	switch {
	case perr != nil:
		errs["at"] = "Enter a date and time, e.g. 2026-12-01T09:00."
	case !t.After(time.Now()):
		errs["at"] = "That time has passed; choose a time in the future (or use Send now)."
	}
	if len(errs) == 0 {
		if bad, _, err := s.startBlocker(ctx, cp.ID); err != nil {
			return err
		} else if bad != nil {
			errs["start"] = blockedMessage(bad)
		}
	}
	if len(errs) > 0 {
		return s.rerenderCampaign(c, http.StatusUnprocessableEntity, cp, func(vm *views.CampaignPageVM) {
			for k, v := range errs {
				vm.Errs[k] = v
			}
			vm.ScheduleAt, vm.ScheduleZone = at, zone
		})
	}
	chg, err := s.store.Begin(c.Request().Context())
	if err != nil {
		return err
	}
	defer chg.End()
	if err := s.store.ScheduleCampaign(chg.Ctx(), cp.ID, t.UTC()); err != nil {
		return s.campaignStateError(err, "scheduled")
	}
	if err := chg.Commit(s.auditEntry(c, "campaign.schedule", "campaign", itoa(cp.ID), t.UTC().Format(time.RFC3339)+" ("+zone+")")); err != nil {
		return err
	}
	s.flash(c, "Scheduled for "+t.Format("2006-01-02 15:04")+" "+zone+" ("+t.UTC().Format("15:04")+" UTC).")
	return seeOther(c, fmt.Sprintf("/campaigns/%d", cp.ID))
}

// campaignAction pauses, resumes, cancels or unschedules a campaign.
func (s *campaignPages) campaignAction(action string) echo.HandlerFunc {
	past := map[string]string{"pause": "paused", "resume": "resumed", "cancel": "cancelled", "unschedule": "unscheduled"}[action]
	return func(c echo.Context) error {
		ctx := c.Request().Context()
		cp, err := s.campaignParam(c)
		if err != nil {
			return err
		}
		chg, err := s.store.Begin(ctx)
		if err != nil {
			return err
		}
		defer chg.End()
		switch action {
		case "pause":
			err = s.mailer.Pause(chg.Ctx(), cp.ID)
		case "resume":
			err = s.mailer.Resume(chg.Ctx(), cp.ID)
		case "cancel":
			err = s.mailer.Cancel(chg.Ctx(), cp.ID)
		case "unschedule":
			err = s.store.UnscheduleCampaign(chg.Ctx(), cp.ID)
		}
		if err != nil {
			return s.campaignStateError(err, past)
		}
		if err := chg.Commit(s.auditEntry(c, "campaign."+action, "campaign", itoa(cp.ID), cp.Name)); err != nil {
			return err
		}
		s.flash(c, "Campaign "+past+".")
		return seeOther(c, fmt.Sprintf("/campaigns/%d", cp.ID))
	}
}

// confirmStartPage says what "Send now" will do before it does it: how
// many people, from whom, with what subject, through which transport.
func (s *campaignPages) confirmStartPage(c echo.Context) error {
	ctx := c.Request().Context()
	cp, err := s.campaignParam(c)
	if err != nil {
		return err
	}
	if cp.Status != models.CampaignDraft && cp.Status != models.CampaignScheduled {
		return conflict(fmt.Sprintf("The campaign is %s and cannot be started.", cp.Status))
	}
	n, err := s.store.CountCampaignAudience(ctx, cp.ID)
	if err != nil {
		return err
	}
	subject := cp.Subject
	if subject == "" && cp.TemplateID != nil {
		if t, err := s.store.Template(ctx, *cp.TemplateID); err == nil {
			subject = t.Subject
		}
	}
	from := cp.FromEmail
	if cp.FromName != "" {
		from = cp.FromName + " <" + cp.FromEmail + ">"
	}
	return s.render(c, 200, views.StartConfirm(s.page(c, "Send “"+cp.Name+"”?", "campaigns"), views.StartConfirmation{
		CampaignID: cp.ID, Name: cp.Name, Recipients: n, From: from, Subject: subject, Transport: s.transportLabel(cp.Transport),
		SendTime: cp.SendTime,
	}))
}

// transportLabel names the transport a campaign goes out through and says
// whether that delivers for real.
func (s *campaignPages) transportLabel(name string) string {
	if name == "" {
		name = s.delivery().Transport
	}
	if name == "" || name == "capture" {
		return "capture: kept in the Outbox, nothing is delivered"
	}
	return name + ": delivered for real"
}

func (s *campaignPages) cancelCampaignPage(c echo.Context) error {
	cp, err := s.campaignParam(c)
	if err != nil {
		return err
	}
	back := fmt.Sprintf("/campaigns/%d", cp.ID)
	return s.render(c, 200, views.CampaignConfirm(s.page(c, "Cancel campaign", "campaigns"), "Cancel “"+cp.Name+"”?",
		"Messages not yet sent are never sent; those already sent stay sent. A cancelled campaign cannot be resumed (clone it to send it again).",
		back+"/cancel", back, "Yes, cancel the campaign"))
}

func (s *campaignPages) cloneCampaign(c echo.Context) error {
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	chg, err := s.store.Begin(c.Request().Context())
	if err != nil {
		return err
	}
	defer chg.End()
	cp, err := s.store.CloneCampaign(chg.Ctx(), id)
	if err != nil {
		return err
	}
	if err := chg.Commit(s.auditEntry(c, "campaign.clone", "campaign", itoa(cp.ID), "from "+itoa(id))); err != nil {
		return err
	}
	s.flash(c, "Copy created as a draft: review it, then send it.")
	return seeOther(c, fmt.Sprintf("/campaigns/%d/edit", cp.ID))
}

// overrideCampaignDNS lets a campaign on the direct transport start
// although its From domain's DNS check fails or never ran: an admin's
// decision, with a reason, kept with the campaign and in the audit log.
func (s *campaignPages) overrideCampaignDNS(c echo.Context) error {
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	cp, err := s.store.Campaign(ctx, id)
	if err != nil {
		return err
	}
	domain, err := s.overrideDNS(c, cp, c.FormValue("reason"))
	var ve *models.ValidationError
	if errors.As(err, &ve) {
		return s.rerenderCampaign(c, http.StatusUnprocessableEntity, cp, func(vm *views.CampaignPageVM) {
			vm.Errs["dns_override"] = ve.Fields["reason"]
		})
	}
	if err != nil {
		return err
	}
	s.flash(c, "The DNS rule is overridden for this campaign ("+domain+"); the override is shown in its checklist and kept in the audit log.")
	return seeOther(c, fmt.Sprintf("/campaigns/%d", id))
}
