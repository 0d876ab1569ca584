package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/herald-mail/herald/models"
	"github.com/herald-mail/herald/views"
)

// importPages serves CSV imports: upload, mapping, progress and rejected rows.
type importPages struct{ *app }

func (s *importPages) newImportPage(c echo.Context) error {
	lists, err := s.store.Lists(c.Request().Context())
	if err != nil {
		return err
	}
	listID, _ := strconv.ParseInt(c.QueryParam("list"), 10, 64)
	return s.render(c, 200, views.ImportUpload(s.page(c, "Import", "subscribers"), lists, listID, ""))
}

// uploadImport streams the uploaded file into the database (never to
// memory, never through a temp copy: see streamUploads), where any node
// can read it, checks its header and shows the column mapping. A refused
// upload is deleted with its file.
func (s *importPages) uploadImport(c echo.Context) error {
	ctx := c.Request().Context()
	lists, err := s.store.Lists(ctx)
	if err != nil {
		return err
	}
	listID, _ := strconv.ParseInt(c.FormValue("list"), 10, 64)
	refuse := func(msg string) error {
		return s.render(c, http.StatusUnprocessableEntity, views.ImportUpload(s.page(c, "Import", "subscribers"), lists, listID, msg))
	}
	list, err := s.store.List(ctx, listID)
	if errors.Is(err, models.ErrNotFound) {
		return refuse("Choose the list to import into.")
	} else if err != nil {
		return err
	}
	up := upload(c)
	if up == nil {
		return refuse("Choose a CSV file to upload.")
	}
	u := currentUser(c)
	im := &models.Import{ListID: list.ID, UserID: u.ID, Filename: filepath.Base(up.Filename), Status: models.ImportQueued}
	if err := s.store.CreateImport(ctx, im); err != nil {
		return err
	}
	kept := false
	defer func() {
		if !kept { // subscriber data: never left behind
			if err := s.store.DeleteImport(context.WithoutCancel(ctx), im.ID); err != nil {
				s.log.Error("refused upload not deleted", "import", im.ID, "err", err)
			}
		}
	}()
	// The body's MaxBytesReader (limitBodies) stops a file far over the
	// limit, chunked or not, while it arrives; this catches one that fits
	// in the form's allowance.
	n, err := s.store.SaveImportFile(ctx, im.ID, up)
	if err != nil {
		if f := up.failure(); f != nil {
			return f
		}
		return err
	}
	if limit := s.importMaxBytes(); n > limit {
		return s.render(c, http.StatusRequestEntityTooLarge, views.ImportUpload(s.page(c, "Import", "subscribers"), lists, listID,
			fmt.Sprintf("The file is %d MB; the limit is %d MB. Split it into smaller files.", (n+1<<20-1)>>20, limit>>20)))
	}
	header, err := models.ReadCSVHeader(s.store.ImportFile(ctx, im.ID))
	if err != nil {
		var ce *models.CSVError
		if errors.As(err, &ce) {
			return refuse(err.Error())
		}
		return err
	}
	kept = true
	m := mappingFor(im, list, header)
	m.Preview = s.importPreview(ctx, im.ID)
	return s.render(c, 200, views.ImportMappingPage(s.page(c, "Map columns", "subscribers"), m))
}

// importPreview is the first rows of an uploaded file for the mapping
// step; none when the file cannot be read (the step works without them).
func (s *importPages) importPreview(ctx context.Context, id int64) [][]string {
	rows, _ := models.ReadCSVPreview(s.store.ImportFile(ctx, id), 5)
	return rows
}

// mappingFor guesses the email and name columns from the header.
func mappingFor(im *models.Import, list *models.List, header []string) views.ImportMapping {
	m := views.ImportMapping{Import: im, List: list, Header: header, Email: 0, Name: -1}
	for i, h := range header {
		switch k := strings.ToLower(strings.TrimSpace(h)); {
		case strings.Contains(k, "mail"):
			m.Email = i
		case k == "name" || k == "full name" || k == "fullname":
			m.Name = i
		}
	}
	return m
}

func (s *importPages) startImport(c echo.Context) error {
	ctx := c.Request().Context()
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	im, err := s.store.Import(ctx, id)
	if err != nil {
		return err
	}
	if im.Status != models.ImportQueued {
		return seeOther(c, fmt.Sprintf("/imports/%d", id))
	}
	atoi := func(v string, def int) int {
		n, err := strconv.Atoi(v)
		if err != nil {
			return def
		}
		return n
	}
	opts := models.ImportOptions{
		ListID:           im.ListID,
		Mode:             c.FormValue("mode"),
		LawfulBasis:      c.FormValue("lawful_basis"),
		Source:           strings.TrimSpace(c.FormValue("source")),
		EmailColumn:      atoi(c.FormValue("email_column"), -1),
		NameColumn:       atoi(c.FormValue("name_column"), -1),
		Status:           c.FormValue("status"),
		AttributeColumns: map[string]int{},
		Evidence:         evidence(c, models.SourceImport),
	}
	if opts.Mode != models.ImportUpdate {
		opts.Mode = models.ImportSkip
	}
	if opts.Status != models.SubUnconfirmed {
		opts.Status = models.SubConfirmed
	}
	header, err := models.ReadCSVHeader(s.store.ImportFile(ctx, id))
	if err != nil {
		var ce *models.CSVError
		if errors.As(err, &ce) {
			return unprocessable(err.Error(), nil)
		}
		return err
	}
	form, _ := c.FormParams()
	for _, v := range form["attr"] {
		i, err := strconv.Atoi(v)
		if err == nil && i >= 0 && i < len(header) && i != opts.EmailColumn && i != opts.NameColumn {
			opts.AttributeColumns[strings.TrimSpace(header[i])] = i
		}
	}
	if errs := opts.Validate(len(header)); len(errs) > 0 {
		list, err := s.store.List(ctx, im.ListID)
		if err != nil {
			return err
		}
		m := mappingFor(im, list, header)
		m.Errors, m.Preview = errs, s.importPreview(ctx, id)
		return s.render(c, http.StatusUnprocessableEntity, views.ImportMappingPage(s.page(c, "Map columns", "subscribers"), m))
	}
	opts.Evidence.LawfulBasis = opts.LawfulBasis
	opts.Evidence.Note = "import " + itoa(id) + ": " + opts.Source
	// Recorded before it runs (in the background, in its own
	// transactions): an import that cannot be recorded does not start.
	if err := s.audit(c, "import.start", "import", itoa(id), fmt.Sprintf("%s into list %d, basis %s, source %q, mode %s", im.Filename, opts.ListID, opts.LawfulBasis, opts.Source, opts.Mode)); err != nil {
		return err
	}
	// Stored with its options, the import is any node's to run; this one
	// takes it at once unless another was quicker.
	if err := s.store.QueueImport(ctx, id, opts); errors.Is(err, models.ErrConflict) {
		return seeOther(c, fmt.Sprintf("/imports/%d", id))
	} else if err != nil {
		return err
	}
	if err := s.imports.Start(id); err != nil {
		s.log.Error("import queued but not claimed here; another node takes it", "import", id, "err", err)
	}
	return seeOther(c, fmt.Sprintf("/imports/%d", id))
}

func (s *importPages) importPage(c echo.Context) error {
	ctx := c.Request().Context()
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	im, err := s.store.Import(ctx, id)
	if err != nil {
		return err
	}
	listName := "(deleted list)"
	if im.ListID != 0 {
		if l, err := s.store.List(ctx, im.ListID); err == nil {
			listName = l.Name
		}
	}
	rejected, err := s.store.ImportRejections(ctx, id, 100)
	if err != nil {
		return err
	}
	return s.render(c, 200, views.ImportPage(s.page(c, "Import", "subscribers"), im, listName, rejected))
}

func (s *importPages) importProgress(c echo.Context) error {
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	im, err := s.store.Import(c.Request().Context(), id)
	if err != nil {
		return err
	}
	if im.Done() && isHTMX(c) {
		// The finished page lists the rejected rows: show it whole.
		c.Response().Header().Set("HX-Refresh", "true")
	}
	return s.render(c, 200, views.ImportProgress(im))
}

func (s *importPages) importErrors(c echo.Context) error {
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	if _, err := s.store.Import(c.Request().Context(), id); err != nil {
		return err
	}
	w := c.Response()
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="import-%d-report.csv"`, id))
	w.WriteHeader(200)
	return s.store.WriteImportErrors(c.Request().Context(), id, w)
}

func (s *app) exportCSV(c echo.Context, name string, q models.SubscriberQuery) error {
	// Recorded before the data leaves: an export that cannot be recorded
	// is not served.
	if err := s.audit(c, "subscriber.export", "export", name, fmt.Sprintf("search %q list %d status %q", q.Search, q.ListID, q.Status)); err != nil {
		return err
	}
	w := c.Response()
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s"`, name))
	w.WriteHeader(200)
	return s.store.ExportSubscribers(c.Request().Context(), q, w)
}

func (s *importPages) exportList(c echo.Context) error {
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	if _, err := s.store.List(c.Request().Context(), id); err != nil {
		return err
	}
	return s.exportCSV(c, fmt.Sprintf("list-%d.csv", id), models.SubscriberQuery{ListID: id})
}

func (s *importPages) exportSearch(c echo.Context) error {
	_, q := subscriberQuery(c)
	q.Before = 0
	return s.exportCSV(c, "subscribers.csv", q)
}
