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

// subscriberPages serves the dashboard's subscriber search, pages and bulk actions.
type subscriberPages struct{ *app }

// subscriberQuery reads the search form (from the URL, or from a posted
// bulk action); unknown values are ignored rather than refused, so a stale
// bookmark still shows something.
func subscriberQuery(c echo.Context) (views.SubscriberFilter, models.SubscriberQuery) {
	f := views.SubscriberFilter{Search: strings.TrimSpace(c.FormValue("q")), Status: c.FormValue("status"),
		AttrKey: strings.TrimSpace(c.FormValue("attr")), AttrValue: strings.TrimSpace(c.FormValue("value"))}
	f.ListID, _ = strconv.ParseInt(c.FormValue("list"), 10, 64)
	valid := map[string]bool{models.SubscriberActive: true, models.SubscriberBlocklisted: true}
	if f.ListID != 0 {
		valid = map[string]bool{models.SubConfirmed: true, models.SubUnconfirmed: true, models.SubUnsubscribed: true}
	}
	if !valid[f.Status] {
		f.Status = ""
	}
	if f.AttrKey == "" {
		f.AttrValue = ""
	}
	before, _ := strconv.ParseInt(c.FormValue("before"), 10, 64)
	return f, models.SubscriberQuery{Search: f.Search, ListID: f.ListID, Status: f.Status, AttrKey: f.AttrKey, AttrValue: f.AttrValue,
		Before: before, Limit: 50}
}

func (s *subscriberPages) subscribersPage(c echo.Context) error {
	ctx := c.Request().Context()
	f, q := subscriberQuery(c)
	page, err := s.store.SearchSubscribers(ctx, q)
	if err != nil {
		return err
	}
	lists, err := s.store.Lists(ctx)
	if err != nil {
		return err
	}
	return s.render(c, 200, views.SubscribersPage(s.page(c, "Subscribers", "subscribers"), f, lists, page, q.Before == 0))
}

// subscriberCount answers the count a search page asks for once its
// results are shown (views.SubscriberCount).
func (s *subscriberPages) subscriberCount(c echo.Context) error {
	f, q := subscriberQuery(c)
	var err error
	if f.Count, f.More, err = s.store.CountSubscribers(c.Request().Context(), q); err != nil {
		return err
	}
	return s.render(c, 200, views.SubscriberCount(f))
}

func (s *subscriberPages) subscriberPage(c echo.Context) error {
	ctx := c.Request().Context()
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	sub, err := s.store.Subscriber(ctx, id)
	if err != nil {
		return err
	}
	subs, err := s.store.SubscriptionsOf(ctx, id)
	if err != nil {
		return err
	}
	lists, err := s.store.Lists(ctx)
	if err != nil {
		return err
	}
	history, err := s.store.ConsentsBySubscriber(ctx, id)
	if err != nil {
		return err
	}
	return s.render(c, 200, views.SubscriberPage(s.page(c, sub.Email, "subscribers"), sub, subs, lists, history))
}

func (s *subscriberPages) newSubscriberPage(c echo.Context) error {
	lists, err := s.store.Lists(c.Request().Context())
	if err != nil {
		return err
	}
	f := views.SubscriberForm{Lists: map[int64]bool{}, Status: models.SubConfirmed, LawfulBasis: models.BasisConsent}
	return s.render(c, 200, views.SubscriberFormPage(s.page(c, "Add subscriber", "subscribers"), f, lists))
}

// parseSubscriberForm validates the form into a subscriber; errors map
// fields to messages.
func parseSubscriberForm(c echo.Context) (views.SubscriberForm, *models.Subscriber) {
	f := views.SubscriberForm{
		Email: c.FormValue("email"), Name: strings.TrimSpace(c.FormValue("name")),
		Attributes: c.FormValue("attributes"), Status: c.FormValue("status"),
		LawfulBasis: c.FormValue("lawful_basis"), Lists: map[int64]bool{}, Errors: map[string]string{},
	}
	sub := &models.Subscriber{Name: f.Name, Email: f.Email}
	attrs, err := models.ParseAttributes(f.Attributes)
	if err != nil {
		f.Errors["attributes"] = err.Error()
	}
	sub.Attributes = attrs
	// The store's own checks (the API gets the same).
	for k, v := range sub.Validate() {
		if f.Errors[k] == "" {
			f.Errors[k] = v
		}
	}
	form, _ := c.FormParams()
	for _, v := range form["lists"] {
		if id, err := strconv.ParseInt(v, 10, 64); err == nil {
			f.Lists[id] = true
		}
	}
	return f, sub
}

func (s *subscriberPages) createSubscriber(c echo.Context) error {
	ctx := c.Request().Context()
	f, sub := parseSubscriberForm(c)
	lists, err := s.store.Lists(ctx)
	if err != nil {
		return err
	}
	status := models.SubConfirmed
	if f.Status == models.SubUnconfirmed {
		status = models.SubUnconfirmed
	}
	if !models.ValidLawfulBasis(f.LawfulBasis) {
		f.Errors["lawful_basis"] = "Choose the lawful basis on which you may mail this person."
	}
	memberships := map[int64]string{}
	for id := range f.Lists {
		memberships[id] = status
	}
	if len(f.Errors) == 0 {
		ev := evidence(c, models.SourceAdmin)
		ev.LawfulBasis = f.LawfulBasis
		err = s.store.CreateSubscriber(s.audited(c, "subscriber.create", "subscriber", sub.Email, &sub.ID), sub, memberships, ev)
		switch {
		case errors.Is(err, models.ErrConflict):
			f.Errors["email"] = "A subscriber with this address already exists."
		case errors.Is(err, models.ErrSuppressed):
			f.Errors["email"] = "This address is on the suppression list (it bounced, complained, unsubscribed everywhere or asked to be erased) and cannot be added."
		case errors.Is(err, models.ErrNotFound):
			f.Errors["lists"] = "One of the chosen lists no longer exists; reload the page."
		case err != nil:
			return err
		}
	}
	if len(f.Errors) > 0 {
		return s.render(c, http.StatusUnprocessableEntity, views.SubscriberFormPage(s.page(c, "Add subscriber", "subscribers"), f, lists))
	}
	s.flash(c, "Subscriber added.")
	return seeOther(c, fmt.Sprintf("/subscribers/%d", sub.ID))
}

func (s *subscriberPages) editSubscriberPage(c echo.Context) error {
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	sub, err := s.store.Subscriber(c.Request().Context(), id)
	if err != nil {
		return err
	}
	f := views.SubscriberForm{ID: id, Email: sub.Email, Name: sub.Name, Attributes: views.AttributesJSON(sub.Attributes)}
	return s.render(c, 200, views.SubscriberFormPage(s.page(c, "Edit subscriber", "subscribers"), f, nil))
}

func (s *subscriberPages) updateSubscriber(c echo.Context) error {
	ctx := c.Request().Context()
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	before, err := s.store.Subscriber(ctx, id)
	if err != nil {
		return err
	}
	f, sub := parseSubscriberForm(c)
	f.ID, sub.ID = id, id
	if len(f.Errors) == 0 {
		err = s.store.UpdateSubscriber(s.audited(c, "subscriber.update", "subscriber",
			fmt.Sprintf("%s (%s) → %s (%s)", before.Email, before.Name, sub.Email, sub.Name), &sub.ID), sub)
		if errors.Is(err, models.ErrConflict) {
			f.Errors["email"] = "Another subscriber already has this address."
		} else if err != nil {
			return err
		}
	}
	if len(f.Errors) > 0 {
		return s.render(c, http.StatusUnprocessableEntity, views.SubscriberFormPage(s.page(c, "Edit subscriber", "subscribers"), f, nil))
	}
	s.flash(c, "Subscriber saved.")
	return seeOther(c, fmt.Sprintf("/subscribers/%d", id))
}

func (s *subscriberPages) changeSubscriptions(c echo.Context) error {
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	listID, err := strconv.ParseInt(c.FormValue("list"), 10, 64)
	if err != nil {
		return badRequest("Choose a list.")
	}
	status := c.FormValue("status")
	if errs := models.ValidateSubscriptionStatus(status); len(errs) > 0 {
		return unprocessable(errs["status"], errs)
	}
	ctx := s.audited(c, "subscriber.subscription", "subscriber", fmt.Sprintf("list %d → %s", listID, status), &id)
	if err := s.store.SetSubscriptions(ctx, id, map[int64]string{listID: status}, evidence(c, models.SourceAdmin)); err != nil {
		return err
	}
	s.flash(c, "Membership updated.")
	return seeOther(c, fmt.Sprintf("/subscribers/%d", id))
}

func (s *subscriberPages) blocklistSubscriber(c echo.Context) error {
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	blocked := c.FormValue("blocked") != "false"
	action, msg := "subscriber.unblock", "Subscriber unblocked. They are not resubscribed to any list."
	if blocked {
		action, msg = "subscriber.blocklist", "Subscriber blocklisted and unsubscribed from every list."
	}
	if err := s.store.SetBlocklisted(s.audited(c, action, "subscriber", "", &id), id, blocked, evidence(c, models.SourceAdmin)); err != nil {
		return err
	}
	s.flash(c, msg)
	return seeOther(c, fmt.Sprintf("/subscribers/%d", id))
}

func (s *subscriberPages) deleteSubscriberPage(c echo.Context) error {
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	sub, err := s.store.Subscriber(c.Request().Context(), id)
	if err != nil {
		return err
	}
	return s.render(c, 200, views.ConfirmDelete(s.page(c, "Delete subscriber", "subscribers"), sub.Email,
		"The subscriber and their list memberships are removed; the consent ledger keeps its record of what they agreed to. To remove every trace of their personal data, use erasure in the Compliance section instead.",
		fmt.Sprintf("/subscribers/%d/delete", id), fmt.Sprintf("/subscribers/%d", id)))
}

func (s *subscriberPages) deleteSubscriber(c echo.Context) error {
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	sub, err := s.store.Subscriber(c.Request().Context(), id)
	if err != nil {
		return err
	}
	if err := s.store.DeleteSubscriber(s.audited(c, "subscriber.delete", "subscriber", sub.Email, &id), id, evidence(c, models.SourceAdmin)); err != nil {
		return err
	}
	s.flash(c, "Subscriber deleted.")
	return seeOther(c, "/subscribers")
}
