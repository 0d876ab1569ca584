package web

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"
)

// apiHandlers serves the JSON API; bearer tokens, no cookies.
type apiHandlers struct{ *app }

// decodeJSON reads a request body strictly: unknown fields and trailing
// data are errors that say what is wrong.
func decodeJSON(c echo.Context, v any) error {
	dec := json.NewDecoder(c.Request().Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return badRequest("The request body is empty; send a JSON object.")
		}
		var me *http.MaxBytesError
		if errors.As(err, &me) {
			return &userError{http.StatusRequestEntityTooLarge, "too_large", "The request body is too large.", nil}
		}
		return badRequest("The request body is not valid JSON for this endpoint: " + err.Error())
	}
	if dec.More() {
		return badRequest("Send exactly one JSON object.")
	}
	return nil
}

func nextQuery(c echo.Context, before int64) string {
	v := c.QueryParams()
	v.Set("before", itoa(before))
	return v.Encode()
}

// apiLimit reads the limit query parameter: a page size from 1 to max, or
// 0 when it is absent (the store's default).
func apiLimit(c echo.Context, max int) (int, error) {
	v := c.QueryParam("limit")
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > max {
		return 0, badRequest(fmt.Sprintf("limit must be a number from 1 to %d.", max))
	}
	return n, nil
}

// apiCursor reads a numeric query parameter (a before cursor, an id to
// filter by), 0 when absent.
func apiCursor(c echo.Context, name string) (int64, error) {
	v := c.QueryParam(name)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, badRequest(name + " must be a whole number (a cursor is the next_before of the previous page).")
	}
	return n, nil
}

// apiPage answers a page of a newest-first list: the rows, and when there
// are more, the link to the next page and its cursor.
func apiPage(c echo.Context, data any, next int64) error {
	resp := map[string]any{"data": data}
	if next != 0 {
		resp["next"] = fmt.Sprintf("%s?%s", c.Request().URL.Path, nextQuery(c, next))
		resp["next_before"] = next
	}
	return c.JSON(200, resp)
}
