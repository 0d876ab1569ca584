package web

import (
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/herald-mail/herald/models"
	"github.com/herald-mail/herald/views"
)

// --- sending domains ---

type apiDomainStatus struct {
	ID         int64      `json:"id"`
	Domain     string     `json:"domain"`
	Checked    bool       `json:"checked"`
	CheckedAt  *time.Time `json:"checked_at"`
	OK         bool       `json:"ok"`
	DKIM       bool       `json:"dkim"`
	SPF        bool       `json:"spf"`
	DMARC      bool       `json:"dmarc"`
	ReturnPath bool       `json:"return_path"`
}

func toAPIDomainStatus(st models.SendingDomainStatus) apiDomainStatus {
	return apiDomainStatus{st.ID, st.Domain, st.Checked, st.CheckedAt, st.OK, st.DKIM, st.SPF, st.DMARC, st.ReturnPath}
}

type apiDNSRecord struct {
	Type       string `json:"type"`
	Name       string `json:"name"`
	Value      string `json:"value"`
	Purpose    string `json:"purpose"`
	Incomplete bool   `json:"incomplete"`
	Note       string `json:"note"`
}

type apiDNSRecordCheck struct {
	apiDNSRecord
	State   string   `json:"state"`
	OK      bool     `json:"ok"`
	Found   []string `json:"found"`
	Problem string   `json:"problem"`
	Fix     string   `json:"fix"`
}

func toAPIDNSRecord(r models.DNSRecord) apiDNSRecord {
	return apiDNSRecord{r.Type, r.Name, r.Value, r.Purpose, r.Incomplete, r.Note}
}

type apiDomain struct {
	apiDomainStatus
	Selector         string              `json:"selector"`
	Ed25519Selector  string              `json:"ed25519_selector"`
	ReturnPathDomain string              `json:"return_path_domain"`
	SPFIncludes      string              `json:"spf_includes"`
	CreatedAt        time.Time           `json:"created_at"`
	Records          []apiDNSRecord      `json:"records"`
	Check            []apiDNSRecordCheck `json:"check"`
}

func toAPIDomain(v *views.DomainView) apiDomain {
	d := v.Domain
	out := apiDomain{apiDomainStatus: toAPIDomainStatus(v.Status), Selector: d.Selector, Ed25519Selector: d.Ed25519Selector,
		ReturnPathDomain: d.ReturnPathDomain, SPFIncludes: d.SPFIncludes, CreatedAt: d.CreatedAt,
		Records: make([]apiDNSRecord, len(v.Records)), Check: []apiDNSRecordCheck{}}
	for i, r := range v.Records {
		out.Records[i] = toAPIDNSRecord(r)
	}
	if v.Status.Check != nil {
		for _, r := range v.Status.Check.Records {
			found := r.Found
			if found == nil {
				found = []string{}
			}
			out.Check = append(out.Check, apiDNSRecordCheck{toAPIDNSRecord(r.DNSRecord), r.State, r.OK, found, r.Problem, r.Fix})
		}
	}
	return out
}

func (s *apiHandlers) sending() *sendingPages { return &sendingPages{s.app} }

func (s *apiHandlers) apiDomains(c echo.Context) error {
	ds, err := s.store.SendingDomainStatuses(c.Request().Context())
	if err != nil {
		return err
	}
	out := make([]apiDomainStatus, len(ds))
	for i, d := range ds {
		out[i] = toAPIDomainStatus(d)
	}
	return c.JSON(200, map[string]any{"data": out})
}

func (s *apiHandlers) writeAPIDomain(c echo.Context, status int, id int64) error {
	v, _, err := s.sending().domainView(c.Request().Context(), id)
	if err != nil {
		return err
	}
	return c.JSON(status, map[string]any{"data": toAPIDomain(v)})
}

func (s *apiHandlers) apiDomain(c echo.Context) error {
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	return s.writeAPIDomain(c, http.StatusOK, id)
}

func (s *apiHandlers) apiCreateDomain(c echo.Context) error {
	var in struct {
		Domain           string `json:"domain"`
		Selector         string `json:"selector"`
		Ed25519          *bool  `json:"ed25519"`
		ReturnPathDomain string `json:"return_path_domain"`
		SPFIncludes      string `json:"spf_includes"`
	}
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	f := models.SendingDomainForm{Domain: in.Domain, SendingDomainOptions: models.SendingDomainOptions{
		Selector: in.Selector, Ed25519: in.Ed25519 == nil || *in.Ed25519,
		ReturnPathDomain: in.ReturnPathDomain, SPFIncludes: in.SPFIncludes}}
	d, errs, err := s.createSendingDomain(c, f)
	if len(errs) > 0 {
		return unprocessable("The sending domain is not valid.", errs)
	}
	if err != nil {
		return err
	}
	return s.writeAPIDomain(c, http.StatusCreated, d.ID)
}

// apiCheckDomain runs the DNS check now and answers the domain with its
// result.
func (s *apiHandlers) apiCheckDomain(c echo.Context) error {
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	v, _, err := s.sending().runDNSCheck(c, id)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"data": toAPIDomain(v)})
}

// --- domain rules ---

// ruleInput is a rule as the API takes it; zero limits mean unlimited.
type ruleInput struct {
	Name              string  `json:"name"`
	Domains           string  `json:"domains"`
	MXSuffixes        string  `json:"mx_suffixes"`
	PerSecond         float64 `json:"per_second"`
	PerMinute         int     `json:"per_minute"`
	PerHour           int     `json:"per_hour"`
	MaxConnections    int     `json:"max_connections"`
	MaxPerConnection  int     `json:"max_per_connection"`
	BackoffMinSeconds int     `json:"backoff_min_seconds"`
	BackoffMaxSeconds int     `json:"backoff_max_seconds"`
	Position          int     `json:"position"`
	RequireTLS        bool    `json:"require_tls"`
}

// apiRule is a rule as the API shows it: what it takes, and more.
type apiRule struct {
	ID int64 `json:"id"`
	ruleInput
	IsDefault bool      `json:"is_default"`
	UpdatedAt time.Time `json:"updated_at"`
}

func toAPIRule(r *models.DomainRule) apiRule {
	return apiRule{r.ID, ruleInput{r.Name, r.Domains, r.MXSuffixes, r.PerSecond, r.PerMinute, r.PerHour, r.MaxConnections,
		r.MaxPerConnection, r.BackoffMinSeconds, r.BackoffMaxSeconds, r.Position, r.RequireTLS}, r.IsDefault, r.UpdatedAt}
}

func (in ruleInput) rule(r *models.DomainRule) {
	r.Name, r.Domains, r.MXSuffixes, r.PerSecond, r.PerMinute, r.PerHour = in.Name, in.Domains, in.MXSuffixes, in.PerSecond, in.PerMinute, in.PerHour
	r.MaxConnections, r.MaxPerConnection, r.BackoffMinSeconds, r.BackoffMaxSeconds = in.MaxConnections, in.MaxPerConnection, in.BackoffMinSeconds, in.BackoffMaxSeconds
	r.Position, r.RequireTLS = in.Position, in.RequireTLS
}

func (s *apiHandlers) apiRules(c echo.Context) error {
	rules, err := s.store.DomainRules(c.Request().Context())
	if err != nil {
		return err
	}
	out := make([]apiRule, len(rules))
	for i := range rules {
		out[i] = toAPIRule(&rules[i])
	}
	return c.JSON(200, map[string]any{"data": out})
}

func (s *apiHandlers) apiRule(c echo.Context) error {
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	r, err := s.store.DomainRule(c.Request().Context(), id)
	if err != nil {
		return err
	}
	return c.JSON(200, map[string]any{"data": toAPIRule(r)})
}

// apiSaveRule creates a rule (POST) or replaces one (PUT /{id}).
func (s *apiHandlers) apiSaveRule(c echo.Context) error {
	var before *models.DomainRule
	var r models.DomainRule
	status := http.StatusCreated
	if c.Param("id") != "" {
		id, err := idParam(c, "id")
		if err != nil {
			return err
		}
		if before, err = s.store.DomainRule(c.Request().Context(), id); err != nil {
			return err
		}
		r.ID, r.IsDefault, status = id, before.IsDefault, http.StatusOK
	}
	var in ruleInput
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	in.rule(&r)
	if errs := r.Validate(); len(errs) > 0 {
		return unprocessable("The rule is not valid.", errs)
	}
	errs, err := s.sending().saveRule(c, &r, before)
	if len(errs) > 0 {
		return unprocessable(errs["name"], errs)
	}
	if err != nil {
		return err
	}
	saved, err := s.store.DomainRule(c.Request().Context(), r.ID)
	if err != nil {
		return err
	}
	return c.JSON(status, map[string]any{"data": toAPIRule(saved)})
}

func (s *apiHandlers) apiDeleteRule(c echo.Context) error {
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	if _, err := s.sending().deleteRuleOf(c, id); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}
