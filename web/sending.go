package web

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/herald-mail/herald/mailer"
	"github.com/herald-mail/herald/models"
	"github.com/herald-mail/herald/views"
)

// sendingPages serves sending domains, domain rules and IP pools.
type sendingPages struct{ *app }

const (
	domainsPath = "/deliverability/domains"
	rulesPath   = "/deliverability/rules"
)

// --- sending domains ---

func (s *sendingPages) domainsPage(c echo.Context) error {
	ds, err := s.store.SendingDomainStatuses(c.Request().Context())
	if err != nil {
		return err
	}
	return s.render(c, 200, views.DomainsPage(s.page(c, "Sending domains", "deliverability"), ds))
}

func (s *sendingPages) newDomainPage(c echo.Context) error {
	f := models.SendingDomainForm{SendingDomainOptions: models.SendingDomainOptions{Ed25519: true}}
	return s.render(c, 200, views.DomainForm(s.page(c, "Add a sending domain", "deliverability"), f, nil))
}

func (s *sendingPages) createDomain(c echo.Context) error {
	f := models.SendingDomainForm{Domain: c.FormValue("domain"), SendingDomainOptions: models.SendingDomainOptions{
		Selector: c.FormValue("selector"), Ed25519: c.FormValue("ed25519") != "",
		ReturnPathDomain: c.FormValue("return_path_domain"), SPFIncludes: c.FormValue("spf_includes"),
	}}
	typed := f
	d, errs, err := s.createSendingDomain(c, f)
	if len(errs) > 0 {
		return s.render(c, http.StatusUnprocessableEntity, views.DomainForm(s.page(c, "Add a sending domain", "deliverability"), typed, errs))
	}
	if err != nil {
		return err
	}
	keys := d.KeyNames()
	s.flash(c, fmt.Sprintf("%s added with a new %s DKIM key. Publish the records below, then check the DNS.", d.Domain, keys))
	return seeOther(c, fmt.Sprintf("%s/%d", domainsPath, d.ID))
}

// createSendingDomain adds a sending domain with new DKIM keys and its
// audit entry, for the dashboard and the API; errs says what is wrong
// with the input by field.
func (s *app) createSendingDomain(c echo.Context, f models.SendingDomainForm) (d *models.SendingDomain, errs map[string]string, err error) {
	if errs := f.Validate(); len(errs) > 0 {
		return nil, errs, nil
	}
	chg, err := s.store.Begin(c.Request().Context())
	if err != nil {
		return nil, nil, err
	}
	defer chg.End()
	d, err = s.store.CreateSendingDomain(chg.Ctx(), f.Domain, s.cfg.Secret, f.SendingDomainOptions)
	if errors.Is(err, models.ErrConflict) {
		return nil, map[string]string{"domain": f.Domain + " is already a sending domain; open it from the list."}, nil
	}
	if err != nil {
		return nil, nil, err
	}
	return d, nil, chg.Commit(s.auditEntry(c, "sending_domain.create", "sending_domain", itoa(d.ID),
		fmt.Sprintf("%s (selector %s, %s, return path %s)", d.Domain, d.Selector, d.KeyNames(), d.ReturnPathDomain)))
}

// domainView loads a domain and what its page shows, and the options its
// records were made with.
func (s *sendingPages) domainView(ctx context.Context, id int64) (*views.DomainView, models.DNSRecordOptions, error) {
	d, err := s.store.SendingDomain(ctx, id)
	if err != nil {
		return nil, models.DNSRecordOptions{}, err
	}
	opts, err := s.dnsOptions(ctx)
	if err != nil {
		return nil, opts, err
	}
	if s.delivery().Transport == "relay" && opts.SourcesUnknown != "" && d.SPFIncludes != "" {
		opts.SourcesUnknown = "" // the domain names its relay's include itself
	}
	if c := d.LastCheck(); c != nil {
		opts.OrgDMARC = c.OrgDMARC // the advice for a subdomain never asks for less than its organisation
	}
	return &views.DomainView{Domain: d, Status: d.Status(), Records: d.DNSRecords(opts), SendingIPs: len(opts.SendingIPs)}, opts, nil
}

// dnsOptions describes where Herald's mail leaves from and where bounces
// arrive, for the records every sending domain must publish.
func (s *sendingPages) dnsOptions(ctx context.Context) (models.DNSRecordOptions, error) {
	ips, err := s.store.SPFAddresses(ctx)
	if err != nil {
		return models.DNSRecordOptions{}, err
	}
	o := models.DNSRecordOptions{SendingIPs: ips}
	switch dc := s.delivery(); dc.Transport {
	case "relay":
		// Every relay sends for the domain (failover ones too).
		for _, r := range dc.RelayURLs() {
			u, err := url.Parse(r)
			if err != nil {
				continue
			}
			if inc := mailer.RelaySPFInclude(u.Hostname()); inc != "" {
				if !slices.Contains(o.SPFIncludes, inc) {
					o.SPFIncludes = append(o.SPFIncludes, inc)
				}
			} else if o.SourcesUnknown == "" {
				o.SourcesUnknown = "Herald does not know the servers of the relay " + u.Hostname() + ": add the SPF include your relay provider documents to this domain (or its addresses to the record)."
				o.SourceHost = u.Hostname()
			}
		}
	case "direct":
		if len(ips) == 0 {
			o.SourcesUnknown = "Direct delivery leaves from this machine's default address, which Herald does not know: add the machine's public addresses under Rules & IPs, so that the record names them and Check DNS can confirm they pass."
			o.SourceHost = s.cfg.Hostname
		}
	default:
		o.SourceHost = s.cfg.Hostname
	}
	// Bounces come back to Herald's inbound server, on the host the
	// dashboard is published under.
	if u, err := url.Parse(s.cfg.RootURL); err == nil {
		if h := u.Hostname(); strings.Contains(h, ".") && net.ParseIP(h) == nil {
			o.InboundHost = h
		}
	}
	return o, nil
}

func (s *sendingPages) domainPage(c echo.Context) error {
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	v, _, err := s.domainView(c.Request().Context(), id)
	if err != nil {
		return err
	}
	return s.render(c, 200, views.DomainPage(s.page(c, v.Domain.Domain, "deliverability"), *v))
}

// overrideDNS stores an admin's override of the DNS rule for a campaign,
// with its audit entry; it returns the domain it holds for.
func (s *app) overrideDNS(c echo.Context, cp *models.Campaign, reason string) (string, error) {
	domain := mailer.DNSGateDomain(c.Request().Context(), s.store, cp)
	if r := []rune(strings.TrimSpace(reason)); len(r) > 500 {
		reason = string(r[:500])
	}
	reason = strings.TrimSpace(reason)
	e := models.AuditEntry{Action: "campaign.dns_override", ObjectType: "campaign", ObjectID: itoa(cp.ID), IP: c.RealIP(),
		Summary: cp.Name + ": start allowed although the DNS check of " + domain + " fails or never ran — " + reason}
	o := models.CampaignDNSOverride{CampaignID: cp.ID, Domain: domain, Reason: reason}
	if u := currentUser(c); u != nil {
		e.UserID, e.Actor = &u.ID, u.Email
		o.UserID, o.UserEmail = &u.ID, u.Email
	}
	return domain, s.store.OverrideCampaignDNS(c.Request().Context(), o, e)
}

// checkDomain runs the DNS check, stores it and shows each record's state:
// the records panel for htmx, the domain page otherwise.
func (s *sendingPages) checkDomain(c echo.Context) error {
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	v, summary, err := s.runDNSCheck(c, id)
	if err != nil {
		return err
	}
	if isHTMX(c) {
		return s.render(c, 200, views.DomainRecords(s.page(c, v.Domain.Domain, "deliverability"), *v))
	}
	s.flash(c, "DNS checked: "+summary+".")
	return seeOther(c, fmt.Sprintf("%s/%d", domainsPath, id))
}

// runDNSCheck checks a domain's DNS, stores the result with its audit
// entry and returns the domain as it stands after, and a summary; for the
// dashboard and the API.
func (s *sendingPages) runDNSCheck(c echo.Context, id int64) (*views.DomainView, string, error) {
	ctx := c.Request().Context()
	v, opts, err := s.domainView(ctx, id)
	if err != nil {
		return nil, "", err
	}
	cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	// A fresh resolver each time: a record published a minute ago must
	// not hide behind a cached "missing".
	chk := mailer.CheckDomain(cctx, mailer.NewResolver(s.cfg.DNSServer), v.Domain, opts)
	chg, err := s.store.Begin(ctx)
	if err != nil {
		return nil, "", err
	}
	defer chg.End()
	if err := s.store.SaveDNSCheck(chg.Ctx(), id, chk.OK, chk.JSON()); err != nil {
		return nil, "", err
	}
	bad := 0
	for _, r := range chk.Records {
		if !r.OK {
			bad++
		}
	}
	summary := v.Domain.Domain + ": all records right"
	if bad > 0 {
		summary = fmt.Sprintf("%s: %d of %d records missing or wrong", v.Domain.Domain, bad, len(chk.Records))
	}
	if err := chg.Commit(s.auditEntry(c, "sending_domain.check", "sending_domain", itoa(id), summary)); err != nil {
		return nil, "", err
	}
	v, _, err = s.domainView(ctx, id)
	return v, summary, err
}

func (s *sendingPages) rotateDomainPage(c echo.Context) error {
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	d, err := s.store.SendingDomain(c.Request().Context(), id)
	if err != nil {
		return err
	}
	return s.render(c, 200, views.RotateKeyPage(s.page(c, "Rotate DKIM key", "deliverability"), d, "", nil))
}

func (s *sendingPages) rotateDomain(c echo.Context) error {
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	before, err := s.store.SendingDomain(ctx, id)
	if err != nil {
		return err
	}
	selector := c.FormValue("selector")
	chg, err := s.store.Begin(c.Request().Context())
	if err != nil {
		return err
	}
	defer chg.End()
	d, err := s.store.RotateDKIMKey(chg.Ctx(), id, s.cfg.Secret, selector)
	var ve *models.ValidationError
	if errors.As(err, &ve) {
		return s.render(c, http.StatusUnprocessableEntity, views.RotateKeyPage(s.page(c, "Rotate DKIM key", "deliverability"), before, selector, ve.Fields))
	}
	if errors.Is(err, models.ErrConflict) {
		return conflict("The key was changed or the domain deleted while you were on this page. Reload it and try again.")
	}
	if err != nil {
		return err
	}
	if err := chg.Commit(s.auditEntry(c, "sending_domain.rotate", "sending_domain", itoa(id), fmt.Sprintf("%s: selector %s → %s", d.Domain, before.Selector, d.Selector))); err != nil {
		return err
	}
	s.flash(c, fmt.Sprintf("New DKIM key under selector %s. Publish its record, check the DNS, and keep the old %s record for a week while mail signed with it is delivered.", d.Selector, before.Selector))
	return seeOther(c, fmt.Sprintf("%s/%d", domainsPath, id))
}

func (s *sendingPages) deleteDomainPage(c echo.Context) error {
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	d, err := s.store.SendingDomain(ctx, id)
	if err != nil {
		return err
	}
	n, err := s.store.CampaignsUsingSendingDomain(ctx, id)
	if err != nil {
		return err
	}
	msg := "Its DKIM keys are destroyed; mail from " + d.Domain + " goes out unsigned, which most mailbox providers treat as suspicious. This cannot be undone."
	if n > 0 {
		msg = fmt.Sprintf("%d unfinished campaign(s) sign with this domain and would lose their DKIM signature. ", n) + msg
	}
	return s.render(c, 200, views.ConfirmDelete(s.page(c, "Delete sending domain", "deliverability"), "the sending domain "+d.Domain, msg,
		fmt.Sprintf("%s/%d/delete", domainsPath, id), fmt.Sprintf("%s/%d", domainsPath, id)))
}

func (s *sendingPages) deleteDomain(c echo.Context) error {
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	d, err := s.store.SendingDomain(ctx, id)
	if err != nil {
		return err
	}
	chg, err := s.store.Begin(c.Request().Context())
	if err != nil {
		return err
	}
	defer chg.End()
	if err := s.store.DeleteSendingDomain(chg.Ctx(), id); err != nil {
		return err
	}
	if err := chg.Commit(s.auditEntry(c, "sending_domain.delete", "sending_domain", itoa(id), d.Domain+" (selector "+d.Selector+")")); err != nil {
		return err
	}
	s.flash(c, d.Domain+" deleted. Remove its DKIM records from your DNS.")
	return seeOther(c, domainsPath)
}

// --- domain rules ---

func (s *sendingPages) rulesPage(c echo.Context) error {
	ctx := c.Request().Context()
	rules, err := s.store.DomainRules(ctx)
	if err != nil {
		return err
	}
	pools, err := s.store.IPPools(ctx)
	if err != nil {
		return err
	}
	ips, err := s.store.AllSendingIPs(ctx)
	if err != nil {
		return err
	}
	count := map[int64]int{}
	for _, ip := range ips {
		count[ip.PoolID]++
	}
	return s.render(c, 200, views.RulesPage(s.page(c, "Rules & IPs", "deliverability"), rules, pools, count))
}

func ruleForm(c echo.Context) models.DomainRuleForm {
	return models.DomainRuleForm{
		Name: c.FormValue("name"), Domains: c.FormValue("domains"), MXSuffixes: c.FormValue("mx_suffixes"),
		PerSecond: c.FormValue("per_second"), PerMinute: c.FormValue("per_minute"), PerHour: c.FormValue("per_hour"),
		MaxConnections: c.FormValue("max_connections"), MaxPerConnection: c.FormValue("max_per_connection"),
		BackoffMinSeconds: c.FormValue("backoff_min_seconds"), BackoffMaxSeconds: c.FormValue("backoff_max_seconds"),
		Position: c.FormValue("position"), RequireTLS: c.FormValue("require_tls") != "",
	}
}

func (s *sendingPages) newRulePage(c echo.Context) error {
	f := models.DomainRuleForm{PerSecond: "5", PerMinute: "200", PerHour: "5000", MaxConnections: "3", MaxPerConnection: "100",
		BackoffMinSeconds: "300", BackoffMaxSeconds: "3600", Position: "100"}
	return s.render(c, 200, views.RuleForm(s.page(c, "New domain rule", "deliverability"), views.RuleFormView{Form: f}))
}

func (s *sendingPages) createRule(c echo.Context) error {
	f := ruleForm(c)
	var r models.DomainRule
	v := views.RuleFormView{Form: f}
	if v.Errors = f.Rule(&r); len(v.Errors) > 0 {
		return s.render(c, http.StatusUnprocessableEntity, views.RuleForm(s.page(c, "New domain rule", "deliverability"), v))
	}
	var err error
	if v.Errors, err = s.saveRule(c, &r, nil); len(v.Errors) > 0 {
		return s.render(c, http.StatusUnprocessableEntity, views.RuleForm(s.page(c, "New domain rule", "deliverability"), v))
	}
	if err != nil {
		return err
	}
	s.flash(c, "Rule “"+r.Name+"” added. This server applies it now, other nodes within 30 seconds.")
	return seeOther(c, rulesPath)
}

// saveRule creates r, or updates it when before (the rule as it was) is
// not nil, with its audit entry, and has this server apply the rules; for
// the dashboard and the API. errs names a clash of names.
func (s *sendingPages) saveRule(c echo.Context, r, before *models.DomainRule) (errs map[string]string, err error) {
	chg, err := s.store.Begin(c.Request().Context())
	if err != nil {
		return nil, err
	}
	defer chg.End()
	entry := s.auditEntry(c, "domain_rule.create", "domain_rule", "", ruleSummary(r))
	if before == nil {
		err = s.store.CreateDomainRule(chg.Ctx(), r)
	} else {
		err = s.store.UpdateDomainRule(chg.Ctx(), r)
		entry.Action, entry.Summary = "domain_rule.update", ruleSummary(before)+" → "+ruleSummary(r)
	}
	if errors.Is(err, models.ErrConflict) && before == nil {
		return map[string]string{"name": "A rule named " + r.Name + " exists; choose another name or edit that rule."}, nil
	}
	if errors.Is(err, models.ErrConflict) {
		return map[string]string{"name": "Another rule is named " + r.Name + "; choose another name."}, nil
	}
	if err != nil {
		return nil, err
	}
	entry.ObjectID = itoa(r.ID)
	if err := chg.Commit(entry); err != nil {
		return nil, err
	}
	s.applyRules(c)
	return nil, nil
}

// deleteRuleOf deletes a rule other than the default with its audit
// entry, and has this server apply the rules; for the dashboard and the
// API. It returns the rule as it was.
func (s *sendingPages) deleteRuleOf(c echo.Context, id int64) (*models.DomainRule, error) {
	r, err := s.store.DomainRule(c.Request().Context(), id)
	if err != nil {
		return nil, err
	}
	if r.IsDefault {
		return nil, conflict("The default rule cannot be deleted; edit its limits instead.")
	}
	chg, err := s.store.Begin(c.Request().Context())
	if err != nil {
		return nil, err
	}
	defer chg.End()
	if err := s.store.DeleteDomainRule(chg.Ctx(), id); err != nil {
		return nil, err
	}
	if err := chg.Commit(s.auditEntry(c, "domain_rule.delete", "domain_rule", itoa(id), ruleSummary(r))); err != nil {
		return nil, err
	}
	s.applyRules(c)
	return r, nil
}

func ruleSummary(r *models.DomainRule) string {
	match := strings.TrimSpace(r.Domains + " " + r.MXSuffixes)
	if r.IsDefault {
		match = "default"
	}
	tls := ""
	if r.RequireTLS {
		tls = ", TLS with a valid certificate required"
	}
	return fmt.Sprintf("%s [%s]: %g/s %d/min %d/h, %d conns, %d per conn, backoff %d–%ds, order %d%s", r.Name, match,
		r.PerSecond, r.PerMinute, r.PerHour, r.MaxConnections, r.MaxPerConnection, r.BackoffMinSeconds, r.BackoffMaxSeconds, r.Position, tls)
}

func (s *sendingPages) editRulePage(c echo.Context) error {
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	r, err := s.store.DomainRule(c.Request().Context(), id)
	if err != nil {
		return err
	}
	return s.render(c, 200, views.RuleForm(s.page(c, "Edit domain rule", "deliverability"), views.RuleFormView{ID: id, Default: r.IsDefault, Form: r.Form()}))
}

func (s *sendingPages) updateRule(c echo.Context) error {
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	before, err := s.store.DomainRule(ctx, id)
	if err != nil {
		return err
	}
	f := ruleForm(c)
	r := models.DomainRule{ID: id, IsDefault: before.IsDefault}
	v := views.RuleFormView{ID: id, Default: before.IsDefault, Form: f}
	if v.Errors = f.Rule(&r); len(v.Errors) > 0 {
		return s.render(c, http.StatusUnprocessableEntity, views.RuleForm(s.page(c, "Edit domain rule", "deliverability"), v))
	}
	if v.Errors, err = s.saveRule(c, &r, before); len(v.Errors) > 0 {
		return s.render(c, http.StatusUnprocessableEntity, views.RuleForm(s.page(c, "Edit domain rule", "deliverability"), v))
	}
	if err != nil {
		return err
	}
	s.flash(c, "Rule “"+r.Name+"” saved. This server applies it now, other nodes within 30 seconds.")
	return seeOther(c, rulesPath)
}

func (s *sendingPages) deleteRulePage(c echo.Context) error {
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	r, err := s.store.DomainRule(c.Request().Context(), id)
	if err != nil {
		return err
	}
	if r.IsDefault {
		return conflict("The default rule covers every destination no other rule matches, so it cannot be deleted; edit its limits instead.")
	}
	return s.render(c, 200, views.ConfirmDelete(s.page(c, "Delete domain rule", "deliverability"), "the rule “"+r.Name+"”",
		"Mail to "+strings.TrimSpace(r.Domains+" "+r.MXSuffixes)+" falls under the default rule's limits afterwards.",
		fmt.Sprintf("%s/%d/delete", rulesPath, id), rulesPath))
}

func (s *sendingPages) deleteRule(c echo.Context) error {
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	r, err := s.deleteRuleOf(c, id)
	if err != nil {
		return err
	}
	s.flash(c, "Rule “"+r.Name+"” deleted.")
	return seeOther(c, rulesPath)
}

func (s *sendingPages) resetRulesPage(c echo.Context) error {
	return s.render(c, 200, views.ConfirmReset(s.page(c, "Reset domain rules", "deliverability")))
}

func (s *sendingPages) resetRules(c echo.Context) error {
	ctx := c.Request().Context()
	before, err := s.store.DomainRules(ctx)
	if err != nil {
		return err
	}
	chg, err := s.store.Begin(c.Request().Context())
	if err != nil {
		return err
	}
	defer chg.End()
	if err := s.store.ResetDomainRules(chg.Ctx()); err != nil {
		return err
	}
	names := make([]string, len(before))
	for i := range before {
		names[i] = before[i].Name
	}
	if err := chg.Commit(s.auditEntry(c, "domain_rule.reset", "domain_rule", "", "replaced "+strings.Join(names, ", ")+" with the defaults")); err != nil {
		return err
	}
	s.applyRules(c)
	s.flash(c, "Domain rules reset to the defaults. This server applies them now, other nodes within 30 seconds.")
	return seeOther(c, rulesPath)
}

// --- IP pools and addresses ---

func (s *sendingPages) newPoolPage(c echo.Context) error {
	return s.render(c, 200, views.PoolForm(s.page(c, "New IP pool", "deliverability"), models.IPPool{Strategy: models.PoolRoundRobin}, nil))
}

func poolFromForm(c echo.Context) models.IPPool {
	return models.IPPool{Name: c.FormValue("name"), Strategy: c.FormValue("strategy")}
}

func (s *sendingPages) createPool(c echo.Context) error {
	p := poolFromForm(c)
	if errs := p.Validate(); len(errs) > 0 {
		return s.render(c, http.StatusUnprocessableEntity, views.PoolForm(s.page(c, "New IP pool", "deliverability"), p, errs))
	}
	chg, err := s.store.Begin(c.Request().Context())
	if err != nil {
		return err
	}
	defer chg.End()
	err = s.store.CreateIPPool(chg.Ctx(), &p)
	if errors.Is(err, models.ErrConflict) {
		return s.render(c, http.StatusUnprocessableEntity, views.PoolForm(s.page(c, "New IP pool", "deliverability"), p,
			map[string]string{"name": "A pool named " + p.Name + " exists; choose another name."}))
	}
	if err != nil {
		return err
	}
	if err := chg.Commit(s.auditEntry(c, "ip_pool.create", "ip_pool", itoa(p.ID), p.Name+" ("+p.Strategy+")")); err != nil {
		return err
	}
	s.flash(c, "Pool “"+p.Name+"” created. Add its sending addresses.")
	return seeOther(c, fmt.Sprintf("/deliverability/pools/%d", p.ID))
}

func (s *sendingPages) poolPage(c echo.Context) error {
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	p, err := s.store.IPPool(ctx, id)
	if err != nil {
		return err
	}
	all, err := s.store.AllSendingIPs(ctx)
	if err != nil {
		return err
	}
	now := time.Now()
	today := now.UTC().Truncate(24 * time.Hour)
	var rows []views.IPRow
	for _, ip := range all {
		if ip.PoolID != id {
			continue
		}
		row := views.IPRow{IP: ip}
		row.Cap, row.WarmupDay, row.Capped = mailer.WarmupCap(mailer.DefaultWarmup, ip.WarmupStart, now)
		if row.SentToday, err = s.store.SentFromIPSince(ctx, ip.Address, today); err != nil {
			return err
		}
		rows = append(rows, row)
	}
	return s.render(c, 200, views.PoolPage(s.page(c, "IP pool "+p.Name, "deliverability"), p, rows))
}

func (s *sendingPages) editPoolPage(c echo.Context) error {
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	p, err := s.store.IPPool(c.Request().Context(), id)
	if err != nil {
		return err
	}
	return s.render(c, 200, views.PoolForm(s.page(c, "Edit IP pool", "deliverability"), *p, nil))
}

func (s *sendingPages) updatePool(c echo.Context) error {
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	before, err := s.store.IPPool(ctx, id)
	if err != nil {
		return err
	}
	p := poolFromForm(c)
	p.ID = id
	if errs := p.Validate(); len(errs) > 0 {
		return s.render(c, http.StatusUnprocessableEntity, views.PoolForm(s.page(c, "Edit IP pool", "deliverability"), p, errs))
	}
	chg, err := s.store.Begin(c.Request().Context())
	if err != nil {
		return err
	}
	defer chg.End()
	err = s.store.UpdateIPPool(chg.Ctx(), &p)
	if errors.Is(err, models.ErrConflict) {
		return s.render(c, http.StatusUnprocessableEntity, views.PoolForm(s.page(c, "Edit IP pool", "deliverability"), p,
			map[string]string{"name": "A pool named " + p.Name + " exists; choose another name."}))
	}
	if err != nil {
		return err
	}
	if err := chg.Commit(s.auditEntry(c, "ip_pool.update", "ip_pool", itoa(id), before.Name+" ("+before.Strategy+") → "+p.Name+" ("+p.Strategy+")")); err != nil {
		return err
	}
	s.flash(c, "Pool saved.")
	return seeOther(c, fmt.Sprintf("/deliverability/pools/%d", id))
}

func (s *sendingPages) deletePoolPage(c echo.Context) error {
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	p, err := s.store.IPPool(ctx, id)
	if err != nil {
		return err
	}
	n, err := s.store.CampaignsUsingIPPool(ctx, id)
	if err != nil {
		return err
	}
	msg := "Its addresses are removed from Herald (not from the machine)."
	if n > 0 {
		msg = fmt.Sprintf("%d unfinished campaign(s) send from this pool; they will send from the machine's default address instead. ", n) + msg
	}
	return s.render(c, 200, views.ConfirmDelete(s.page(c, "Delete IP pool", "deliverability"), "the IP pool “"+p.Name+"”", msg,
		fmt.Sprintf("/deliverability/pools/%d/delete", id), fmt.Sprintf("/deliverability/pools/%d", id)))
}

func (s *sendingPages) deletePool(c echo.Context) error {
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	p, err := s.store.IPPool(ctx, id)
	if err != nil {
		return err
	}
	if err := s.store.DeleteIPPool(s.audited(c, "ip_pool.delete", "ip_pool", p.Name, &id), id); err != nil {
		return err
	}
	s.flash(c, "Pool “"+p.Name+"” deleted.")
	return seeOther(c, rulesPath)
}

// poolIP loads the pool of the path and, when the path names one, its
// address (an address of another pool is not found).
func (s *sendingPages) poolIP(c echo.Context, withIP bool) (*models.IPPool, *models.SendingIP, error) {
	id, err := idParam(c, "id")
	if err != nil {
		return nil, nil, err
	}
	ctx := c.Request().Context()
	p, err := s.store.IPPool(ctx, id)
	if err != nil || !withIP {
		return p, nil, err
	}
	ipID, err := idParam(c, "ip")
	if err != nil {
		return nil, nil, err
	}
	ip, err := s.store.SendingIP(ctx, ipID)
	if err != nil {
		return nil, nil, err
	}
	if ip.PoolID != p.ID {
		return nil, nil, models.ErrNotFound
	}
	return p, ip, nil
}

func ipForm(c echo.Context) models.SendingIPForm {
	return models.SendingIPForm{Address: c.FormValue("address"), HELO: c.FormValue("helo"), Weight: c.FormValue("weight"),
		PerSecond: c.FormValue("per_second"), WarmupStart: c.FormValue("warmup_start"), Active: c.FormValue("active") != ""}
}

func ipSummary(ip *models.SendingIP) string {
	warm := "warm"
	if ip.WarmupStart != nil {
		warm = "warm-up from " + ip.WarmupStart.Format("2006-01-02")
	}
	return fmt.Sprintf("%s helo=%s weight=%d rate=%g/s %s active=%t", ip.Address, ip.HELO, ip.Weight, ip.PerSecond, warm, ip.Active)
}

func (s *sendingPages) newIPPage(c echo.Context) error {
	p, _, err := s.poolIP(c, false)
	if err != nil {
		return err
	}
	f := models.SendingIPForm{Weight: "1", PerSecond: "0", WarmupStart: time.Now().UTC().Format("2006-01-02"), Active: true}
	return s.render(c, 200, views.IPForm(s.page(c, "Add a sending address", "deliverability"), views.IPFormView{Pool: p, Form: f}))
}

func (s *sendingPages) createIP(c echo.Context) error {
	p, _, err := s.poolIP(c, false)
	if err != nil {
		return err
	}
	v := views.IPFormView{Pool: p, Form: ipForm(c)}
	ip := models.SendingIP{PoolID: p.ID}
	if v.Errors = v.Form.SendingIP(&ip); len(v.Errors) == 0 {
		v.Errors = onThisMachine(ip.Address)
	}
	if len(v.Errors) > 0 {
		return s.render(c, http.StatusUnprocessableEntity, views.IPForm(s.page(c, "Add a sending address", "deliverability"), v))
	}
	chg, err := s.store.Begin(c.Request().Context())
	if err != nil {
		return err
	}
	defer chg.End()
	err = s.store.AddSendingIP(chg.Ctx(), &ip)
	if errors.Is(err, models.ErrConflict) {
		v.Errors = map[string]string{"address": ip.Address + " is already in this pool."}
		return s.render(c, http.StatusUnprocessableEntity, views.IPForm(s.page(c, "Add a sending address", "deliverability"), v))
	}
	if err != nil {
		return err
	}
	if err := chg.Commit(s.auditEntry(c, "sending_ip.create", "sending_ip", itoa(ip.ID), "pool "+p.Name+": "+ipSummary(&ip))); err != nil {
		return err
	}
	s.flash(c, ip.Address+" added to “"+p.Name+"”. Add it to your sending domains' SPF records (their DNS pages show the new value).")
	return seeOther(c, fmt.Sprintf("/deliverability/pools/%d", p.ID))
}

func (s *sendingPages) editIPPage(c echo.Context) error {
	p, ip, err := s.poolIP(c, true)
	if err != nil {
		return err
	}
	return s.render(c, 200, views.IPForm(s.page(c, "Edit sending address", "deliverability"), views.IPFormView{Pool: p, ID: ip.ID, Form: ip.Form()}))
}

func (s *sendingPages) updateIP(c echo.Context) error {
	p, before, err := s.poolIP(c, true)
	if err != nil {
		return err
	}
	v := views.IPFormView{Pool: p, ID: before.ID, Form: ipForm(c)}
	ip := models.SendingIP{ID: before.ID, PoolID: p.ID}
	if v.Errors = v.Form.SendingIP(&ip); len(v.Errors) == 0 {
		v.Errors = onThisMachine(ip.Address)
	}
	if len(v.Errors) > 0 {
		return s.render(c, http.StatusUnprocessableEntity, views.IPForm(s.page(c, "Edit sending address", "deliverability"), v))
	}
	chg, err := s.store.Begin(c.Request().Context())
	if err != nil {
		return err
	}
	defer chg.End()
	err = s.store.UpdateSendingIP(chg.Ctx(), &ip)
	if errors.Is(err, models.ErrConflict) {
		v.Errors = map[string]string{"address": ip.Address + " is already in this pool."}
		return s.render(c, http.StatusUnprocessableEntity, views.IPForm(s.page(c, "Edit sending address", "deliverability"), v))
	}
	if err != nil {
		return err
	}
	if err := chg.Commit(s.auditEntry(c, "sending_ip.update", "sending_ip", itoa(ip.ID), ipSummary(before)+" → "+ipSummary(&ip))); err != nil {
		return err
	}
	s.flash(c, ip.Address+" saved.")
	return seeOther(c, fmt.Sprintf("/deliverability/pools/%d", p.ID))
}

func (s *sendingPages) deleteIPPage(c echo.Context) error {
	p, ip, err := s.poolIP(c, true)
	if err != nil {
		return err
	}
	return s.render(c, 200, views.ConfirmDelete(s.page(c, "Remove sending address", "deliverability"), "the address "+ip.Address+" from “"+p.Name+"”",
		"Campaigns of this pool stop sending from it. To pause it for a while instead, edit it and untick Active.",
		fmt.Sprintf("/deliverability/pools/%d/ips/%d/delete", p.ID, ip.ID), fmt.Sprintf("/deliverability/pools/%d", p.ID)))
}

func (s *sendingPages) deleteIP(c echo.Context) error {
	p, ip, err := s.poolIP(c, true)
	if err != nil {
		return err
	}
	chg, err := s.store.Begin(c.Request().Context())
	if err != nil {
		return err
	}
	defer chg.End()
	if err := s.store.DeleteSendingIP(chg.Ctx(), ip.ID); err != nil {
		return err
	}
	if err := chg.Commit(s.auditEntry(c, "sending_ip.delete", "sending_ip", itoa(ip.ID), "pool "+p.Name+": "+ip.Address)); err != nil {
		return err
	}
	s.flash(c, ip.Address+" removed from “"+p.Name+"”.")
	return seeOther(c, fmt.Sprintf("/deliverability/pools/%d", p.ID))
}

// applyRules hands changed domain rules to this node's mailer at once.
func (s *sendingPages) applyRules(c echo.Context) {
	if err := s.mailer.ReloadRules(c.Request().Context()); err != nil {
		s.log.Error("reload domain rules", "err", err)
	}
}

// onThisMachine refuses a sending address this machine cannot send from:
// direct delivery binds each connection to it, which only works for an
// address of one of its network interfaces.
func onThisMachine(addr string) map[string]string {
	l, err := net.ListenPacket("udp", net.JoinHostPort(addr, "0"))
	if err == nil {
		l.Close()
		return nil
	}
	var have []string
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && !n.IP.IsLinkLocalUnicast() {
				have = append(have, n.IP.String())
			}
		}
	}
	msg := addr + " is not an address of this machine, so Herald cannot send from it. Add it to the machine's network interface first"
	if len(have) > 0 {
		msg += ", or use one it has: " + strings.Join(have, ", ")
	}
	return map[string]string{"address": msg + "."}
}
