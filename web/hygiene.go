package web

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/herald-mail/herald/models"
	"github.com/herald-mail/herald/views"
)

// hygienePages serves the suppression list, allow list, staging switch and hygiene rules.
type hygienePages struct{ *app }

// suppressionsView renders the suppression list with the given form state.
func (s *hygienePages) suppressionsView(c echo.Context, status int, form views.SuppressionForm, upload *models.SuppressionImport) error {
	f := views.SuppressionFilter{Search: strings.TrimSpace(c.QueryParam("q"))}
	f.Before, _ = strconv.ParseInt(c.QueryParam("before"), 10, 64)
	page, err := s.store.SearchSuppressions(c.Request().Context(), models.SuppressionQuery{Search: f.Search, Before: f.Before})
	if err != nil {
		return err
	}
	return s.render(c, status, views.SuppressionsPage(s.page(c, "Suppressions", "deliverability"), f, page, form, upload))
}

func (s *hygienePages) suppressionsPage(c echo.Context) error {
	return s.suppressionsView(c, http.StatusOK, views.SuppressionForm{}, nil)
}

func (s *hygienePages) addSuppression(c echo.Context) error {
	form := views.SuppressionForm{Value: strings.TrimSpace(c.FormValue("value")), Kind: c.FormValue("kind"), Note: strings.TrimSpace(c.FormValue("note"))}
	v, errs, err := s.suppress(c, form.Value, form.Kind, form.Note)
	if len(errs) > 0 {
		form.Errors = errs
		return s.suppressionsView(c, http.StatusUnprocessableEntity, form, nil)
	}
	if err != nil {
		return err
	}
	s.flash(c, v+" is suppressed.")
	return seeOther(c, "/deliverability/suppressions")
}

// suppress puts an address, or with kind "domain" a whole domain, on the
// suppression list with its audit entry, for the dashboard and the API. It
// returns the value as stored, or what is wrong with the input by field.
func (s *app) suppress(c echo.Context, value, kind, note string) (string, map[string]string, error) {
	raw := strings.TrimSpace(value)
	if kind == "domain" && !strings.HasPrefix(raw, "@") {
		raw = "@" + strings.TrimPrefix(raw, "*.")
	}
	if kind != "domain" && raw != "" && !strings.Contains(raw, "@") {
		return "", map[string]string{"value": "An address needs an @. To block a whole domain, choose “A whole domain”."}, nil
	}
	v, err := models.SuppressionValue(raw)
	if err != nil {
		return "", map[string]string{"value": err.Error()}, nil
	}
	note = strings.TrimSpace(note)
	if note == "" {
		note = "added by " + currentUser(c).Email
	}
	chg, err := s.store.Begin(c.Request().Context())
	if err != nil {
		return "", nil, err
	}
	defer chg.End()
	if err := s.store.AddSuppression(chg.Ctx(), v, models.SuppressManual, note); err != nil {
		return "", nil, err
	}
	return v, nil, chg.Commit(s.auditEntry(c, "suppression.add", "suppression", v, note))
}

// uploadSuppressions reads the uploaded CSV as it arrives (see
// streamUploads): the note comes before the file in the form.
func (s *hygienePages) uploadSuppressions(c echo.Context) error {
	fh := upload(c)
	if fh == nil {
		return s.suppressionsView(c, http.StatusUnprocessableEntity,
			views.SuppressionForm{Errors: map[string]string{"file": "Choose a CSV file to upload."}}, nil)
	}
	note := strings.TrimSpace(c.FormValue("note"))
	if note == "" {
		note = "uploaded from " + fh.Filename
	}
	chg, err := s.store.Begin(c.Request().Context())
	if err != nil {
		return err
	}
	defer chg.End()
	res, err := s.store.ImportSuppressions(chg.Ctx(), fh, models.SuppressManual, note)
	if f := fh.failure(); f != nil {
		return f // an upload cut off or over the limit: nothing is kept
	}
	if err != nil {
		return err
	}
	if err := chg.Commit(s.auditEntry(c, "suppression.upload", "suppression", fh.Filename,
		fmt.Sprintf("%d added, %d already listed, %d rejected", res.Added, res.Existing, len(res.Rejected)))); err != nil {
		return err
	}
	return s.suppressionsView(c, http.StatusOK, views.SuppressionForm{}, res)
}

func (s *hygienePages) removeSuppressionPage(c echo.Context) error {
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	x, err := s.store.Suppression(c.Request().Context(), id)
	if err != nil {
		return err
	}
	return s.render(c, http.StatusOK, views.RemoveSuppressionPage(s.page(c, "Remove suppression", "deliverability"), *x, "", nil))
}

func (s *hygienePages) removeSuppression(c echo.Context) error {
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	reason := strings.TrimSpace(c.FormValue("reason"))
	if reason == "" {
		x, err := s.store.Suppression(ctx, id)
		if err != nil {
			return err
		}
		return s.render(c, http.StatusUnprocessableEntity, views.RemoveSuppressionPage(s.page(c, "Remove suppression", "deliverability"), *x, "",
			map[string]string{"reason": "Say why this address may be mailed again (e.g. “the person asked to be re-subscribed”)."}))
	}
	x, err := s.unsuppress(c, id, reason)
	if err != nil {
		return err
	}
	s.flash(c, x.Display()+" was removed from the suppression list.")
	return seeOther(c, "/deliverability/suppressions")
}

// unsuppress takes an entry off the suppression list with its audit entry,
// for the dashboard and the API; reason says why it may be mailed again.
func (s *app) unsuppress(c echo.Context, id int64, reason string) (*models.Suppression, error) {
	chg, err := s.store.Begin(c.Request().Context())
	if err != nil {
		return nil, err
	}
	defer chg.End()
	x, err := s.store.RemoveSuppression(chg.Ctx(), id)
	if errors.Is(err, models.ErrErasedSuppression) {
		return nil, conflict("This entry stands for a person whose data was erased at their request; it cannot be removed.")
	}
	if err != nil {
		return nil, err
	}
	return x, chg.Commit(s.auditEntry(c, "suppression.remove", "suppression", x.Display(), x.Reason+" → removed: "+reason))
}

func (s *hygienePages) exportSuppressions(c echo.Context) error {
	download(c, "text/csv; charset=utf-8", "suppressions.csv")
	return s.streamFailed(c, "suppressions", s.store.ExportSuppressions(c.Request().Context(), c.Response()))
}

// hygieneView loads the hygiene page's state.
func (s *hygienePages) hygieneView(c echo.Context) (views.HygieneView, error) {
	ctx := c.Request().Context()
	var v views.HygieneView
	var err error
	if v.Rule, err = s.store.HygieneRule(ctx); err != nil {
		return v, err
	}
	if v.Allow, err = s.store.AllowList(ctx); err != nil {
		return v, err
	}
	st, err := s.store.Setting(ctx, models.SettingStaging)
	v.Staging = st == "on"
	return v, err
}

func (s *hygienePages) hygieneRender(c echo.Context, status int, v views.HygieneView) error {
	return s.render(c, status, views.HygienePage(s.page(c, "List hygiene", "deliverability"), v))
}

func (s *hygienePages) hygienePage(c echo.Context) error {
	v, err := s.hygieneView(c)
	if err != nil {
		return err
	}
	return s.hygieneRender(c, http.StatusOK, v)
}

func (s *hygienePages) saveHygieneRule(c echo.Context) error {
	v, err := s.hygieneView(c)
	if err != nil {
		return err
	}
	before := v.Rule
	limit, lerr := strconv.Atoi(strings.TrimSpace(c.FormValue("limit")))
	days, derr := strconv.Atoi(strings.TrimSpace(c.FormValue("days")))
	r := models.HygieneRule{Limit: limit, Days: days}
	errs := r.Validate()
	if lerr != nil {
		errs["limit"] = "Enter a whole number of soft bounces, e.g. 3."
	}
	if derr != nil {
		errs["days"] = "Enter a whole number of days, e.g. 30."
	}
	if len(errs) > 0 {
		v.RuleErrors = errs
		return s.hygieneRender(c, http.StatusUnprocessableEntity, v)
	}
	chg, err := s.store.Begin(c.Request().Context())
	if err != nil {
		return err
	}
	defer chg.End()
	if err := s.store.SetHygieneRule(chg.Ctx(), r); err != nil {
		return err
	}
	if err := chg.Commit(s.auditEntry(c, "hygiene.rule", "setting", "soft_bounce_rule",
		fmt.Sprintf("%d in %d days → %d in %d days", before.Limit, before.Days, r.Limit, r.Days))); err != nil {
		return err
	}
	s.flash(c, "Soft-bounce rule saved. It applies to new bounces; use “Apply to past bounces” for earlier ones.")
	return seeOther(c, "/deliverability/hygiene")
}

func (s *hygienePages) previewHygiene(c echo.Context) error {
	v, err := s.hygieneView(c)
	if err != nil {
		return err
	}
	if v.Preview, err = s.store.HygienePreview(c.Request().Context(), v.Rule); err != nil {
		return err
	}
	v.Previewed = true
	return s.hygieneRender(c, http.StatusOK, v)
}

func (s *hygienePages) applyHygiene(c echo.Context) error {
	ctx := c.Request().Context()
	rule, err := s.store.HygieneRule(ctx)
	if err != nil {
		return err
	}
	chg, err := s.store.Begin(c.Request().Context())
	if err != nil {
		return err
	}
	defer chg.End()
	n, err := s.store.ApplyHygieneRule(chg.Ctx(), rule)
	if err != nil {
		return err
	}
	if err := chg.Commit(s.auditEntry(c, "hygiene.apply", "setting", "soft_bounce_rule",
		fmt.Sprintf("%d in %d days applied retroactively: %d suppressed (preview showed %s)", rule.Limit, rule.Days, n, c.FormValue("expected")))); err != nil {
		return err
	}
	s.flash(c, fmt.Sprintf("%d addresses suppressed.", n))
	return seeOther(c, "/deliverability/hygiene")
}

func (s *hygienePages) addAllowEntry(c echo.Context) error {
	value, note := strings.TrimSpace(c.FormValue("value")), strings.TrimSpace(c.FormValue("note"))
	chg, err := s.store.Begin(c.Request().Context())
	if err != nil {
		return err
	}
	defer chg.End()
	e, err := s.store.AddAllowEntry(chg.Ctx(), value, note)
	var ie *models.InvalidEmailError
	if errors.As(err, &ie) {
		v, verr := s.hygieneView(c)
		if verr != nil {
			return verr
		}
		v.AllowValue, v.AllowNote, v.AllowError = value, note, map[string]string{"value": ie.Error()}
		return s.hygieneRender(c, http.StatusUnprocessableEntity, v)
	}
	if err != nil {
		return err
	}
	if err := chg.Commit(s.auditEntry(c, "allowlist.add", "allow_list", e.Value, note)); err != nil {
		return err
	}
	s.flash(c, e.Value+" is on the allow list.")
	return seeOther(c, "/deliverability/hygiene")
}

func (s *hygienePages) removeAllowEntry(c echo.Context) error {
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	chg, err := s.store.Begin(c.Request().Context())
	if err != nil {
		return err
	}
	defer chg.End()
	e, err := s.store.RemoveAllowEntry(chg.Ctx(), id)
	if err != nil {
		return err
	}
	if err := chg.Commit(s.auditEntry(c, "allowlist.remove", "allow_list", e.Value, "")); err != nil {
		return err
	}
	s.flash(c, e.Value+" was removed from the allow list.")
	return seeOther(c, "/deliverability/hygiene")
}

func (s *hygienePages) setStaging(c echo.Context) error {
	v := c.FormValue("staging")
	if v != "on" && v != "off" {
		return badRequest("Staging is either on or off.")
	}
	chg, err := s.store.Begin(c.Request().Context())
	if err != nil {
		return err
	}
	defer chg.End()
	if err := s.store.SetSetting(chg.Ctx(), models.SettingStaging, v); err != nil {
		return err
	}
	if err := chg.Commit(s.auditEntry(c, "staging."+v, "setting", models.SettingStaging, "staging turned "+v)); err != nil {
		return err
	}
	if v == "on" {
		s.flash(c, "Staging is on: within 5 seconds, only allow-listed recipients get real mail.")
	} else {
		s.flash(c, "Staging is off: within 5 seconds, mail goes to everyone.")
	}
	return seeOther(c, "/deliverability/hygiene")
}
