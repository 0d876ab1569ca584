package web

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/herald-mail/herald/models"
	"github.com/herald-mail/herald/views"
)

// sunsetPages serves the sunset policy (list hygiene) and the
// re-permission campaign of the coverage page.
type sunsetPages struct{ *app }

// sunsetPreview is how many matching people the page lists.
const sunsetPreview = 20

func (s *sunsetPages) view(c echo.Context, status int, r models.SunsetRule, errs map[string]string) error {
	ctx := c.Request().Context()
	saved, err := s.store.SunsetRule(ctx)
	if err != nil {
		return err
	}
	vm := views.SunsetVM{Rule: r, Saved: !saved.UpdatedAt.IsZero(), Errs: errs}
	if vm.Matches, err = s.matches(c, r); err != nil {
		return err
	}
	round, err := s.store.SunsetRoundOf(ctx, *saved)
	if err != nil {
		return err
	}
	vm.Round = *round
	return s.render(c, status, views.SunsetPage(s.page(c, "Sunset policy", "subscribers"), vm))
}

func (s *sunsetPages) matches(c echo.Context, r models.SunsetRule) (views.SunsetMatchesVM, error) {
	m := views.SunsetMatchesVM{Rule: r.Describe()}
	if len(r.Validate()) > 0 {
		return m, nil
	}
	var err error
	m.Count, m.Preview, err = s.store.SunsetMatches(c.Request().Context(), r, time.Now(), sunsetPreview)
	return m, err
}

func (s *sunsetPages) sunsetPage(c echo.Context) error {
	r, err := s.store.SunsetRule(c.Request().Context())
	if err != nil {
		return err
	}
	return s.view(c, http.StatusOK, *r, nil)
}

// ruleFromForm reads the rule; a marketer's form leaves the action and
// the automatic switch as they were (an admin's choice).
func (s *sunsetPages) ruleFromForm(c echo.Context, cur models.SunsetRule) (models.SunsetRule, map[string]string) {
	r := cur
	errs := map[string]string{}
	num := func(field string, dst *int) {
		v := strings.TrimSpace(c.FormValue(field))
		n, err := strconv.Atoi(v)
		if err != nil {
			errs[field] = fmt.Sprintf("%q is not a whole number.", v)
			return
		}
		*dst = n
	}
	num("months", &r.Months)
	num("min_campaigns", &r.MinCampaigns)
	num("grace_days", &r.GraceDays)
	if u := currentUser(c); u != nil && u.Role == models.RoleAdmin {
		r.Action = c.FormValue("action")
		r.Enabled = c.FormValue("enabled") == "on"
	}
	for k, v := range r.Validate() {
		if errs[k] == "" {
			errs[k] = v
		}
	}
	return r, errs
}

// previewSunset is the htmx partial: the count and preview of the rule
// being typed, not saved.
func (s *sunsetPages) previewSunset(c echo.Context) error {
	cur, err := s.store.SunsetRule(c.Request().Context())
	if err != nil {
		return err
	}
	r, errs := s.ruleFromForm(c, *cur)
	m := views.SunsetMatchesVM{Rule: "Fix the rule's numbers to count the people it matches"}
	if len(errs) == 0 {
		if m, err = s.matches(c, r); err != nil {
			return err
		}
	}
	c.Response().Header().Set("Vary", "HX-Request")
	return s.render(c, http.StatusOK, views.SunsetMatches(m))
}

func (s *sunsetPages) saveSunset(c echo.Context) error {
	cur, err := s.store.SunsetRule(c.Request().Context())
	if err != nil {
		return err
	}
	r, errs := s.ruleFromForm(c, *cur)
	if len(errs) > 0 {
		return s.view(c, http.StatusUnprocessableEntity, r, errs)
	}
	summary := r.Describe() + "; then " + r.Action + fmt.Sprintf(" after %d days", r.GraceDays)
	if r.Enabled {
		summary += ", automatically"
	}
	if err := s.store.SaveSunsetRule(s.audited(c, "sunset.save", "sunset_rule", summary, nil), &r); err != nil {
		return err
	}
	s.flash(c, "Sunset rule saved.")
	return seeOther(c, "/subscribers/sunset")
}

// startRound snapshots the matching people and opens the draft
// re-engagement campaign.
func (s *sunsetPages) startRound(c echo.Context) error {
	chg, err := s.store.Begin(c.Request().Context())
	if err != nil {
		return err
	}
	defer chg.End()
	res, err := s.store.StartSunsetRound(chg.Ctx(), time.Now())
	if errors.Is(err, models.ErrNothingToSend) {
		return conflict("No one matches the sunset rule right now, so there is no one to re-engage. Loosen the rule or come back later.")
	} else if err != nil {
		return err
	}
	if err := chg.Commit(s.auditEntry(c, "sunset.round", "campaign", itoa(res.Campaign.ID),
		fmt.Sprintf("re-engagement campaign drafted to %d people the sunset rule matches (list %q)", res.People, res.List.Name))); err != nil {
		return err
	}
	s.flash(c, fmt.Sprintf("Draft “%s” created for %d people on the list “%s”. Write the message, send yourself a test, then send it: the waiting period starts when it goes out.",
		res.Campaign.Name, res.People, res.List.Name))
	return seeOther(c, fmt.Sprintf("/campaigns/%d", res.Campaign.ID))
}

func (s *sunsetPages) confirmRun(c echo.Context) error {
	ctx := c.Request().Context()
	r, err := s.store.SunsetRule(ctx)
	if err != nil {
		return err
	}
	if r.UpdatedAt.IsZero() {
		return conflict("Save the sunset rule first.")
	}
	n, err := s.store.SunsetDryRun(ctx, time.Now())
	if err != nil {
		return err
	}
	round, err := s.store.SunsetRoundOf(ctx, *r)
	if err != nil {
		return err
	}
	scope := "everyone the rule matches now"
	if round.SentAt != nil && !round.Closed {
		scope = "the people of the re-engagement round who still did not open or click"
	}
	return s.render(c, http.StatusOK, views.ConfirmAction(s.page(c, "Run the sunset rule", "subscribers"), "subscribers",
		fmt.Sprintf("Run the sunset rule now on %d people?", n),
		fmt.Sprintf("Dry run: %d people (%s: %s) would be %s from every list, each with a withdrawal in the consent ledger (reason “%s”) and an audit entry. This cannot be undone from here.",
			n, scope, r.Describe(), actionWords(r.Action), models.SunsetReason),
		"/subscribers/sunset/run", fmt.Sprintf("Yes, %s %d people", actionVerb(r.Action), n), "/subscribers/sunset", nil))
}

func (s *sunsetPages) runSunset(c echo.Context) error {
	u := currentUser(c)
	actor := "admin"
	if u != nil {
		actor = u.Email
	}
	r, err := s.store.SunsetRule(c.Request().Context())
	if err != nil {
		return err
	}
	if r.UpdatedAt.IsZero() {
		return conflict("Save the sunset rule first.")
	}
	n, err := s.store.RunSunset(c.Request().Context(), time.Now(), actor)
	if err != nil {
		return err
	}
	s.flash(c, fmt.Sprintf("Sunset rule applied: %d inactive people were %s.", n, actionWords(r.Action)))
	return seeOther(c, "/subscribers/sunset")
}

func actionWords(a string) string {
	if a == models.SunsetSuppress {
		return "unsubscribed and suppressed"
	}
	return "unsubscribed"
}

func actionVerb(a string) string {
	if a == models.SunsetSuppress {
		return "unsubscribe and suppress"
	}
	return "unsubscribe"
}

// confirmRepermission asks before a re-permission campaign is drafted to
// the people lacking a basis (on one list, or on any).
func (s *sunsetPages) confirmRepermission(c echo.Context) error {
	ctx := c.Request().Context()
	listID, name, back, err := s.repermissionScope(c)
	if err != nil {
		return err
	}
	n, err := s.store.CountLackingBasis(ctx, listID)
	if err != nil {
		return err
	}
	if n == 0 {
		return conflict("Everyone " + name + " has a lawful basis on record: there is no one to ask.")
	}
	return s.render(c, http.StatusOK, views.ConfirmAction(s.page(c, "Send a re-permission campaign", "compliance"), "coverage",
		fmt.Sprintf("Draft a re-permission campaign to the %d people lacking a basis %s?", n, name),
		"Herald puts them on a snapshot list of their own (no consent rows are written: they agreed to nothing new) and opens a draft campaign to it, which you write and send. Its unsubscribe link removes them from every list. Those who confirm can be re-imported with the evidence; unsubscribe the rest from the coverage page.",
		c.Request().URL.Path, "Yes, create the draft", back, nil))
}

func (s *sunsetPages) repermissionScope(c echo.Context) (listID int64, name, back string, err error) {
	if c.Param("list") == "" {
		return 0, "on any list", "/compliance/coverage", nil
	}
	id, err := idParam(c, "list")
	if err != nil {
		return 0, "", "", err
	}
	l, err := s.store.List(c.Request().Context(), id)
	if err != nil {
		return 0, "", "", err
	}
	return l.ID, "on “" + l.Name + "”", fmt.Sprintf("/compliance/coverage/%d", l.ID), nil
}

func (s *sunsetPages) createRepermission(c echo.Context) error {
	listID, name, _, err := s.repermissionScope(c)
	if err != nil {
		return err
	}
	chg, err := s.store.Begin(c.Request().Context())
	if err != nil {
		return err
	}
	defer chg.End()
	res, err := s.store.CreateRepermissionCampaign(chg.Ctx(), listID, time.Now())
	if errors.Is(err, models.ErrNothingToSend) {
		return conflict("Everyone " + name + " has a lawful basis on record: there is no one to ask.")
	} else if err != nil {
		return err
	}
	if err := chg.Commit(s.auditEntry(c, "consent.repermission", "campaign", itoa(res.Campaign.ID),
		fmt.Sprintf("re-permission campaign drafted to %d people lacking a basis %s (list %q)", res.People, name, res.List.Name))); err != nil {
		return err
	}
	s.flash(c, fmt.Sprintf("Draft “%s” created for %d people on the snapshot list “%s”. Write the request to confirm, test it, then send it.",
		res.Campaign.Name, res.People, res.List.Name))
	return seeOther(c, fmt.Sprintf("/campaigns/%d", res.Campaign.ID))
}
