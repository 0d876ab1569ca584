package web

import (
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"

	"github.com/labstack/echo/v4"
)

// streamedRoutes are the file uploads whose file part is streamed to its
// destination instead of being parsed into a form first.
var streamedRoutes = map[string]bool{
	"/imports":                            true,
	"/deliverability/suppressions/upload": true,
}

const (
	ctxUpload = "upload"
	// maxLeadingField and maxLeadingFields bound the text fields read
	// before the file part (the CSRF token, a list id, a note).
	maxLeadingField  = 64 << 10
	maxLeadingFields = 32
)

// streamedUpload is the file part of a streamed upload, positioned at its
// first byte. Fields that follow the file in the form are never read.
type streamedUpload struct {
	Filename string
	part     *multipart.Part
	err      error // the first read error other than io.EOF
}

// Read reads the file's bytes and remembers a failure of the body (a cut
// connection, a body over the route's limit), so the handler can tell it
// from a failure of its own.
func (u *streamedUpload) Read(p []byte) (int, error) {
	n, err := u.part.Read(p)
	if err != nil && err != io.EOF && u.err == nil {
		u.err = err
	}
	return n, err
}

// failure is the answer for an upload whose body could not be read to
// its end, or nil when it was.
func (u *streamedUpload) failure() error {
	var tooBig *http.MaxBytesError
	switch {
	case u.err == nil:
		return nil
	case errors.As(u.err, &tooBig):
		return &userError{http.StatusRequestEntityTooLarge, "too_large",
			fmt.Sprintf("The upload is over the limit here of %d MB. Split it into smaller files.", tooBig.Limit>>20), nil}
	default:
		return badRequest("The upload was cut off before its end; try again.")
	}
}

// upload is the request's streamed file, or nil when the form had none.
func upload(c echo.Context) *streamedUpload {
	u, _ := c.Get(ctxUpload).(*streamedUpload)
	return u
}

// streamUploads lets a large upload go straight from the connection to
// where it is used, with no copy in memory or in the temp folder. Parsing
// the whole multipart form first (which the CSRF check's form lookup
// would do) keeps 32 MB in memory and spools the rest to a temp file,
// which the handler then copies a second time. Instead this reads only
// the text fields before the first file part (so the form must put
// _csrf, and any field the handler needs, before the file input) into
// r.Form, where the CSRF middleware finds the token without touching the
// rest of the body, and leaves the file part for the handler to stream.
// The body is bounded by limitBodies' MaxBytesReader, also when it comes
// chunked with no Content-Length. Whatever the handler leaves unread is
// read and discarded at the end, so a refusal reaches a browser that is
// still sending.
func streamUploads(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		if r.Method != http.MethodPost || !streamedRoutes[r.URL.Path] {
			return next(c)
		}
		mr, err := r.MultipartReader()
		if err != nil {
			return next(c) // not multipart: the handler finds no file
		}
		body := r.Body
		defer io.Copy(io.Discard, body)
		post := url.Values{}
		for n := 0; n < maxLeadingFields; n++ {
			p, err := mr.NextPart()
			if errors.As(err, new(*http.MaxBytesError)) {
				return (&streamedUpload{err: err}).failure()
			}
			if err != nil {
				break // the end of the form, or a malformed one: no file
			}
			if p.FileName() != "" {
				c.Set(ctxUpload, &streamedUpload{Filename: p.FileName(), part: p})
				break
			}
			v, err := io.ReadAll(io.LimitReader(p, maxLeadingField+1))
			if err != nil {
				return (&streamedUpload{err: err}).failure()
			}
			if len(v) > maxLeadingField {
				return badRequest(fmt.Sprintf("The form field %q is longer than %d KB.", p.FormName(), maxLeadingField>>10))
			}
			post.Add(p.FormName(), string(v))
		}
		form := url.Values{}
		for k, vs := range post {
			form[k] = append(form[k], vs...)
		}
		for k, vs := range r.URL.Query() {
			form[k] = append(form[k], vs...)
		}
		r.PostForm, r.Form = post, form
		return next(c)
	}
}
