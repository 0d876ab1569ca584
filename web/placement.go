package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/herald-mail/herald/mailer"
	"github.com/herald-mail/herald/models"
	"github.com/herald-mail/herald/views"
)

// placementPages serves Deliverability → Placement: the seed mailboxes
// and the placement tests (the polling is internal/jobs' placement job).
type placementPages struct{ *app }

func (s *placementPages) seeds(ctx context.Context) ([]models.SeedMailbox, bool, error) {
	seeds, err := s.store.SeedMailboxes(ctx, s.cfg.Secrets())
	if errors.Is(err, models.ErrSettingSealed) {
		return seeds, true, nil
	}
	return seeds, false, err
}

func (s *placementPages) renderSeeds(c echo.Context, code int, f views.SeedForm) error {
	seeds, sealed, err := s.seeds(c.Request().Context())
	if err != nil {
		return err
	}
	return s.render(c, code, views.SeedsPage(s.page(c, "Seed mailboxes", "deliverability"), seeds, f, sealed))
}

func (s *placementPages) seedsPage(c echo.Context) error {
	return s.renderSeeds(c, http.StatusOK, views.SeedForm{})
}

func (s *placementPages) createSeed(c echo.Context) error {
	f := models.SeedForm{Address: c.FormValue("address"), Provider: c.FormValue("provider"), IMAPURL: c.FormValue("imap_url")}
	errs := f.Validate()
	vf := views.SeedForm{Address: f.Address, Provider: f.Provider, IMAPURL: f.IMAPURL, Errors: errs}
	if len(errs) > 0 {
		return s.renderSeeds(c, http.StatusUnprocessableEntity, vf)
	}
	id, err := s.store.CreateSeedMailbox(c.Request().Context(), s.cfg.Secret, f)
	if errors.Is(err, models.ErrSeedExists) {
		vf.Errors = map[string]string{"address": "This address is a seed already."}
		return s.renderSeeds(c, http.StatusUnprocessableEntity, vf)
	}
	if err != nil {
		return err
	}
	s.audit(c, "seed.create", "seed", id, f.Address+" ("+f.Provider+")")
	s.flash(c, "Seed "+f.Address+" added.")
	return seeOther(c, "/deliverability/placement/seeds")
}

func (s *placementPages) deleteSeed(c echo.Context) error {
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	if err := s.store.DeleteSeedMailbox(c.Request().Context(), id); errors.Is(err, models.ErrNotFound) {
		return notFoundErr("There is no such seed mailbox; it may have been deleted.")
	} else if err != nil {
		return err
	}
	s.audit(c, "seed.delete", "seed", id, "")
	s.flash(c, "Seed deleted. The results of past tests stay.")
	return seeOther(c, "/deliverability/placement/seeds")
}

func (s *placementPages) audit(c echo.Context, action, kind string, id int64, summary string) {
	if err := s.store.Audit(c.Request().Context(), s.auditEntry(c, action, kind, itoa(id), summary)); err != nil {
		s.log.Error("audit failed", "err", err, "action", action)
	}
}

func (s *placementPages) renderTests(c echo.Context, code int, f views.PlacementStartForm) error {
	ctx := c.Request().Context()
	tests, err := s.store.PlacementTests(ctx, 0, 50)
	if err != nil {
		return err
	}
	seeds, _, err := s.seeds(ctx)
	if err != nil {
		return err
	}
	cps, err := s.store.Campaigns(ctx, 0, 200)
	if err != nil {
		return err
	}
	var choices, gateable []views.CampaignChoice
	for _, cp := range cps {
		if cp.TemplateID == nil {
			continue
		}
		choices = append(choices, views.CampaignChoice{ID: cp.ID, Name: cp.Name})
		if cp.Status == models.CampaignDraft || cp.Status == models.CampaignScheduled {
			gateable = append(gateable, views.CampaignChoice{ID: cp.ID, Name: cp.Name})
		}
	}
	gates, err := s.store.PlacementGates(ctx)
	if err != nil {
		return err
	}
	return s.render(c, code, views.PlacementPage(s.page(c, "Inbox placement", "deliverability"), tests, len(seeds), choices, f, gateable, gates))
}

func (s *placementPages) testsPage(c echo.Context) error {
	return s.renderTests(c, http.StatusOK, views.PlacementStartForm{})
}

func (s *placementPages) startTest(c echo.Context) error {
	ctx := c.Request().Context()
	id, _ := strconv.ParseInt(c.FormValue("campaign_id"), 10, 64)
	f := views.PlacementStartForm{CampaignID: id, Errors: map[string]string{}}
	cp, err := s.store.Campaign(ctx, id)
	switch {
	case errors.Is(err, models.ErrNotFound) || id <= 0:
		f.Errors["campaign_id"] = "Choose a campaign to test."
	case err != nil:
		return err
	case cp.TemplateID == nil:
		f.Errors["campaign_id"] = "The campaign has no template: edit it and choose one first."
	}
	if len(f.Errors) > 0 {
		return s.renderTests(c, http.StatusUnprocessableEntity, f)
	}
	t, err := s.startPlacement(c, cp, false)
	if errors.Is(err, mailer.ErrNoSeeds) {
		f.Errors["campaign_id"] = "There are no seed mailboxes to send to: an admin adds them first."
		return s.renderTests(c, http.StatusUnprocessableEntity, f)
	}
	if err != nil {
		return err
	}
	s.flash(c, "Placement test started: the message is on its way to the seeds.")
	return seeOther(c, fmt.Sprintf("/deliverability/placement/%d", t.ID))
}

// startPlacement starts a placement test of cp in a change of its own
// with its audit entry.
func (s *placementPages) startPlacement(c echo.Context, cp *models.Campaign, gate bool) (*models.PlacementTest, error) {
	chg, err := s.store.Begin(c.Request().Context())
	if err != nil {
		return nil, err
	}
	defer chg.End()
	t, err := s.sendPlacement(chg.Ctx(), cp, gate)
	if err != nil {
		return nil, err
	}
	if err := chg.Commit(s.auditEntry(c, "placement.start", "campaign", itoa(cp.ID), fmt.Sprintf("test %d to %d seeds", t.ID, len(t.Results)))); err != nil {
		return nil, err
	}
	return t, nil
}

// sendPlacement sends a placement test of cp in the change on ctx (the
// engine's SendPlacement), with the engine's errors told to the user.
func (s *app) sendPlacement(ctx context.Context, cp *models.Campaign, gate bool) (*models.PlacementTest, error) {
	t, err := s.mailer.SendPlacement(ctx, cp, gate)
	return t, placementError(err)
}

// startOrGate starts cp in the change on ctx through its placement gate
// if it has one: the engine's StartOrGate, the same start a scheduled
// campaign gets when its time comes. It returns the gate's test, nil
// without a gate.
func (s *app) startOrGate(ctx context.Context, cp *models.Campaign) (*models.PlacementTest, error) {
	t, err := s.mailer.StartOrGate(ctx, cp)
	if errors.Is(err, mailer.ErrNoSeeds) {
		return nil, unprocessable("The campaign has a placement gate but there are no seed mailboxes: add seeds, or remove the gate on Deliverability → Placement.", nil)
	}
	return t, placementError(err)
}

// placementError turns the engine's refusals of a placement test into
// messages for the user; ErrNoSeeds stays for the caller to word.
func placementError(err error) error {
	switch {
	case errors.Is(err, mailer.ErrNoTemplate):
		return unprocessable("The campaign has no template: edit it and choose one first.", nil)
	case errors.Is(err, mailer.ErrInvalidRequest):
		return unprocessable("The campaign's message cannot be sent: "+err.Error(), nil)
	}
	return err
}

// saveGate arms or removes a campaign's placement gate.
func (s *placementPages) saveGate(c echo.Context) error {
	ctx := c.Request().Context()
	id, _ := strconv.ParseInt(c.FormValue("campaign_id"), 10, 64)
	minText := strings.TrimSpace(c.FormValue("min_inbox"))
	f := views.PlacementStartForm{GateCampaignID: id, MinInbox: minText, Errors: map[string]string{}}
	cp, err := s.store.Campaign(ctx, id)
	switch {
	case errors.Is(err, models.ErrNotFound) || id <= 0:
		f.Errors["gate_campaign_id"] = "Choose a campaign."
	case err != nil:
		return err
	case cp.Status != models.CampaignDraft && cp.Status != models.CampaignScheduled:
		// Send now, the API and the scheduled start all pass the gate
		// (mailer's StartOrGate); a started campaign is past it.
		f.Errors["gate_campaign_id"] = "Only a draft or scheduled campaign can get a gate: this one is " + cp.Status + "."
	}
	min, err := strconv.Atoi(minText)
	if err != nil || min < 0 || min > 100 {
		f.Errors["min_inbox"] = "Enter a percentage from 1 to 100, or 0 to remove the gate."
	}
	if len(f.Errors) > 0 {
		return s.renderTests(c, http.StatusUnprocessableEntity, f)
	}
	chg, err := s.store.Begin(ctx)
	if err != nil {
		return err
	}
	defer chg.End()
	if err := s.store.SetPlacementGate(chg.Ctx(), cp.ID, min); err != nil {
		return err
	}
	if err := chg.Commit(s.auditEntry(c, "campaign.gate", "campaign", itoa(cp.ID), fmt.Sprintf("min inbox %d%%", min))); err != nil {
		return err
	}
	if min == 0 {
		s.flash(c, "Placement gate of "+cp.Name+" removed.")
	} else {
		s.flash(c, fmt.Sprintf("Placement gate set: starting %s sends a placement test first and pauses the campaign unless %d%% of the seeds get it in the inbox.", cp.Name, min))
	}
	return seeOther(c, "/deliverability/placement")
}

func (s *placementPages) test(c echo.Context) (*models.PlacementTest, error) {
	id, err := idParam(c, "id")
	if err != nil {
		return nil, err
	}
	t, err := s.store.PlacementTest(c.Request().Context(), id)
	if errors.Is(err, models.ErrNotFound) {
		return nil, notFoundErr("There is no such placement test.")
	}
	return t, err
}

func (s *placementPages) testPage(c echo.Context) error {
	t, err := s.test(c)
	if err != nil {
		return err
	}
	return s.render(c, http.StatusOK, views.PlacementTestPage(s.page(c, "Placement test", "deliverability"), t))
}

// testResults is the results partial the page polls while the test runs.
func (s *placementPages) testResults(c echo.Context) error {
	t, err := s.test(c)
	if err != nil {
		return err
	}
	return s.render(c, http.StatusOK, views.PlacementResults(t))
}
