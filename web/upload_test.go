package web

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/herald-mail/herald/internal/config"
	"github.com/herald-mail/herald/models"
)

// streamPost posts a multipart form to path as a chunked body (no
// Content-Length) written as the server reads it: the fields in order,
// then a file part filled by file, then whatever fields come after.
// file may return an error to cut the upload off.
func (c *client) streamPost(path string, before [][2]string, filename string, file func(io.Writer) error, after [][2]string, header http.Header) (*page, error) {
	c.t.Helper()
	if c.csrf == "" {
		c.get("/login")
	}
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		for _, f := range before {
			mw.WriteField(f[0], f[1])
		}
		fw, _ := mw.CreateFormFile("file", filename)
		if err := file(fw); err != nil {
			pw.CloseWithError(err)
			return
		}
		for _, f := range after {
			mw.WriteField(f[0], f[1])
		}
		pw.CloseWithError(mw.Close())
	}()
	req, _ := http.NewRequest("POST", c.app.http.URL+path, pr)
	req.ContentLength = -1
	req.Header.Set("Content-Type", mw.FormDataContentType())
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return &page{Response: resp, Body: string(b)}, nil
}

// csvRows writes an import of n rows of about 100 bytes, generated as it
// goes so the test itself holds none of it.
func csvRows(n int) func(io.Writer) error {
	return func(w io.Writer) error {
		if _, err := io.WriteString(w, "email,name\n"); err != nil {
			return err
		}
		var line bytes.Buffer
		for i := range n {
			line.Reset()
			fmt.Fprintf(&line, "reader%08d@example.com,Reader number %08d with a long name to fill the line\n", i, i)
			if _, err := w.Write(line.Bytes()); err != nil {
				return err
			}
		}
		return nil
	}
}

// A 48 MB import goes from the connection into the database, where any
// node can read it: while it arrives there is no multipart temp file (a
// parsed form spools whatever is over 32 MB to one) nor any other, and the
// heap grows by far less than the upload (a parsed form keeps 32 MB of it
// in memory).
func TestLargeImportStreams(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("TMPDIR", dir)
	app := newTestApp(t, nil)
	m := app.user(models.RoleMarketer)
	l := &models.List{Name: "News", Optin: models.OptinSingle, Visibility: models.ListPrivate}
	if err := app.store.CreateList(t.Context(), l); err != nil {
		t.Fatal(err)
	}
	m.get("/imports/new")
	before := tempFiles(t, dir)

	// Sample the heap while the upload runs, collecting often so that the
	// figure is what is held, not garbage waiting for the collector.
	defer debug.SetGCPercent(debug.SetGCPercent(10))
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base, peak := ms.HeapInuse, ms.HeapInuse
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
		}
	}()

	const rows = 600_000 // 48 MB
	var during []string
	var sent int64
	p, err := m.streamPost("/imports", [][2]string{{"_csrf", m.csrf}, {"list", fmt.Sprint(l.ID)}}, "people.csv",
		func(w io.Writer) error {
			cw := &countWriter{w: w}
			if err := csvRows(rows)(cw); err != nil {
				return err
			}
			sent = cw.n
			// The file is sent (the pipe hands bytes over only as the
			// server reads them), the form is not yet closed.
			during = tempFiles(t, dir)
			return nil
		}, nil, nil)
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if p.StatusCode != 200 {
		t.Fatalf("upload: status %d %.300s, want 200", p.StatusCode, p.Body)
	}
	t.Logf("sent %d MB; heap in use grew by %d KB at most; temp folder during the upload: %v", sent>>20, (peak-base)>>10, during)
	if fmt.Sprint(during) != fmt.Sprint(before) {
		t.Errorf("during the upload the temp folder holds %v, want %v (nothing spooled to disk)", during, before)
	}
	if growth := int64(peak - base); growth > 16<<20 {
		t.Errorf("heap in use grew by %d MB during a %d MB upload, want under 16 MB", growth>>20, sent>>20)
	}
	if after := tempFiles(t, dir); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("after the upload the temp folder holds %v, want %v", after, before)
	}
	if chunks, stored := importChunks(t, app.store); stored != sent || chunks < 48 {
		t.Errorf("the database holds %d bytes of the upload in %d chunks, want all %d in 1 MB chunks", stored, chunks, sent)
	}
}

// importChunks counts the stored pieces of uploaded import files and
// their bytes.
func importChunks(t *testing.T, s *models.Store) (chunks, bytes int64) {
	t.Helper()
	var row struct{ N, Bytes int64 }
	if err := s.DB().Raw("SELECT count(*) AS n, COALESCE(SUM(length(data)), 0) AS bytes FROM import_chunks").Scan(&row).Error; err != nil {
		t.Fatal(err)
	}
	return row.N, row.Bytes
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// A chunked upload (no Content-Length to refuse it by) is cut at the
// limit while it streams, and an upload that breaks off half way leaves
// nothing behind either.
func TestStreamedUploadRefusedOrBrokenLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("TMPDIR", dir)
	app := newTestAppWith(t, nil, func(c *config.Config) { c.ImportMaxBytes = 1 << 20 })
	m := app.user(models.RoleMarketer)
	l := &models.List{Name: "News", Optin: models.OptinSingle, Visibility: models.ListPrivate}
	if err := app.store.CreateList(t.Context(), l); err != nil {
		t.Fatal(err)
	}
	m.get("/imports/new")
	fields := [][2]string{{"_csrf", m.csrf}, {"list", fmt.Sprint(l.ID)}}
	before := tempFiles(t, dir)

	// Over the limit, chunked: 413 naming the limit (1 MB and the form's
	// 1 MB allowance).
	p, err := m.streamPost("/imports", fields, "people.csv", csvRows(40_000), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if p.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(p.Body, "limit here of 2 MB") {
		t.Errorf("chunked upload over the limit: status %d %.300s, want 413 naming the limit", p.StatusCode, p.Body)
	}
	if got := tempFiles(t, dir); fmt.Sprint(got) != fmt.Sprint(before) {
		t.Errorf("after a refused chunked upload the temp folder holds %v, want %v", got, before)
	}
	// Over the file limit but within the form's allowance: refused with
	// the limit, on the upload form.
	p, err = m.streamPost("/imports", fields, "people.csv", csvRows(18_000), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if p.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(p.Body, "the limit is 1 MB") {
		t.Errorf("file over the limit: status %d %.300s, want 413 naming the limit", p.StatusCode, p.Body)
	}
	if got := tempFiles(t, dir); fmt.Sprint(got) != fmt.Sprint(before) {
		t.Errorf("after a refused upload the temp folder holds %v, want %v", got, before)
	}

	// Broken off half way: the client's request fails; the server removes
	// what it had written.
	imports := func() int64 {
		var n int64
		app.store.DB().Raw("SELECT count(*) FROM imports").Scan(&n)
		return n
	}
	var during int64
	_, err = m.streamPost("/imports", fields, "people.csv", func(w io.Writer) error {
		if err := csvRows(15_000)(w); err != nil {
			return err
		}
		during = imports()
		return errors.New("cable pulled")
	}, nil, nil)
	if err == nil {
		t.Errorf("broken upload: no error, want the request to fail")
	}
	if during != 1 {
		t.Errorf("during the broken upload the database holds %d imports, want the one being written", during)
	}
	deadline := time.Now().Add(10 * time.Second)
	for imports() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("after a broken upload the database still holds its import")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := tempFiles(t, dir); fmt.Sprint(got) != fmt.Sprint(before) {
		t.Errorf("after a broken upload the temp folder holds %v, want %v", got, before)
	}
	if chunks, stored := importChunks(t, app.store); chunks != 0 {
		t.Errorf("after refused and broken uploads the database holds %d chunks (%d bytes), want none", chunks, stored)
	}
}

// The CSRF token of a streamed upload counts from the header or from a
// field before the file; one after the file is never read, and the
// upload is refused before any of it is used.
func TestStreamedUploadCSRF(t *testing.T) {
	app := newTestApp(t, nil)
	m := app.user(models.RoleMarketer)
	m.get("/deliverability/suppressions")
	list := func(w io.Writer) error {
		_, err := io.WriteString(w, "email\nold1@example.com\nold2@example.com\n")
		return err
	}
	suppressed := func() int64 {
		var n int64
		app.store.DB().Raw("SELECT count(*) FROM suppressions").Scan(&n)
		return n
	}

	p, err := m.streamPost("/deliverability/suppressions/upload", [][2]string{{"note", "from before"}}, "old.csv", list,
		[][2]string{{"_csrf", m.csrf}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if p.StatusCode != http.StatusBadRequest && p.StatusCode != http.StatusForbidden || suppressed() != 0 {
		t.Errorf("token after the file: status %d, %d suppressed; want 400 or 403 and none", p.StatusCode, suppressed())
	}
	p, err = m.streamPost("/deliverability/suppressions/upload", [][2]string{{"_csrf", "forged"}, {"note", "x"}}, "old.csv", list, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if p.StatusCode != http.StatusForbidden || suppressed() != 0 {
		t.Errorf("forged token: status %d, %d suppressed; want 403 and none", p.StatusCode, suppressed())
	}
	p, err = m.streamPost("/deliverability/suppressions/upload", [][2]string{{"note", "old provider"}}, "old.csv", list, nil,
		http.Header{"X-Csrf-Token": {m.csrf}})
	if err != nil {
		t.Fatal(err)
	}
	if p.StatusCode != 200 || suppressed() != 2 || !auditHas(t, app.store, "suppression.upload", "old.csv") {
		t.Errorf("token in the header: status %d %.200s, %d suppressed; want 200 and 2", p.StatusCode, p.Body, suppressed())
	}
	var note string
	app.store.DB().Raw("SELECT note FROM suppressions LIMIT 1").Scan(&note)
	if note != "old provider" {
		t.Errorf("note = %q, want the field sent before the file", note)
	}
}

// The fields before the file are bounded in size and number, so a form of
// endless small fields cannot fill memory before the CSRF check.
func TestStreamedUploadLeadingFieldsBounded(t *testing.T) {
	app := newTestApp(t, nil)
	m := app.user(models.RoleMarketer)
	m.get("/imports/new")
	long := [][2]string{{"_csrf", m.csrf}, {"list", strings.Repeat("1", maxLeadingField+1)}}
	p, err := m.streamPost("/imports", long, "people.csv", csvRows(10), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if p.StatusCode != http.StatusBadRequest || !strings.Contains(p.Body, "longer than 64 KB") {
		t.Errorf("a 64 KB field: status %d %.200s, want 400 naming the limit", p.StatusCode, p.Body)
	}
	many := [][2]string{}
	for range maxLeadingFields + 5 {
		many = append(many, [2]string{"x", "y"})
	}
	many = append(many, [2]string{"_csrf", m.csrf})
	p, err = m.streamPost("/imports", many, "people.csv", csvRows(10), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if p.StatusCode != http.StatusBadRequest && p.StatusCode != http.StatusForbidden {
		t.Errorf("%d fields before the token: status %d, want the token unread (400 or 403)", len(many), p.StatusCode)
	}
}

// A suppression upload cut off half way keeps none of its rows: it is
// read in the transaction that commits with its audit entry, and a body
// that fails is not committed.
func TestBrokenSuppressionUploadKeepsNothing(t *testing.T) {
	app := newTestApp(t, nil)
	m := app.user(models.RoleMarketer)
	m.get("/deliverability/suppressions")
	tokenHeader := http.Header{"X-Csrf-Token": {m.csrf}}
	_, err := m.streamPost("/deliverability/suppressions/upload", nil, "cut.csv", func(w io.Writer) error {
		for i := range 2000 { // four batches written inside the transaction
			if _, err := fmt.Fprintf(w, "gone%04d@example.com\n", i); err != nil {
				return err
			}
		}
		return errors.New("cable pulled")
	}, nil, tokenHeader)
	if err == nil {
		t.Fatal("broken upload: no error, want the request to fail")
	}
	// A later upload commits after the broken one has ended (SQLite has
	// one writer), so the count below sees the broken one's outcome.
	p, err := m.streamPost("/deliverability/suppressions/upload", nil, "ok.csv", func(w io.Writer) error {
		_, err := io.WriteString(w, "kept@example.com\n")
		return err
	}, nil, tokenHeader)
	if err != nil || p.StatusCode != 200 {
		t.Fatalf("second upload: %v %v", p, err)
	}
	var n int64
	app.store.DB().Raw("SELECT count(*) FROM suppressions").Scan(&n)
	if n != 1 || auditHas(t, app.store, "suppression.upload", "cut.csv") {
		t.Errorf("after a broken and a good upload: %d suppressed, audit of the broken one %v; want 1 and none", n, auditHas(t, app.store, "suppression.upload", "cut.csv"))
	}
}
