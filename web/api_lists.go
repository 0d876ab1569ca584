package web

import (
	"net/http"
	"time"

	"github.com/herald-mail/herald/models"
	"github.com/labstack/echo/v4"
)

type apiList struct {
	ID           int64     `json:"id"`
	Name         string    `json:"name"`
	Description  string    `json:"description"`
	Optin        string    `json:"optin"`
	Visibility   string    `json:"visibility"`
	Confirmed    int64     `json:"confirmed"`
	Unconfirmed  int64     `json:"unconfirmed"`
	Unsubscribed int64     `json:"unsubscribed"`
	CreatedAt    time.Time `json:"created_at"`
}

func toAPIList(l *models.List) apiList {
	return apiList{l.ID, l.Name, l.Description, l.Optin, l.Visibility, l.Confirmed, l.Unconfirmed, l.Unsubscribed, l.CreatedAt}
}

type listInput struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	Optin       string `json:"optin"`
	Visibility  string `json:"visibility"`
}

func (in listInput) list() models.List {
	l := models.List{Name: in.Name, Description: in.Description, Optin: in.Optin, Visibility: in.Visibility}
	if l.Optin == "" {
		l.Optin = models.OptinDouble
	}
	if l.Visibility == "" {
		l.Visibility = models.ListPrivate
	}
	return l
}

func (s *apiHandlers) apiLists(c echo.Context) error {
	lists, err := s.store.Lists(c.Request().Context())
	if err != nil {
		return err
	}
	out := make([]apiList, len(lists))
	for i := range lists {
		out[i] = toAPIList(&lists[i])
	}
	return c.JSON(200, map[string]any{"data": out})
}

func (s *apiHandlers) apiList(c echo.Context) error {
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	l, err := s.store.List(c.Request().Context(), id)
	if err != nil {
		return err
	}
	return c.JSON(200, map[string]any{"data": toAPIList(l)})
}

func (s *apiHandlers) apiCreateList(c echo.Context) error {
	var in listInput
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	l := in.list()
	if errs := l.Validate(); len(errs) > 0 {
		return unprocessable("The list is not valid.", errs)
	}
	chg, err := s.store.Begin(c.Request().Context())
	if err != nil {
		return err
	}
	defer chg.End()
	if err := s.store.CreateList(chg.Ctx(), &l); err != nil {
		return err
	}
	if err := chg.Commit(s.auditEntry(c, "list.create", "list", itoa(l.ID), l.Name+" (api)")); err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, map[string]any{"data": toAPIList(&l)})
}

func (s *apiHandlers) apiUpdateList(c echo.Context) error {
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	var in listInput
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	l := in.list()
	l.ID = id
	if errs := l.Validate(); len(errs) > 0 {
		return unprocessable("The list is not valid.", errs)
	}
	chg, err := s.store.Begin(c.Request().Context())
	if err != nil {
		return err
	}
	defer chg.End()
	if err := s.store.UpdateList(chg.Ctx(), &l); err != nil {
		return err
	}
	if err := chg.Commit(s.auditEntry(c, "list.update", "list", itoa(id), l.Name+" (api)")); err != nil {
		return err
	}
	return s.apiList(c)
}

func (s *apiHandlers) apiDeleteList(c echo.Context) error {
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	if err := s.store.DeleteList(s.audited(c, "list.delete", "list", "(api)", &id), id, evidence(c, models.SourceAPI)); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}
