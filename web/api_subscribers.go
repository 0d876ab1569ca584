package web

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/herald-mail/herald/models"
	"github.com/labstack/echo/v4"
)

type apiSubscriber struct {
	ID         int64               `json:"id"`
	Email      string              `json:"email"`
	Name       string              `json:"name"`
	Status     string              `json:"status"`
	Attributes models.Attributes   `json:"attributes,omitempty"`
	Lists      []apiSubscriptionJS `json:"lists,omitempty"`
	CreatedAt  time.Time           `json:"created_at"`
}

type apiSubscriptionJS struct {
	ListID int64  `json:"list_id"`
	Name   string `json:"name"`
	Status string `json:"status"`
}

func (s *apiHandlers) apiSubscriber(c echo.Context) error {
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	return s.writeAPISubscriber(c, http.StatusOK, id)
}

func (s *apiHandlers) writeAPISubscriber(c echo.Context, status int, id int64) error {
	ctx := c.Request().Context()
	sub, err := s.store.Subscriber(ctx, id)
	if err != nil {
		return err
	}
	subs, err := s.store.SubscriptionsOf(ctx, id)
	if err != nil {
		return err
	}
	out := apiSubscriber{ID: sub.ID, Email: sub.Email, Name: sub.Name, Status: sub.Status, Attributes: sub.Attributes, CreatedAt: sub.CreatedAt}
	for _, m := range subs {
		out.Lists = append(out.Lists, apiSubscriptionJS{m.ListID, m.ListName, m.Status})
	}
	return c.JSON(status, map[string]any{"data": out})
}

func (s *apiHandlers) apiSubscribers(c echo.Context) error {
	_, q := subscriberQuery(c)
	n, err := apiLimit(c, 500)
	if err != nil {
		return err
	}
	if n > 0 {
		q.Limit = n
	}
	page, err := s.store.SearchSubscribers(c.Request().Context(), q)
	if err != nil {
		return err
	}
	out := make([]apiSubscriber, len(page.Rows))
	for i, r := range page.Rows {
		out[i] = apiSubscriber{ID: r.ID, Email: r.Email, Name: r.Name, Status: r.Status, CreatedAt: r.CreatedAt}
	}
	return apiPage(c, out, page.Next)
}

type subscriberInput struct {
	Email       string            `json:"email"`
	Name        string            `json:"name"`
	Attributes  models.Attributes `json:"attributes"`
	Lists       []int64           `json:"lists"`
	Status      string            `json:"status"`
	LawfulBasis string            `json:"lawful_basis"`
}

func (s *apiHandlers) apiCreateSubscriber(c echo.Context) error {
	var in subscriberInput
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	email, err := models.NormalizeEmail(in.Email)
	if err != nil {
		return err
	}
	status := in.Status
	if status == "" {
		status = models.SubConfirmed
	}
	if status != models.SubConfirmed && status != models.SubUnconfirmed {
		return unprocessable("status must be confirmed or unconfirmed.", map[string]string{"status": "confirmed or unconfirmed"})
	}
	ev := evidence(c, models.SourceAPI)
	if in.LawfulBasis != "" {
		if !models.ValidLawfulBasis(in.LawfulBasis) {
			return unprocessable(fmt.Sprintf("lawful_basis must be one of %v.", models.LawfulBases), map[string]string{"lawful_basis": "unknown"})
		}
		ev.LawfulBasis = in.LawfulBasis
	}
	sub := &models.Subscriber{Email: email, Name: in.Name, Attributes: in.Attributes}
	lists := map[int64]string{}
	for _, id := range in.Lists {
		lists[id] = status
	}
	err = s.store.CreateSubscriber(s.audited(c, "subscriber.create", "subscriber", sub.Email+" (api)", &sub.ID), sub, lists, ev)
	if errors.Is(err, models.ErrConflict) {
		return conflict("A subscriber with this email already exists.")
	}
	if errors.Is(err, models.ErrNotFound) {
		return unprocessable("One of the lists does not exist.", map[string]string{"lists": "unknown list id"})
	}
	if err != nil {
		return err
	}
	return s.writeAPISubscriber(c, http.StatusCreated, sub.ID)
}

func (s *apiHandlers) apiUpdateSubscriber(c echo.Context) error {
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	var in subscriberInput
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	if len(in.Lists) > 0 || in.Status != "" || in.LawfulBasis != "" {
		return unprocessable("Change list memberships with PUT or DELETE /api/v1/subscribers/{id}/lists/{list}.", nil)
	}
	email, err := models.NormalizeEmail(in.Email)
	if err != nil {
		return err
	}
	sub := &models.Subscriber{ID: id, Email: email, Name: in.Name, Attributes: in.Attributes}
	if err := s.store.UpdateSubscriber(s.audited(c, "subscriber.update", "subscriber", sub.Email+" (api)", &sub.ID), sub); err != nil {
		if errors.Is(err, models.ErrConflict) {
			return conflict("Another subscriber already has this email.")
		}
		return err
	}
	return s.writeAPISubscriber(c, http.StatusOK, id)
}

func (s *apiHandlers) apiDeleteSubscriber(c echo.Context) error {
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	if err := s.store.DeleteSubscriber(s.audited(c, "subscriber.delete", "subscriber", "(api)", &id), id, evidence(c, models.SourceAPI)); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

func (s *apiHandlers) apiSubscribe(c echo.Context) error {
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	listID, err := idParam(c, "list")
	if err != nil {
		return err
	}
	var in struct {
		Status      string `json:"status"`
		LawfulBasis string `json:"lawful_basis"`
	}
	if c.Request().ContentLength != 0 {
		if err := decodeJSON(c, &in); err != nil {
			return err
		}
	}
	if in.Status == "" {
		in.Status = models.SubConfirmed
	}
	if errs := models.ValidateSubscriptionStatus(in.Status); len(errs) > 0 {
		return unprocessable(errs["status"], errs)
	}
	ev := evidence(c, models.SourceAPI)
	ev.LawfulBasis = in.LawfulBasis
	ctx := s.audited(c, "subscriber.subscription", "subscriber", fmt.Sprintf("list %d → %s (api)", listID, in.Status), &id)
	if err := s.store.SetSubscriptions(ctx, id, map[int64]string{listID: in.Status}, ev); err != nil {
		return err
	}
	return s.writeAPISubscriber(c, http.StatusOK, id)
}

func (s *apiHandlers) apiUnsubscribe(c echo.Context) error {
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	listID, err := idParam(c, "list")
	if err != nil {
		return err
	}
	ctx := s.audited(c, "subscriber.subscription", "subscriber", fmt.Sprintf("list %d → unsubscribed (api)", listID), &id)
	if err := s.store.SetSubscriptions(ctx, id, map[int64]string{listID: models.SubUnsubscribed}, evidence(c, models.SourceAPI)); err != nil {
		return err
	}
	return s.writeAPISubscriber(c, http.StatusOK, id)
}
