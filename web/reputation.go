package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/herald-mail/herald/internal/jobs"
	"github.com/herald-mail/herald/models"
	"github.com/herald-mail/herald/views"
)

// reputationPages serves Deliverability → Reputation: blocklist results,
// the lists checked and their settings.
type reputationPages struct{ *app }

// historyShown is how many changes of state the page lists.
const historyShown = 50

func (s *reputationPages) reputationView(ctx context.Context) (views.ReputationView, error) {
	var v views.ReputationView
	var err error
	if v.Current, err = s.store.CurrentBlocklistResults(ctx); err != nil {
		return v, err
	}
	rank := map[string]int{models.ListingListed: 0, models.ListingUnavailable: 1, models.ListingError: 1, models.ListingClean: 2}
	sort.SliceStable(v.Current, func(i, j int) bool { return rank[v.Current[i].Status] < rank[v.Current[j].Status] })
	for _, r := range v.Current {
		switch rank[r.Status] {
		case 0:
			v.Listed++
		case 1:
			v.NotPossible++
		default:
			v.Clean++
		}
	}
	if v.Lists, err = s.store.Blocklists(ctx); err != nil {
		return v, err
	}
	v.ByZone = map[string]models.Blocklist{}
	for _, b := range v.Lists {
		v.ByZone[b.Zone] = b
	}
	if v.History, err = s.store.BlocklistHistory(ctx, historyShown); err != nil {
		return v, err
	}
	pools, err := s.store.IPPools(ctx)
	if err != nil {
		return v, err
	}
	for _, p := range pools {
		if p.PausedReason != "" {
			v.Paused = append(v.Paused, p)
		}
	}
	v.Interval = s.cfg.BlocklistInterval.String()
	if s.cfg.BlocklistInterval == time.Hour || s.cfg.BlocklistInterval == 0 {
		v.Interval = "hour"
	}
	return v, nil
}

func (s *reputationPages) reputationPage(c echo.Context) error {
	v, err := s.reputationView(c.Request().Context())
	if err != nil {
		return err
	}
	return s.render(c, http.StatusOK, views.ReputationPage(s.page(c, "Reputation", "deliverability"), v))
}

// checkNow runs the blocklist check at once, as the periodic job does.
func (s *reputationPages) checkNow(c echo.Context) error {
	ctx := c.Request().Context()
	run, err := jobs.NewBlocklists(s.cfg, s.store, s.mailer, s.log).Run(ctx, time.Now())
	if err != nil {
		return err
	}
	if err := s.store.Audit(ctx, s.auditEntry(c, "blocklists.check", "blocklists", "", fmt.Sprintf("%d questions, %d listed, %d not possible", run.Checked, run.Listed, run.Unavailable))); err != nil {
		return err
	}
	s.flash(c, fmt.Sprintf("Checked: %d listings, %d checks not possible, out of %d questions to the blocklists.", run.Listed, run.Unavailable, run.Checked))
	return seeOther(c, "/deliverability/reputation")
}

func blocklistFromForm(c echo.Context) models.Blocklist {
	return models.Blocklist{Name: c.FormValue("name"), Zone: c.FormValue("zone"), Kind: c.FormValue("kind"), Codes: c.FormValue("codes"),
		DelistURL: c.FormValue("delist_url"), Enabled: c.FormValue("enabled") != "", PausePool: c.FormValue("pause_pool") != ""}
}

func (s *reputationPages) newListPage(c echo.Context) error {
	b := models.Blocklist{Kind: models.BlocklistIP, Enabled: true, Codes: "127.0.0.2 listed"}
	return s.render(c, http.StatusOK, views.BlocklistForm(s.page(c, "Add a blocklist", "deliverability"), b, nil))
}

func (s *reputationPages) editListPage(c echo.Context) error {
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	b, err := s.store.Blocklist(c.Request().Context(), id)
	if err != nil {
		return err
	}
	return s.render(c, http.StatusOK, views.BlocklistForm(s.page(c, "Edit blocklist", "deliverability"), *b, nil))
}

// saveList creates a list (no :id) or updates one.
func (s *reputationPages) saveList(c echo.Context) error {
	b := blocklistFromForm(c)
	title, action := "Add a blocklist", "blocklist.create"
	if c.Param("id") != "" {
		id, err := idParam(c, "id")
		if err != nil {
			return err
		}
		if _, err := s.store.Blocklist(c.Request().Context(), id); err != nil {
			return err
		}
		b.ID, title, action = id, "Edit blocklist", "blocklist.update"
	}
	if errs := b.Validate(); len(errs) > 0 {
		return s.render(c, http.StatusUnprocessableEntity, views.BlocklistForm(s.page(c, title, "deliverability"), b, errs))
	}
	summary := fmt.Sprintf("%s (%s, %s): checked %t, pauses a listed pool %t", b.Name, b.Zone, b.Kind, b.Enabled, b.PausePool)
	err := s.store.SaveBlocklist(c.Request().Context(), &b, s.auditEntry(c, action, "blocklist", "", summary))
	if errors.Is(err, models.ErrConflict) {
		return s.render(c, http.StatusUnprocessableEntity, views.BlocklistForm(s.page(c, title, "deliverability"), b,
			map[string]string{"zone": "Another list has the zone " + b.Zone + "; edit that one."}))
	}
	if err != nil {
		return err
	}
	s.flash(c, b.Name+" is saved; the next check uses it.")
	return seeOther(c, "/deliverability/reputation")
}

// blocklistWarnings adds a dashboard warning for each current listing and
// each pool the blocklist rule holds.
func (s *reportPages) blocklistWarnings(ctx context.Context, ws []models.Warning) ([]models.Warning, error) {
	res, err := s.store.CurrentBlocklistResults(ctx)
	if err != nil {
		return nil, err
	}
	for _, r := range res {
		if r.Status == models.ListingListed {
			ws = append(ws, models.Warning{Severe: true, Href: "/deliverability/reputation",
				Text: r.Target + " (" + r.Source + ") is listed on the blocklist " + r.Zone + ": " + r.Meaning + "."})
		}
	}
	pools, err := s.store.IPPools(ctx)
	if err != nil {
		return nil, err
	}
	for _, p := range pools {
		if p.PausedReason != "" {
			ws = append(ws, models.Warning{Severe: true, Href: "/deliverability/reputation",
				Text: "IP pool " + p.Name + " is paused by the blocklist rule: " + p.PausedReason + "."})
		}
	}
	return ws, nil
}
