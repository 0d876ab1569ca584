package web

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"

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
