package web

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/herald-mail/herald/models"
	"github.com/herald-mail/herald/views"
)

// listPages serves the dashboard's list pages.
type listPages struct{ *app }

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// idParam reads a numeric path parameter; a malformed one is a 404.
func idParam(c echo.Context, name string) (int64, error) {
	id, err := strconv.ParseInt(c.Param(name), 10, 64)
	if err != nil || id <= 0 {
		return 0, notFoundErr("There is nothing at this address.")
	}
	return id, nil
}

func listFromForm(c echo.Context) models.List {
	return models.List{
		Name:        c.FormValue("name"),
		Description: c.FormValue("description"),
		Optin:       c.FormValue("optin"),
		Visibility:  c.FormValue("visibility"),
	}
}

func (s *listPages) listsPage(c echo.Context) error {
	lists, err := s.store.Lists(c.Request().Context())
	if err != nil {
		return err
	}
	return s.render(c, 200, views.ListsPage(s.page(c, "Lists", "lists"), lists))
}

func (s *listPages) newListPage(c echo.Context) error {
	return s.render(c, 200, views.ListForm(s.page(c, "New list", "lists"), models.List{Optin: models.OptinDouble, Visibility: models.ListPrivate}, nil, s.cfg.RootURL))
}

func (s *listPages) createList(c echo.Context) error {
	l := listFromForm(c)
	if errs := l.Validate(); len(errs) > 0 {
		return s.render(c, http.StatusUnprocessableEntity, views.ListForm(s.page(c, "New list", "lists"), l, errs, s.cfg.RootURL))
	}
	chg, err := s.store.Begin(c.Request().Context())
	if err != nil {
		return err
	}
	defer chg.End()
	if err := s.store.CreateList(chg.Ctx(), &l); err != nil {
		return err
	}
	if err := chg.Commit(s.auditEntry(c, "list.create", "list", itoa(l.ID), l.Name)); err != nil {
		return err
	}
	s.flash(c, fmt.Sprintf("List “%s” created.", l.Name))
	return seeOther(c, "/lists")
}

func (s *listPages) editListPage(c echo.Context) error {
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	l, err := s.store.List(c.Request().Context(), id)
	if err != nil {
		return err
	}
	return s.render(c, 200, views.ListForm(s.page(c, "Edit list", "lists"), *l, nil, s.cfg.RootURL))
}

func (s *listPages) updateList(c echo.Context) error {
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	before, err := s.store.List(c.Request().Context(), id)
	if err != nil {
		return err
	}
	l := listFromForm(c)
	l.ID = id
	if errs := l.Validate(); len(errs) > 0 {
		return s.render(c, http.StatusUnprocessableEntity, views.ListForm(s.page(c, "Edit list", "lists"), l, errs, s.cfg.RootURL))
	}
	chg, err := s.store.Begin(c.Request().Context())
	if err != nil {
		return err
	}
	defer chg.End()
	if err := s.store.UpdateList(chg.Ctx(), &l); err != nil {
		return err
	}
	if err := chg.Commit(s.auditEntry(c, "list.update", "list", itoa(id), fmt.Sprintf("%s/%s/%s → %s/%s/%s", before.Name, before.Optin, before.Visibility, l.Name, l.Optin, l.Visibility))); err != nil {
		return err
	}
	s.flash(c, "List saved.")
	return seeOther(c, "/lists")
}

func (s *listPages) deleteListPage(c echo.Context) error {
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	l, err := s.store.List(c.Request().Context(), id)
	if err != nil {
		return err
	}
	msg := fmt.Sprintf("%d people are subscribed to “%s”. Deleting the list removes their memberships (their subscriber records and consent history stay). This cannot be undone.", l.Confirmed+l.Unconfirmed, l.Name)
	return s.render(c, 200, views.ConfirmDelete(s.page(c, "Delete list", "lists"), "the list “"+l.Name+"”", msg, fmt.Sprintf("/lists/%d/delete", id), "/lists"))
}

func (s *listPages) deleteList(c echo.Context) error {
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	l, err := s.store.List(c.Request().Context(), id)
	if err != nil {
		return err
	}
	if err := s.store.DeleteList(s.audited(c, "list.delete", "list", l.Name, &id), id, evidence(c, models.SourceAdmin)); err != nil {
		return err
	}
	s.flash(c, fmt.Sprintf("List “%s” deleted.", l.Name))
	return seeOther(c, "/lists")
}
