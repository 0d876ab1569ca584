package web

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/herald-mail/herald/models"
)

func (s *apiHandlers) compliance() *compliancePages { return &compliancePages{s.app} }

// --- the consent ledger ---

// apiConsents reads the consent ledger, newest first, with the filters
// of the compliance centre's consent review (consentFilter); under
// /subscribers/{id}/consents, one subscriber's rows.
func (s *apiHandlers) apiConsents(c echo.Context) error {
	_, q, _, errs := consentFilter(c)
	if len(errs) > 0 {
		return unprocessable("The filter is not valid.", errs)
	}
	if c.Param("id") != "" {
		id, err := idParam(c, "id")
		if err != nil {
			return err
		}
		if _, err := s.store.Subscriber(c.Request().Context(), id); err != nil {
			return err
		}
		q.SubscriberID = id
	}
	var err error
	if q.Before, err = apiCursor(c, "before"); err != nil {
		return err
	}
	if q.Limit, err = apiLimit(c, 500); err != nil {
		return err
	}
	rows, next, err := s.store.ConsentPage(c.Request().Context(), q)
	if err != nil {
		return err
	}
	out := make([]consentJSON, len(rows))
	for i := range rows {
		out[i] = toConsentJSON(&rows[i])
	}
	return apiPage(c, out, next)
}

// --- data-subject requests ---

type apiDSR struct {
	ID           int64      `json:"id"`
	Kind         string     `json:"kind"`
	Email        string     `json:"email"`
	SubscriberID *int64     `json:"subscriber_id"`
	Status       string     `json:"status"`
	Note         string     `json:"note"`
	Outcome      string     `json:"outcome"`
	CreatedBy    string     `json:"created_by"`
	HandledBy    string     `json:"handled_by"`
	ReceivedAt   time.Time  `json:"received_at"`
	DueAt        time.Time  `json:"due_at"`
	Overdue      bool       `json:"overdue"`
	HandledAt    *time.Time `json:"handled_at"`
}

func toAPIDSR(r *models.DSRRequest) apiDSR {
	return apiDSR{r.ID, r.Kind, r.SubjectEmail, r.SubscriberID, r.Status, r.Note, r.Outcome, r.CreatedBy, r.HandledBy,
		r.ReceivedAt, r.Due(), r.Overdue(time.Now()), r.HandledAt}
}

func (s *apiHandlers) apiRequests(c echo.Context) error {
	q := models.DSRQuery{Status: c.QueryParam("status")}
	switch q.Status {
	case "", models.DSROpen, models.DSRDone, models.DSRRejected:
	default:
		return badRequest("status must be open, done or rejected.")
	}
	var err error
	if q.Before, err = apiCursor(c, "before"); err != nil {
		return err
	}
	if q.Limit, err = apiLimit(c, 500); err != nil {
		return err
	}
	rows, next, err := s.store.DSRs(c.Request().Context(), q)
	if err != nil {
		return err
	}
	out := make([]apiDSR, len(rows))
	for i := range rows {
		out[i] = toAPIDSR(&rows[i])
	}
	return apiPage(c, out, next)
}

func (s *apiHandlers) writeAPIDSR(c echo.Context, status int, id int64) error {
	r, err := s.store.DSR(c.Request().Context(), id)
	if err != nil {
		return err
	}
	return c.JSON(status, map[string]any{"data": toAPIDSR(r)})
}

func (s *apiHandlers) apiRequest(c echo.Context) error {
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	return s.writeAPIDSR(c, http.StatusOK, id)
}

// apiCreateRequest logs a request as received; the export or erasure
// that answers it is a second call, as in the compliance centre.
func (s *apiHandlers) apiCreateRequest(c echo.Context) error {
	var in struct {
		Kind       string `json:"kind"`
		Email      string `json:"email"`
		ReceivedAt string `json:"received_at"`
		Note       string `json:"note"`
	}
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	r := &models.DSRRequest{Kind: in.Kind, SubjectEmail: strings.TrimSpace(in.Email), Note: strings.TrimSpace(in.Note)}
	if in.ReceivedAt == "" {
		r.ReceivedAt = time.Now().UTC()
	}
	errs, err := s.compliance().logRequest(c, r, in.ReceivedAt)
	if len(errs) > 0 {
		return unprocessable("The request is not valid.", errs)
	}
	if err != nil {
		return err
	}
	return s.writeAPIDSR(c, http.StatusCreated, r.ID)
}

// openRequest loads an open request of one of kinds and the subscriber
// it is about.
func (s *apiHandlers) openRequest(c echo.Context, kinds ...string) (*models.DSRRequest, *models.Subscriber, error) {
	id, err := idParam(c, "id")
	if err != nil {
		return nil, nil, err
	}
	ctx := c.Request().Context()
	r, err := s.store.DSR(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	if r.Status != models.DSROpen {
		return nil, nil, conflict(fmt.Sprintf("Request #%d is already %s.", id, r.Status))
	}
	ok := false
	for _, k := range kinds {
		ok = ok || r.Kind == k
	}
	if !ok {
		return nil, nil, conflict(fmt.Sprintf("Request #%d asks for %s, not for this; use the matching endpoint or close it.", id, r.Kind))
	}
	sub, err := s.store.SubscriberByEmail(ctx, r.SubjectEmail)
	if errors.Is(err, models.ErrNotFound) {
		return nil, nil, notFoundErr(fmt.Sprintf("No subscriber has the address of request #%d; close it (POST /api/v1/requests/%d/close) saying no data is held.", id, id))
	}
	if err != nil {
		return nil, nil, err
	}
	return r, sub, nil
}

// apiExportRequest answers an access or portability request: the
// subscriber's data as JSON (the compliance centre's export), and the
// request closed as done.
func (s *apiHandlers) apiExportRequest(c echo.Context) error {
	r, sub, err := s.openRequest(c, models.DSRAccess, models.DSRPortability)
	if err != nil {
		return err
	}
	body, err := s.compliance().exportSubject(c, sub, r)
	if err != nil {
		return err
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(http.StatusOK, map[string]any{"request_id": r.ID, "data": json.RawMessage(body)})
}

// apiEraseRequest answers an erasure request: the subscriber erased and
// the request closed as done, in one transaction.
func (s *apiHandlers) apiEraseRequest(c echo.Context) error {
	r, sub, err := s.openRequest(c, models.DSRErasure)
	if err != nil {
		return err
	}
	ev := evidence(c, models.SourceAPI)
	ev.Note = "erasure request (api)"
	if _, err := s.store.EraseForRequest(c.Request().Context(), sub.ID, r.ID, ev, ev.Actor, s.auditEntry(c, "", "", "", "")); err != nil {
		return err
	}
	return s.writeAPIDSR(c, http.StatusOK, r.ID)
}

// apiCloseRequest closes a request as done or rejected with its outcome.
func (s *apiHandlers) apiCloseRequest(c echo.Context) error {
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	var in struct {
		Status  string `json:"status"`
		Outcome string `json:"outcome"`
	}
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	if err := s.compliance().closeDSR(c, id, in.Status, in.Outcome); err != nil {
		return err
	}
	return s.writeAPIDSR(c, http.StatusOK, id)
}
