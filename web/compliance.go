package web

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/herald-mail/herald/models"
	"github.com/herald-mail/herald/views"
)

// compliancePages serves the compliance centre: consent review, data-subject requests, retention and the audit log.
type compliancePages struct{ *app }

// complianceReader keeps marketers out of the compliance centre unless an
// admin has let them read it. It runs after the viewer guard.
func (s *app) complianceReader(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if u := currentUser(c); u != nil && u.Role == models.RoleMarketer {
			v, err := s.store.Setting(c.Request().Context(), models.SettingComplianceMarketers)
			if err != nil {
				return err
			}
			if v != models.ComplianceMarketersRead {
				return forbidden("Marketers cannot open the compliance centre. An admin can allow it under Compliance → Retention.")
			}
		}
		return next(c)
	}
}

// dateRange reads a from/to pair of YYYY-MM-DD dates; to is inclusive, so
// the range ends at the start of the next day.
func dateRange(from, to string, errs map[string]string) (time.Time, time.Time) {
	day := func(field, v string) time.Time {
		if v == "" {
			return time.Time{}
		}
		t, err := time.Parse("2006-01-02", v)
		if err != nil {
			errs[field] = "Enter the date as YYYY-MM-DD, e.g. 2024-05-31."
		}
		return t
	}
	f, t := day("from", from), day("to", to)
	if !t.IsZero() {
		t = t.AddDate(0, 0, 1)
	}
	if !f.IsZero() && !t.IsZero() && !f.Before(t) {
		errs["to"] = "The end date is before the start date."
	}
	return f, t
}

// queryOf encodes the non-empty pairs kv (key, value, key, value…).
func queryOf(kv ...string) url.Values {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] != "" {
			v.Set(kv[i], kv[i+1])
		}
	}
	return v
}

// pageLinks are the first-page and next-page links of a keyset list whose
// cursor is the query parameter param (at is its value on this page).
func pageLinks(path, param string, q url.Values, at, next int64) (first, nextHref string) {
	if at > 0 {
		first = path + "?" + q.Encode()
	}
	if next > 0 {
		n := url.Values{}
		for k, v := range q {
			n[k] = v
		}
		n.Set(param, itoa(next))
		nextHref = path + "?" + n.Encode()
	}
	return first, nextHref
}

func int64Query(c echo.Context, name string) int64 {
	n, _ := strconv.ParseInt(c.QueryParam(name), 10, 64)
	return max(n, 0)
}

// consentFilter reads the consent filter from the query string.
func consentFilter(c echo.Context) (views.ConsentFilter, models.ConsentQuery, url.Values, map[string]string) {
	f := views.ConsentFilter{
		List: c.QueryParam("list"), Source: c.QueryParam("source"), Basis: c.QueryParam("basis"),
		Action: c.QueryParam("action"), From: c.QueryParam("from"), To: c.QueryParam("to"),
		Email: strings.TrimSpace(c.QueryParam("email")), Subscriber: c.QueryParam("subscriber"),
	}
	errs := map[string]string{}
	q := models.ConsentQuery{Email: f.Email, Source: f.Source, LawfulBasis: f.Basis, Action: f.Action}
	q.ListID, _ = strconv.ParseInt(f.List, 10, 64)
	q.SubscriberID, _ = strconv.ParseInt(f.Subscriber, 10, 64)
	q.From, q.To = dateRange(f.From, f.To, errs)
	v := queryOf("list", f.List, "source", f.Source, "basis", f.Basis, "action", f.Action, "from", f.From, "to", f.To,
		"email", f.Email, "subscriber", f.Subscriber)
	return f, q, v, errs
}

func (s *compliancePages) consentReviewData(c echo.Context) (views.ConsentReview, error) {
	ctx := c.Request().Context()
	f, q, v, errs := consentFilter(c)
	d := views.ConsentReview{Filter: f, Errors: errs, ExportQuery: v.Encode()}
	lists, err := s.store.Lists(ctx)
	if err != nil {
		return d, err
	}
	d.Lists = lists
	if len(errs) > 0 {
		return d, nil
	}
	q.Before = int64Query(c, "before")
	rows, next, err := s.store.ConsentPage(ctx, q)
	if err != nil {
		return d, err
	}
	d.Rows = rows
	d.FirstHref, d.NextHref = pageLinks("/compliance", "before", v, q.Before, next)
	return d, nil
}

func (s *compliancePages) consentReview(c echo.Context) error {
	d, err := s.consentReviewData(c)
	if err != nil {
		return err
	}
	status := http.StatusOK
	if len(d.Errors) > 0 {
		status = http.StatusUnprocessableEntity
	}
	return s.render(c, status, views.ConsentReviewPage(s.page(c, "Consent", "compliance"), d))
}

// verifyLedger walks the consent ledger and reports the first broken link.
func (s *compliancePages) verifyLedger(c echo.Context) error {
	brk, n, err := s.store.VerifyConsents(c.Request().Context())
	if err != nil {
		return err
	}
	res := &views.VerifyResult{Checked: n, Break: brk}
	summary := fmt.Sprintf("%d rows verify", n)
	if brk != nil {
		summary = fmt.Sprintf("broken at row %d after %d rows: %s", brk.ID, n, brk.Reason)
	}
	if err := s.audit(c, "consent.verify", "consents", "", summary); err != nil {
		return err
	}
	if isHTMX(c) {
		return s.render(c, http.StatusOK, views.VerifyPanel(res))
	}
	d, err := s.consentReviewData(c)
	if err != nil {
		return err
	}
	d.Verify = res
	return s.render(c, http.StatusOK, views.ConsentReviewPage(s.page(c, "Consent", "compliance"), d))
}

// exportQuery reads the export's filter; a bad one is refused with what to
// fix before anything is written.
func exportQuery(c echo.Context) (models.ConsentQuery, url.Values, error) {
	_, q, v, errs := consentFilter(c)
	for _, msg := range errs {
		return q, v, badRequest(msg)
	}
	return q, v, nil
}

// download starts a streamed attachment.
func download(c echo.Context, contentType, name string) {
	w := c.Response()
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s"`, name))
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
}

// streamFailed logs an error met after a download's headers were sent (the
// central handler cannot answer any more).
func (s *app) streamFailed(c echo.Context, what string, err error) error {
	if err != nil {
		s.log.Error("export failed midway", "export", what, "err", err, "request_id", c.Response().Header().Get(echo.HeaderXRequestID))
	}
	return err
}

var consentCSVHeader = []string{"id", "created_at", "subscriber_id", "email", "list_id", "list", "action", "lawful_basis", "source",
	"ip", "user_agent", "page", "consent_text_sha256", "actor", "note", "prev_hash", "hash"}

func idOrEmpty(p *int64) string {
	if p == nil {
		return ""
	}
	return itoa(*p)
}

func (s *compliancePages) exportConsentsCSV(c echo.Context) error {
	q, v, err := exportQuery(c)
	if err != nil {
		return err
	}
	// The entry is written before the data leaves: an export that
	// cannot be recorded is not served.
	if err := s.audit(c, "consent.export", "consents", "csv", v.Encode()); err != nil {
		return err
	}
	download(c, "text/csv; charset=utf-8", "consents.csv")
	cw := csv.NewWriter(c.Response())
	if err := cw.Write(consentCSVHeader); err != nil {
		return err
	}
	safe := models.CSVSafe
	err = s.store.EachConsent(c.Request().Context(), q, func(e *models.ConsentEntry) error {
		return cw.Write([]string{itoa(e.ID), e.CreatedAt.UTC().Format(time.RFC3339Nano), idOrEmpty(e.SubscriberID), safe(e.Email),
			idOrEmpty(e.ListID), safe(e.ListName), e.Action, e.LawfulBasis, e.Source, safe(e.IP), safe(e.UserAgent), safe(e.Page),
			e.TextHash, safe(e.Actor), safe(e.Note), e.PrevHash, e.Hash})
	})
	cw.Flush()
	if err == nil {
		err = cw.Error()
	}
	return s.streamFailed(c, "consents.csv", err)
}

// consentJSON is one consent event in the JSON evidence export.
type consentJSON struct {
	ID           int64     `json:"id"`
	CreatedAt    time.Time `json:"created_at"`
	SubscriberID *int64    `json:"subscriber_id"`
	Email        string    `json:"email"`
	ListID       *int64    `json:"list_id"`
	List         string    `json:"list"`
	Action       string    `json:"action"`
	LawfulBasis  string    `json:"lawful_basis"`
	Source       string    `json:"source"`
	IP           string    `json:"ip"`
	UserAgent    string    `json:"user_agent"`
	Page         string    `json:"page"`
	TextHash     string    `json:"consent_text_sha256"`
	Actor        string    `json:"actor"`
	Note         string    `json:"note"`
	PrevHash     string    `json:"prev_hash"`
	Hash         string    `json:"hash"`
}

// toConsentJSON is a ledger row as the JSON export and the API show it.
func toConsentJSON(e *models.ConsentEntry) consentJSON {
	return consentJSON{e.ID, e.CreatedAt.UTC(), e.SubscriberID, e.Email, e.ListID, e.ListName, e.Action,
		e.LawfulBasis, e.Source, e.IP, e.UserAgent, e.Page, e.TextHash, e.Actor, e.Note, e.PrevHash, e.Hash}
}

func (s *compliancePages) exportConsentsJSON(c echo.Context) error {
	q, v, err := exportQuery(c)
	if err != nil {
		return err
	}
	// The entry is written before the data leaves: an export that
	// cannot be recorded is not served.
	if err := s.audit(c, "consent.export", "consents", "json", v.Encode()); err != nil {
		return err
	}
	download(c, "application/json", "consents.json")
	w := c.Response()
	if _, err := w.Write([]byte("[")); err != nil {
		return err
	}
	first := true
	err = s.store.EachConsent(c.Request().Context(), q, func(e *models.ConsentEntry) error {
		b, err := json.Marshal(toConsentJSON(e))
		if err != nil {
			return err
		}
		if !first {
			b = append([]byte(",\n"), b...)
		}
		first = false
		_, err = w.Write(b)
		return err
	})
	if err == nil {
		_, err = w.Write([]byte("]\n"))
	}
	return s.streamFailed(c, "consents.json", err)
}

func (s *compliancePages) coveragePage(c echo.Context) error {
	rows, err := s.store.ConsentCoverage(c.Request().Context())
	if err != nil {
		return err
	}
	return s.render(c, http.StatusOK, views.CoveragePage(s.page(c, "Coverage", "compliance"), rows))
}

func (s *compliancePages) listParam(c echo.Context) (*models.List, error) {
	id, err := idParam(c, "list")
	if err != nil {
		return nil, err
	}
	return s.store.List(c.Request().Context(), id)
}

func (s *compliancePages) lackingPage(c echo.Context) error {
	l, err := s.listParam(c)
	if err != nil {
		return err
	}
	after := int64Query(c, "after") // the cursor runs up by subscriber id
	rows, next, err := s.store.LackingBasis(c.Request().Context(), l.ID, after, 50)
	if err != nil {
		return err
	}
	d := views.LackingView{List: *l, Rows: rows}
	d.FirstHref, d.NextHref = pageLinks(fmt.Sprintf("/compliance/coverage/%d", l.ID), "after", url.Values{}, after, next)
	return s.render(c, http.StatusOK, views.LackingPage(s.page(c, "Without a basis", "compliance"), d))
}

func (s *compliancePages) exportLacking(c echo.Context) error {
	l, err := s.listParam(c)
	if err != nil {
		return err
	}
	// The entry is written before the data leaves: an export that
	// cannot be recorded is not served.
	if err := s.audit(c, "consent.export_lacking", "list", itoa(l.ID), l.Name); err != nil {
		return err
	}
	download(c, "text/csv; charset=utf-8", fmt.Sprintf("list-%d-without-basis.csv", l.ID))
	cw := csv.NewWriter(c.Response())
	if err := cw.Write([]string{"email", "name", "list_status", "member_since"}); err != nil {
		return err
	}
	err = s.store.EachLackingBasis(c.Request().Context(), l.ID, func(m *models.LackingMember) error {
		return cw.Write([]string{models.CSVSafe(m.Email), models.CSVSafe(m.Name), m.Status, m.CreatedAt.UTC().Format(time.RFC3339)})
	})
	cw.Flush()
	if err == nil {
		err = cw.Error()
	}
	return s.streamFailed(c, "lacking.csv", err)
}

func (s *compliancePages) confirmUnsubscribeLacking(c echo.Context) error {
	l, err := s.listParam(c)
	if err != nil {
		return err
	}
	back := fmt.Sprintf("/compliance/coverage/%d", l.ID)
	return s.render(c, http.StatusOK, views.ConfirmAction(s.page(c, "Unsubscribe members without a basis", "compliance"), "coverage",
		"Unsubscribe everyone on “"+l.Name+"” without a lawful basis?",
		"Every live member of this list with no valid basis on record is unsubscribed from it, and the ledger records a withdrawal for each. They stay subscribers (and on other lists). Export them first if you mean to ask them again.",
		back+"/unsubscribe", "Yes, unsubscribe them", back, nil))
}

func (s *compliancePages) unsubscribeLacking(c echo.Context) error {
	l, err := s.listParam(c)
	if err != nil {
		return err
	}
	ev := evidence(c, models.SourceAdmin)
	ev.Note = "no lawful basis on record (compliance coverage)"
	// One transaction with its entry: a failure unsubscribes no one.
	chg, err := s.store.Begin(c.Request().Context())
	if err != nil {
		return err
	}
	defer chg.End()
	n, err := s.store.UnsubscribeLacking(chg.Ctx(), l.ID, ev)
	if err != nil {
		return err
	}
	if err := chg.Commit(s.auditEntry(c, "consent.unsubscribe_lacking", "list", itoa(l.ID), fmt.Sprintf("%s: %d members without a basis unsubscribed", l.Name, n))); err != nil {
		return err
	}
	s.flash(c, fmt.Sprintf("%d members of “%s” without a lawful basis were unsubscribed.", n, l.Name))
	return seeOther(c, "/compliance/coverage")
}

func (s *compliancePages) peoplePage(c echo.Context) error {
	q := strings.TrimSpace(c.QueryParam("q"))
	matches, err := s.store.FindPeople(c.Request().Context(), q, 25)
	if err != nil {
		return err
	}
	return s.render(c, http.StatusOK, views.PeoplePage(s.page(c, "Find a person", "compliance"), q, matches))
}

// certificateData gathers a person's consents per list; the subscriber may
// be gone (its ledger rows stay under its id).
func (s *compliancePages) certificatePage(c echo.Context) error {
	ctx := c.Request().Context()
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	sub, err := s.store.Subscriber(ctx, id)
	if err != nil && !errors.Is(err, models.ErrNotFound) {
		return err
	}
	rows, err := s.store.ConsentsBySubscriber(ctx, id)
	if err != nil {
		return err
	}
	if sub == nil && len(rows) == 0 {
		return notFoundErr("Herald holds no subscriber and no consent events under this id.")
	}
	lists, err := s.store.Lists(ctx)
	if err != nil {
		return err
	}
	var subs []models.Subscription
	if sub != nil {
		if subs, err = s.store.SubscriptionsOf(ctx, id); err != nil {
			return err
		}
	}
	cert := views.Certificate{SubscriberID: id, Subscriber: sub, Generated: time.Now().UTC()}
	if sub != nil {
		cert.Email = sub.Email
	}
	byList := map[string]*views.CertificateList{}
	var order []string
	for _, r := range rows {
		key, name := "", ""
		if r.ListID != nil {
			key, name = itoa(*r.ListID), listNameOf(lists, *r.ListID)
		}
		cl := byList[key]
		if cl == nil {
			cl = &views.CertificateList{Name: name}
			if r.ListID != nil {
				for _, m := range subs {
					if m.ListID == *r.ListID {
						cl.Status = m.Status
					}
				}
			}
			byList[key] = cl
			order = append(order, key)
		}
		cl.Events = append(cl.Events, r)
		if cert.Email == "" && r.Email != "" {
			cert.Email = r.Email
		}
	}
	for _, k := range order {
		cert.Lists = append(cert.Lists, *byList[k])
	}
	sort.SliceStable(cert.Lists, func(i, j int) bool {
		a, b := cert.Lists[i].Name, cert.Lists[j].Name
		return a != "" && (b == "" || strings.ToLower(a) < strings.ToLower(b))
	})
	if cert.OrgName, err = s.store.Setting(ctx, models.SettingOrgName); err != nil {
		return err
	}
	if cert.Email != "" {
		if cert.Requests, err = s.store.DSRsBySubject(ctx, cert.Email); err != nil {
			return err
		}
	}
	return s.render(c, http.StatusOK, views.CertificatePage(s.page(c, "Consent certificate", "compliance"), cert))
}

func listNameOf(lists []models.List, id int64) string {
	for _, l := range lists {
		if l.ID == id {
			return l.Name
		}
	}
	return fmt.Sprintf("list %d (deleted)", id)
}

// requestFor loads the open request named by the form's "request" field and
// checks it may be answered by an action of one of kinds; nil when the form
// names none (the action then logs a request of its own).
func (s *compliancePages) requestFor(c echo.Context, sub *models.Subscriber, kinds ...string) (*models.DSRRequest, error) {
	raw := c.FormValue("request")
	if raw == "" {
		return nil, nil
	}
	id, err := strconv.ParseInt(raw, 10, 64)
	if err != nil {
		return nil, badRequest("The request number is not valid; open the request from the list of requests.")
	}
	r, err := s.store.DSR(c.Request().Context(), id)
	if err != nil {
		return nil, err
	}
	switch {
	case r.Status != models.DSROpen:
		return nil, conflict(fmt.Sprintf("Request #%d is already closed.", id))
	case !slices.Contains(kinds, r.Kind):
		return nil, conflict(fmt.Sprintf("Request #%d asks for %s, not for this.", id, r.Kind))
	case r.SubjectHash != models.SuppressionHash(sub.Email):
		return nil, conflict(fmt.Sprintf("Request #%d is about another address than this subscriber's.", id))
	}
	return r, nil
}

// recordRequest closes req as done, or, when the action was taken without
// a logged request, logs one that is done already. It returns its id.
// actor is the signed-in user's address ("" for none).
func (s *compliancePages) actor(c echo.Context) string {
	if u := currentUser(c); u != nil {
		return u.Email
	}
	return ""
}

func (s *compliancePages) recordRequest(ctx context.Context, c echo.Context, req *models.DSRRequest, kind string, sub *models.Subscriber, outcome string) (int64, error) {
	actor := ""
	if u := currentUser(c); u != nil {
		actor = u.Email
	}
	if req != nil {
		return req.ID, s.store.CloseDSR(ctx, req.ID, models.DSRDone, actor, outcome, sub.ID)
	}
	t := time.Now()
	r := &models.DSRRequest{Kind: kind, SubjectEmail: sub.Email, SubscriberID: &sub.ID, Status: models.DSRDone,
		Outcome: outcome, CreatedBy: actor, HandledBy: actor, ReceivedAt: t, HandledAt: &t}
	if err := s.store.CreateDSR(ctx, r); err != nil {
		return 0, err
	}
	return r.ID, nil
}

func (s *compliancePages) subscriberParam(c echo.Context) (*models.Subscriber, error) {
	id, err := idParam(c, "id")
	if err != nil {
		return nil, err
	}
	return s.store.Subscriber(c.Request().Context(), id)
}

// subjectExport answers an access or portability request: everything held
// on the person, as JSON, through the one implementation the preference
// centre uses too.
func (s *compliancePages) subjectExport(c echo.Context) error {
	sub, err := s.subscriberParam(c)
	if err != nil {
		return err
	}
	req, err := s.requestFor(c, sub, models.DSRAccess, models.DSRPortability)
	if err != nil {
		return err
	}
	body, err := s.exportSubject(c, sub, req)
	if err != nil {
		return err
	}
	c.Response().Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="subscriber-%d-data.json"`, sub.ID))
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.Blob(http.StatusOK, "application/json", body)
}

// exportSubject gathers everything held on sub as indented JSON, closes
// req (or logs a request that is done) and writes the audit entry; for the
// dashboard and the API.
func (s *compliancePages) exportSubject(c echo.Context, sub *models.Subscriber, req *models.DSRRequest) ([]byte, error) {
	data, err := s.store.SubjectExport(c.Request().Context(), sub.ID)
	if err != nil {
		return nil, err
	}
	body, err := json.MarshalIndent(data, "", "  ")
	if err != nil {
		return nil, err
	}
	kind := models.DSRAccess
	if req != nil {
		kind = req.Kind
	}
	chg, err := s.store.Begin(c.Request().Context())
	if err != nil {
		return nil, err
	}
	defer chg.End()
	rid, err := s.recordRequest(chg.Ctx(), c, req, kind, sub, "all data exported as JSON")
	if err != nil {
		return nil, err
	}
	if err := chg.Commit(s.auditEntry(c, "dsr.export", "subscriber", itoa(sub.ID), fmt.Sprintf("request #%d: %s export of subscriber %d (JSON)", rid, kind, sub.ID))); err != nil {
		return nil, err
	}
	return append(body, '\n'), nil
}

func rectifyForm(sub *models.Subscriber) views.RectifyForm {
	return views.RectifyForm{SubscriberID: sub.ID, Email: sub.Email, Name: sub.Name,
		Attributes: views.AttributesJSON(sub.Attributes), Errors: map[string]string{}}
}

func (s *compliancePages) rectifyPage(c echo.Context) error {
	sub, err := s.subscriberParam(c)
	if err != nil {
		return err
	}
	f := rectifyForm(sub)
	f.RequestID = int64Query(c, "request")
	return s.render(c, http.StatusOK, views.RectifyPage(s.page(c, "Rectify", "compliance"), f))
}

// rectify corrects a person's address, name or attributes on their request,
// logging the values before and after.
func (s *compliancePages) rectify(c echo.Context) error {
	ctx := c.Request().Context()
	before, err := s.subscriberParam(c)
	if err != nil {
		return err
	}
	req, err := s.requestFor(c, before, models.DSRRectification)
	if err != nil {
		return err
	}
	form, after := parseSubscriberForm(c)
	after.ID = before.ID
	f := views.RectifyForm{SubscriberID: before.ID, Email: form.Email, Name: form.Name, Attributes: form.Attributes, Errors: form.Errors}
	if req != nil {
		f.RequestID = req.ID
	}
	var rid int64
	if len(f.Errors) == 0 {
		// One transaction: the correction, the request's record and the
		// audit entry.
		var reqID int64
		if req != nil {
			reqID = req.ID
		}
		rid, _, err = s.store.RectifyForRequest(ctx, after, reqID, s.actor(c), s.auditEntry(c, "", "", "", ""))
		if errors.Is(err, models.ErrConflict) {
			f.Errors["email"] = "Another subscriber already has this address."
		} else if err != nil {
			return err
		}
	}
	if len(f.Errors) > 0 {
		return s.render(c, http.StatusUnprocessableEntity, views.RectifyPage(s.page(c, "Rectify", "compliance"), f))
	}
	s.flash(c, fmt.Sprintf("Correction saved and logged as request #%d.", rid))
	return seeOther(c, fmt.Sprintf("/compliance/subscribers/%d/certificate", before.ID))
}

func (s *compliancePages) erasePage(c echo.Context) error {
	ctx := c.Request().Context()
	sub, err := s.subscriberParam(c)
	if err != nil {
		return err
	}
	subs, err := s.store.SubscriptionsOf(ctx, sub.ID)
	if err != nil {
		return err
	}
	consents, deliveries, err := s.store.SubscriberFootprint(ctx, sub.ID)
	if err != nil {
		return err
	}
	d := views.EraseView{Sub: *sub, Lists: subs, RequestID: int64Query(c, "request"), Consents: consents, Deliveries: deliveries}
	return s.render(c, http.StatusOK, views.ErasePage(s.page(c, "Erase", "compliance"), d))
}

// erase answers an erasure request through the store's one erasure. The
// request is logged (open) first, so the erasure blanks its address like
// every other trace, and closed after; if erasure fails it stays open.
func (s *compliancePages) erase(c echo.Context) error {
	ctx := c.Request().Context()
	sub, err := s.subscriberParam(c)
	if err != nil {
		return err
	}
	req, err := s.requestFor(c, sub, models.DSRErasure)
	if err != nil {
		return err
	}
	var reqID int64
	if req != nil {
		reqID = req.ID
	}
	ev := evidence(c, models.SourceAdmin)
	ev.Note = strings.TrimSpace("erasure request " + strings.TrimSpace(c.FormValue("note")))
	if len(ev.Note) > 500 {
		ev.Note = ev.Note[:500]
	}
	// One transaction: the request's record, the erasure and the audit
	// entry.
	rid, err := s.store.EraseForRequest(ctx, sub.ID, reqID, ev, evidence(c, "").Actor, s.auditEntry(c, "", "", "", ""))
	if err != nil {
		return err
	}
	s.flash(c, fmt.Sprintf("Subscriber %d was erased; request #%d is logged.", sub.ID, rid))
	return seeOther(c, "/compliance/requests")
}

func (s *compliancePages) requestsData(c echo.Context, f views.DSRForm) (views.RequestsView, error) {
	ctx := c.Request().Context()
	t := time.Now()
	status := c.QueryParam("status")
	if status != models.DSROpen && status != models.DSRDone && status != models.DSRRejected {
		status = ""
	}
	before := int64Query(c, "before")
	rows, next, err := s.store.DSRs(ctx, models.DSRQuery{Status: status, Before: before})
	if err != nil {
		return views.RequestsView{}, err
	}
	open, overdue, err := s.store.OpenDSRCount(ctx, t)
	if err != nil {
		return views.RequestsView{}, err
	}
	d := views.RequestsView{Rows: rows, Now: t, Status: status, Open: open, Overdue: overdue, Form: f}
	d.FirstHref, d.NextHref = pageLinks("/compliance/requests", "before", queryOf("status", status), before, next)
	return d, nil
}

func (s *compliancePages) requestsPage(c echo.Context) error {
	d, err := s.requestsData(c, views.DSRForm{Kind: models.DSRAccess, ReceivedAt: time.Now().UTC().Format("2006-01-02")})
	if err != nil {
		return err
	}
	return s.render(c, http.StatusOK, views.RequestsPage(s.page(c, "Data requests", "compliance"), d))
}

func (s *compliancePages) createRequest(c echo.Context) error {
	f := views.DSRForm{Kind: c.FormValue("kind"), Email: strings.TrimSpace(c.FormValue("email")),
		ReceivedAt: c.FormValue("received_at"), Note: strings.TrimSpace(c.FormValue("note"))}
	r := &models.DSRRequest{Kind: f.Kind, SubjectEmail: f.Email, Note: f.Note}
	var err error
	if f.Errors, err = s.logRequest(c, r, f.ReceivedAt); len(f.Errors) > 0 {
		d, err := s.requestsData(c, f)
		if err != nil {
			return err
		}
		return s.render(c, http.StatusUnprocessableEntity, views.RequestsPage(s.page(c, "Data requests", "compliance"), d))
	}
	if err != nil {
		return err
	}
	s.flash(c, fmt.Sprintf("Request #%d logged.", r.ID))
	return seeOther(c, fmt.Sprintf("/compliance/requests/%d", r.ID))
}

// logRequest validates and logs a data-subject request received on the
// date received (YYYY-MM-DD; "" for today) with its audit entry, for the
// dashboard and the API; errs says what is wrong by field.
func (s *compliancePages) logRequest(c echo.Context, r *models.DSRRequest, received string) (errs map[string]string, err error) {
	r.CreatedBy = s.actor(c)
	var dateErr string
	if t, err := time.Parse("2006-01-02", received); err == nil {
		r.ReceivedAt = t
	} else if received != "" {
		dateErr = "Enter the date as YYYY-MM-DD, e.g. 2024-05-31."
	}
	errs = r.Validate()
	if dateErr != "" {
		errs["received_at"] = dateErr
	}
	if len(errs) > 0 {
		return errs, nil
	}
	chg, err := s.store.Begin(c.Request().Context())
	if err != nil {
		return nil, err
	}
	defer chg.End()
	if err := s.store.CreateDSR(chg.Ctx(), r); err != nil {
		return nil, err
	}
	return nil, chg.Commit(s.auditEntry(c, "dsr.create", "dsr_request", itoa(r.ID), fmt.Sprintf("%s request from %s received %s", r.Kind, r.SubjectEmail, r.ReceivedAt.Format("2006-01-02"))))
}

func (s *compliancePages) requestPage(c echo.Context) error {
	ctx := c.Request().Context()
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	r, err := s.store.DSR(ctx, id)
	if err != nil {
		return err
	}
	d := views.RequestView{Req: *r, Now: time.Now()}
	if r.SubjectEmail != "" && r.Status == models.DSROpen {
		if d.Matches, err = s.store.FindPeople(ctx, r.SubjectEmail, 10); err != nil {
			return err
		}
	}
	return s.render(c, http.StatusOK, views.RequestPage(s.page(c, fmt.Sprintf("Request #%d", id), "compliance"), d))
}

func (s *compliancePages) closeRequest(c echo.Context) error {
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	status := c.FormValue("status")
	if err := s.closeDSR(c, id, status, c.FormValue("outcome")); err != nil {
		return err
	}
	s.flash(c, fmt.Sprintf("Request #%d closed as %s.", id, status))
	return seeOther(c, "/compliance/requests")
}

// closeDSR closes a request as done or rejected with what was decided,
// and its audit entry; for the dashboard and the API.
func (s *compliancePages) closeDSR(c echo.Context, id int64, status, outcome string) error {
	outcome = strings.TrimSpace(outcome)
	if status != models.DSRDone && status != models.DSRRejected {
		return unprocessable("Choose whether the request is done or rejected.", map[string]string{"status": "Choose done or rejected."})
	}
	if outcome == "" {
		return unprocessable("Say what was decided and why before closing the request; go back and fill in the outcome.", map[string]string{"outcome": "Required."})
	}
	chg, err := s.store.Begin(c.Request().Context())
	if err != nil {
		return err
	}
	defer chg.End()
	if err := s.store.CloseDSR(chg.Ctx(), id, status, s.actor(c), outcome, 0); err != nil {
		if errors.Is(err, models.ErrDSRClosed) {
			return conflict(fmt.Sprintf("Request #%d is already closed.", id))
		}
		return err
	}
	return chg.Commit(s.auditEntry(c, "dsr.close", "dsr_request", itoa(id), status+": "+outcome))
}

func retentionValues(p models.RetentionPolicy) map[string]string {
	return map[string]string{
		models.SettingRetainUnconfirmed: strconv.Itoa(p.UnconfirmedDays), models.SettingRetainEvents: strconv.Itoa(p.EventDays),
		models.SettingRetainBounces: strconv.Itoa(p.BounceDays), models.SettingRetainOutbox: strconv.Itoa(p.OutboxDays),
	}
}

func (s *compliancePages) retentionData(c echo.Context) (views.RetentionView, error) {
	ctx := c.Request().Context()
	p, err := s.store.Retention(ctx)
	if err != nil {
		return views.RetentionView{}, err
	}
	d := views.RetentionView{Values: retentionValues(p), Errors: map[string]string{}, Defaults: models.DefaultRetention}
	if d.Marketers, err = s.store.Setting(ctx, models.SettingComplianceMarketers); err != nil {
		return d, err
	}
	last, _, err := s.store.AuditPage(ctx, models.AuditQuery{ActionPrefix: retentionAction, Limit: 1})
	if err != nil {
		return d, err
	}
	if len(last) > 0 {
		d.LastRun = &last[0]
	}
	return d, nil
}

func (s *compliancePages) retentionPage(c echo.Context) error {
	d, err := s.retentionData(c)
	if err != nil {
		return err
	}
	return s.render(c, http.StatusOK, views.RetentionPage(s.page(c, "Retention", "compliance"), d))
}

func (s *compliancePages) saveRetention(c echo.Context) error {
	ctx := c.Request().Context()
	d, err := s.retentionData(c)
	if err != nil {
		return err
	}
	p, errs := models.ParseRetention(c.FormValue)
	if len(errs) > 0 {
		for k := range d.Values {
			d.Values[k] = c.FormValue(k)
		}
		d.Errors = errs
		return s.render(c, http.StatusUnprocessableEntity, views.RetentionPage(s.page(c, "Retention", "compliance"), d))
	}
	old, err := s.store.Retention(ctx)
	if err != nil {
		return err
	}
	chg, err := s.store.Begin(c.Request().Context())
	if err != nil {
		return err
	}
	defer chg.End()
	if err := s.store.SetRetention(chg.Ctx(), p); err != nil {
		return err
	}
	if err := chg.Commit(s.auditEntry(c, "settings.retention", "settings", "retention", fmt.Sprintf("%+v → %+v", old, p))); err != nil {
		return err
	}
	s.flash(c, "Retention saved. It applies at the next daily run, or now if you run it.")
	return seeOther(c, "/compliance/retention")
}

func (s *compliancePages) runRetention(c echo.Context) error {
	u := currentUser(c)
	rep, err := enforceRetention(c.Request().Context(), s.store, s.log, time.Now(), u.Email, &u.ID, c.RealIP())
	if err != nil {
		return err
	}
	s.flash(c, "Retention ran: "+rep.String()+".")
	return seeOther(c, "/compliance/retention")
}

func (s *compliancePages) saveComplianceAccess(c echo.Context) error {
	v := c.FormValue("marketers")
	if v != "none" && v != models.ComplianceMarketersRead {
		return unprocessable("Choose whether marketers have no access or may read.", map[string]string{"marketers": "Choose none or read."})
	}
	chg, err := s.store.Begin(c.Request().Context())
	if err != nil {
		return err
	}
	defer chg.End()
	if err := s.store.SetSetting(chg.Ctx(), models.SettingComplianceMarketers, v); err != nil {
		return err
	}
	if err := chg.Commit(s.auditEntry(c, "settings.compliance_access", "settings", models.SettingComplianceMarketers, "marketers: "+v)); err != nil {
		return err
	}
	s.flash(c, "Access to the compliance centre saved.")
	return seeOther(c, "/compliance/retention")
}

func auditFilter(c echo.Context) (views.AuditFilter, models.AuditQuery, url.Values, map[string]string) {
	f := views.AuditFilter{Actor: strings.TrimSpace(c.QueryParam("actor")), Action: strings.TrimSpace(c.QueryParam("action")),
		Object: c.QueryParam("object"), From: c.QueryParam("from"), To: c.QueryParam("to")}
	errs := map[string]string{}
	q := models.AuditQuery{Actor: f.Actor, ActionPrefix: f.Action, ObjectType: f.Object}
	q.From, q.To = dateRange(f.From, f.To, errs)
	return f, q, queryOf("actor", f.Actor, "action", f.Action, "object", f.Object, "from", f.From, "to", f.To), errs
}

func (s *compliancePages) auditPage(c echo.Context) error {
	ctx := c.Request().Context()
	f, q, v, errs := auditFilter(c)
	d := views.AuditView{Filter: f, Errors: errs, ExportQuery: v.Encode()}
	types, err := s.store.AuditObjectTypes(ctx)
	if err != nil {
		return err
	}
	d.Types = types
	status := http.StatusOK
	if len(errs) > 0 {
		status = http.StatusUnprocessableEntity
	} else {
		q.Before = int64Query(c, "before")
		rows, next, err := s.store.AuditPage(ctx, q)
		if err != nil {
			return err
		}
		d.Rows = rows
		d.FirstHref, d.NextHref = pageLinks("/compliance/audit", "before", v, q.Before, next)
	}
	return s.render(c, status, views.AuditPage(s.page(c, "Audit log", "compliance"), d))
}

func (s *compliancePages) exportAudit(c echo.Context) error {
	_, q, v, errs := auditFilter(c)
	for _, msg := range errs {
		return badRequest(msg)
	}
	// The entry is written before the data leaves: an export that
	// cannot be recorded is not served.
	if err := s.audit(c, "audit.export", "audit_log", "csv", v.Encode()); err != nil {
		return err
	}
	download(c, "text/csv; charset=utf-8", "audit-log.csv")
	cw := csv.NewWriter(c.Response())
	if err := cw.Write([]string{"id", "created_at", "actor", "action", "object_type", "object_id", "summary", "ip"}); err != nil {
		return err
	}
	safe := models.CSVSafe
	err := s.store.EachAudit(c.Request().Context(), q, func(e *models.AuditEntry) error {
		return cw.Write([]string{itoa(e.ID), e.CreatedAt.UTC().Format(time.RFC3339), safe(e.Actor), safe(e.Action),
			safe(e.ObjectType), safe(e.ObjectID), safe(e.Summary), safe(e.IP)})
	})
	cw.Flush()
	if err == nil {
		err = cw.Error()
	}
	return s.streamFailed(c, "audit-log.csv", err)
}
