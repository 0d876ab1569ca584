package e2e

import (
	"bytes"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"testing"
)

// Upload submits a dashboard form with a file, as a browser does:
// multipart, the fields first (the CSRF token among them), then the file
// in the field "file". It returns the status and the body (Location for a
// redirect).
func (d *Dashboard) Upload(t testing.TB, path string, fields url.Values, filename string, file []byte) (int, string) {
	t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	mw.WriteField("_csrf", d.csrf)
	for k, vs := range fields {
		for _, v := range vs {
			mw.WriteField(k, v)
		}
	}
	fw, err := mw.CreateFormFile("file", filename)
	if err != nil {
		t.Fatal(err)
	}
	fw.Write(file)
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, d.h.URL+path, &body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("X-CSRF-Token", d.csrf)
	resp, err := d.client.Do(req)
	if err != nil {
		t.Fatalf("e2e: upload to %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if loc := resp.Header.Get("Location"); loc != "" && resp.StatusCode/100 == 3 {
		return resp.StatusCode, loc
	}
	return resp.StatusCode, string(b)
}
