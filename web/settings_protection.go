package web

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/herald-mail/herald/models"
	"github.com/herald-mail/herald/views"
)

// protectionPages serve Settings → Protection: the thresholds at which
// automatic protection pauses a running campaign (internal/jobs.Protect).
type protectionPages struct{ *app }

func protectionForm(p models.Protection) views.ProtectionForm {
	num := func(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
	return views.ProtectionForm{Enabled: p.Enabled, ComplaintWarnPct: num(p.ComplaintWarnPct), ComplaintPausePct: num(p.ComplaintPausePct),
		HardBouncePausePct: num(p.HardBouncePausePct), DeferralPausePct: num(p.DeferralPausePct),
		DeferralWindowMinutes: strconv.Itoa(p.DeferralWindowMinutes), MinSent: strconv.FormatInt(p.MinSent, 10), Errors: map[string]string{}}
}

func (s *protectionPages) page(c echo.Context) error {
	p, err := s.store.Protection(c.Request().Context())
	if err != nil {
		return err
	}
	return s.render(c, 200, views.ProtectionSettingsPage(s.app.page(c, "Protection settings", "settings"), protectionForm(p)))
}

// read parses the form into thresholds; errs says what is wrong, by field.
func readProtection(c echo.Context) (views.ProtectionForm, models.Protection, map[string]string) {
	f := views.ProtectionForm{Enabled: c.FormValue("enabled") == "on", Errors: map[string]string{}}
	p := models.Protection{Enabled: f.Enabled}
	errs := map[string]string{}
	pct := func(field string, dst *string, out *float64) {
		*dst = strings.TrimSpace(c.FormValue(field))
		v, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(*dst), "%"), 64)
		if err != nil {
			errs[field] = fmt.Sprintf("%q is not a number: write a percentage such as 0.3.", *dst)
			return
		}
		*out = v
	}
	pct("complaint_warn_pct", &f.ComplaintWarnPct, &p.ComplaintWarnPct)
	pct("complaint_pause_pct", &f.ComplaintPausePct, &p.ComplaintPausePct)
	pct("hard_bounce_pause_pct", &f.HardBouncePausePct, &p.HardBouncePausePct)
	pct("deferral_pause_pct", &f.DeferralPausePct, &p.DeferralPausePct)
	f.DeferralWindowMinutes = strings.TrimSpace(c.FormValue("deferral_window_minutes"))
	if n, err := strconv.Atoi(f.DeferralWindowMinutes); err != nil {
		errs["deferral_window_minutes"] = fmt.Sprintf("%q is not a whole number of minutes.", f.DeferralWindowMinutes)
	} else {
		p.DeferralWindowMinutes = n
	}
	f.MinSent = strings.TrimSpace(c.FormValue("min_sent"))
	if n, err := strconv.ParseInt(strings.ReplaceAll(f.MinSent, ",", ""), 10, 64); err != nil {
		errs["min_sent"] = fmt.Sprintf("%q is not a whole number of messages.", f.MinSent)
	} else {
		p.MinSent = n
	}
	for k, v := range p.Validate() {
		if errs[k] == "" {
			errs[k] = v
		}
	}
	f.Errors = errs
	return f, p, errs
}

func (s *protectionPages) save(c echo.Context) error {
	f, p, errs := readProtection(c)
	if len(errs) > 0 {
		return s.render(c, http.StatusUnprocessableEntity, views.ProtectionSettingsPage(s.app.page(c, "Protection settings", "settings"), f))
	}
	summary := fmt.Sprintf("automatic pause %s; complaints warn %g%% pause %g%%; hard bounces %g%%; deferrals %g%% over %d min; minimum sample %d",
		onOffText(p.Enabled), p.ComplaintWarnPct, p.ComplaintPausePct, p.HardBouncePausePct, p.DeferralPausePct, p.DeferralWindowMinutes, p.MinSent)
	if err := s.store.SaveProtection(s.audited(c, "settings.protection", "setting", summary, nil), p); err != nil {
		return err
	}
	s.flash(c, "Protection settings saved. Running campaigns are judged against them within seconds.")
	return seeOther(c, "/settings/protection")
}

func onOffText(on bool) string {
	if on {
		return "on"
	}
	return "off"
}
