package web

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/herald-mail/herald/models"
	"github.com/herald-mail/herald/views"
)

// userError is an error whose message is safe to show: it says what was
// wrong and what to do. Code is the HTTP status; Slug is the API error code.
type userError struct {
	Code    int
	Slug    string
	Message string
	Fields  map[string]string
}

func (e *userError) Error() string { return e.Message }

func badRequest(msg string) error { return &userError{http.StatusBadRequest, "bad_request", msg, nil} }
func unprocessable(msg string, fields map[string]string) error {
	return &userError{http.StatusUnprocessableEntity, "invalid", msg, fields}
}
func conflict(msg string) error    { return &userError{http.StatusConflict, "conflict", msg, nil} }
func notFoundErr(msg string) error { return &userError{http.StatusNotFound, "not_found", msg, nil} }
func forbidden(msg string) error   { return &userError{http.StatusForbidden, "forbidden", msg, nil} }

// classify maps any error to what the user sees.
func classify(err error) *userError {
	var ue *userError
	if errors.As(err, &ue) {
		return ue
	}
	var he *echo.HTTPError
	if errors.As(err, &he) {
		switch {
		case strings.Contains(strings.ToLower(fmt.Sprint(he.Message)), "csrf"): // missing (400) or invalid (403) token
			return &userError{http.StatusForbidden, "csrf", "This form has expired or did not come from Herald. Reload the page and try again.", nil}
		case he.Code == http.StatusNotFound:
			return &userError{http.StatusNotFound, "not_found", "There is nothing at this address. Check the link, or go back to the dashboard.", nil}
		case he.Code == http.StatusMethodNotAllowed:
			return &userError{he.Code, "method_not_allowed", "This address does not accept that kind of request.", nil}
		case he.Code == http.StatusRequestEntityTooLarge:
			return &userError{he.Code, "too_large", "The upload is too large.", nil}
		case he.Code == http.StatusUnauthorized:
			return &userError{he.Code, "unauthorized", "Sign in first.", nil}
		case he.Code < 500:
			return &userError{he.Code, strings.ToLower(strings.ReplaceAll(http.StatusText(he.Code), " ", "_")), fmt.Sprint(he.Message), nil}
		}
	}
	var ie *models.InvalidEmailError
	var ve *models.ValidationError
	switch {
	case errors.As(err, &ve):
		return &userError{http.StatusUnprocessableEntity, "invalid", "Some fields need attention: " + strings.TrimPrefix(ve.Error(), "invalid input: ") + ".", ve.Fields}
	case errors.As(err, &ie):
		return &userError{http.StatusUnprocessableEntity, "invalid_email", ie.Error(), map[string]string{"email": ie.Error()}}
	case errors.Is(err, models.ErrNotFound):
		return &userError{http.StatusNotFound, "not_found", "That item does not exist (it may have been deleted).", nil}
	case errors.Is(err, models.ErrConflict):
		return &userError{http.StatusConflict, "conflict", "That already exists.", nil}
	}
	for _, e := range []error{models.ErrBlocklisted, models.ErrSuppressed, models.ErrLastAdmin} {
		if errors.Is(err, e) {
			m := e.Error()
			return &userError{http.StatusConflict, "conflict", strings.ToUpper(m[:1]) + m[1:] + ".", nil}
		}
	}
	return &userError{http.StatusInternalServerError, "internal", "Something went wrong on our side. The error has been logged; try again, and quote the request id if it persists.", nil}
}

// handleError is Echo's central error handler: the full error to the log,
// a safe message and the request id to the user, as JSON for the API and as
// a page otherwise. A failure while the database does not answer is a 503
// saying so (unavailable), not a 500.
func (s *app) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	ue := classify(err)
	if ue.Code >= 500 && s.databaseDown(c.Request().Context()) {
		s.unavailable(c.Response(), c.Request(), err)
		return
	}
	rid := c.Response().Header().Get(echo.HeaderXRequestID)
	if ue.Code >= 500 {
		s.log.Error("request failed", "err", err, "method", c.Request().Method, "path", c.Request().URL.Path, "request_id", rid)
	} else {
		s.log.Info("request refused", "status", ue.Code, "err", err, "path", c.Request().URL.Path, "request_id", rid)
	}
	if strings.HasPrefix(c.Request().URL.Path, "/api/") {
		body := map[string]any{"code": ue.Slug, "message": ue.Message, "request_id": rid}
		if len(ue.Fields) > 0 {
			body["fields"] = ue.Fields
		}
		_ = c.JSON(ue.Code, map[string]any{"error": body})
		return
	}
	title := map[int]string{404: "Page not found", 403: "Not allowed", 422: "Please check your input", 409: "Conflict", 429: "Too many attempts"}[ue.Code]
	if title == "" {
		title = http.StatusText(ue.Code)
	}
	_ = s.render(c, ue.Code, views.ErrorPage(ue.Code, title, ue.Message, rid, !subscriberFacing(c.Request().URL.Path)))
}

// subscriberFacing reports whether path is one of the pages subscribers
// reach from their email (subscribe, confirm, preferences, unsubscribe,
// tracking): their error pages offer no way into the dashboard, which
// only staff can use.
func subscriberFacing(path string) bool {
	for _, p := range []string{"/subscribe/", "/confirm/", "/p/", "/u/", "/t/"} {
		if strings.HasPrefix(path, p) {
			return true
		}
	}
	return false
}
