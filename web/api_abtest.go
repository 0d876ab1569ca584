package web

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/herald-mail/herald/models"
)

// apiABInput is a campaign's A/B test in the API: two to five variants
// (each field empty for the campaign's own), the test share in percent,
// the metric (opens, clicks or cto), the wait in seconds, and whether the
// marketer picks the winner (manual) rather than the A/B job.
type apiABInput struct {
	Variants    []models.Variant `json:"variants"`
	Share       int              `json:"share"`
	Metric      string           `json:"metric"`
	WaitSeconds int64            `json:"wait_seconds"`
	Manual      bool             `json:"manual"`
}

// apply sets the input on the campaign; a nil input leaves it alone.
func (in *apiABInput) apply(cp *models.Campaign) {
	if in == nil {
		return
	}
	cp.Variants = append([]models.Variant{}, in.Variants...)
	cp.AB = models.ABTest{Share: in.Share, Metric: in.Metric, WaitSeconds: in.WaitSeconds, Manual: in.Manual}
}

// apiABTest is a campaign's A/B test as the API shows it.
type apiABTest struct {
	apiABInput
	TestAt    *time.Time         `json:"test_sent_at"`
	DecideAt  *time.Time         `json:"decide_at,omitempty"`
	Winner    *int               `json:"winner"`
	DecidedAt *time.Time         `json:"decided_at"`
	DecidedBy string             `json:"decided_by,omitempty"`
	Held      int64              `json:"held"`
	Analysis  *models.ABAnalysis `json:"analysis,omitempty"`
}

func (s *apiHandlers) apiABOf(ctx context.Context, cp *models.Campaign) (*apiABTest, error) {
	r, err := s.store.CampaignABReport(ctx, cp.ID)
	if err != nil || r == nil {
		return nil, err
	}
	a := r.Test
	out := &apiABTest{apiABInput: apiABInput{Variants: r.Variants, Share: a.Share, Metric: a.Metric, WaitSeconds: a.WaitSeconds,
		Manual: a.Manual}, TestAt: a.TestAt, Winner: a.Winner, DecidedAt: a.DecidedAt, DecidedBy: a.DecidedBy, Held: r.Held,
		Analysis: &r.Analysis}
	if a.TestAt != nil {
		d := a.DecisionDue()
		out.DecideAt = &d
	}
	return out, nil
}

// apiPickABWinner sends a variant to the rest of an A/B tested campaign's
// audience: {"variant": 2}, or 0 for the best by the test's metric.
func (s *apiHandlers) apiPickABWinner(c echo.Context) error {
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	var in struct {
		Variant int `json:"variant"`
	}
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	if err := s.pickWinner(c, id, in.Variant); err != nil {
		return err
	}
	return s.writeAPICampaign(c, http.StatusOK, id)
}

// pickWinner is a person's choice of an A/B test's winner, audited with
// the decision in one transaction.
func (s *app) pickWinner(c echo.Context, id int64, variant int) error {
	by := "(unknown)"
	if u := currentUser(c); u != nil {
		by = u.Email
	}
	ctx := s.audited(c, "campaign.ab_winner", "campaign", "winner picked by hand", &id)
	_, err := s.store.DecideABTest(ctx, id, variant, by, time.Now())
	switch {
	case errors.Is(err, models.ErrABNotReady):
		return conflict("The A/B test is not waiting for a winner: its test share has not been sent yet, or a winner was already chosen.")
	case errors.Is(err, models.ErrNotFound):
		return notFoundErr("No such campaign or variant: pick one of the variants the report lists.")
	}
	return err
}

// pickABWinner is the report's "Send B to the rest" button.
func (s *reportPages) pickABWinner(c echo.Context) error {
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	v, err := strconv.Atoi(c.FormValue("variant"))
	if err != nil || v < 1 {
		return unprocessable("Pick one of the variants the report lists.", map[string]string{"variant": "not a variant"})
	}
	if err := s.pickWinner(c, id, v); err != nil {
		return err
	}
	s.flash(c, "The winner goes to the rest of the audience now.")
	return c.Redirect(http.StatusSeeOther, "/campaigns/"+strconv.FormatInt(id, 10)+"/report")
}
