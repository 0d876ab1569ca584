package views

import (
	"fmt"
	"time"

	"github.com/herald-mail/herald/models"
)

// DomainView is what a sending domain's page shows: the domain, its stored
// DNS check and the records it must publish now.
type DomainView struct {
	Domain     *models.SendingDomain
	Status     models.SendingDomainStatus
	Records    []models.DNSRecord
	SendingIPs int // active sending addresses the SPF record names
}

// checkOf returns the stored check of rec, nil when the last check did not
// look at this exact record (never checked, or the value changed since).
func (v DomainView) checkOf(rec models.DNSRecord) *models.DNSRecordCheck {
	if v.Status.Check == nil {
		return nil
	}
	for i, c := range v.Status.Check.Records {
		if c.DNSRecord == rec {
			return &v.Status.Check.Records[i]
		}
	}
	return nil
}

// stale reports whether records changed since the stored check (a
// sending address added, say), so its verdict no longer covers them all.
func (v DomainView) stale() bool {
	if v.Status.Check == nil {
		return false
	}
	for _, r := range v.Records {
		if v.checkOf(r) == nil {
			return true
		}
	}
	return false
}

// alignment is the stored check's alignment of the domain's own mail.
func (v DomainView) alignment() *models.DNSAlignment {
	if v.Status.Check == nil {
		return nil
	}
	return v.Status.Check.Alignment
}

// DNSOverridable reports whether the checklist's DNS rule blocks the
// campaign, so that an admin may override it.
func DNSOverridable(checks []Check) bool {
	for _, c := range checks {
		if c.ID == "campaign.dns" && !c.OK && c.Blocking {
			return true
		}
	}
	return false
}

// RuleFormView is the domain rule form: what was typed and what is wrong.
type RuleFormView struct {
	ID      int64 // 0 for a new rule
	Default bool  // the default rule takes no domains
	Form    models.DomainRuleForm
	Errors  map[string]string
}

func (v RuleFormView) action() string {
	if v.ID == 0 {
		return "/deliverability/rules"
	}
	return fmt.Sprintf("/deliverability/rules/%d", v.ID)
}

// IPFormView is the sending address form.
type IPFormView struct {
	Pool   *models.IPPool
	ID     int64 // 0 for a new address
	Form   models.SendingIPForm
	Errors map[string]string
}

func (v IPFormView) action() string {
	if v.ID == 0 {
		return fmt.Sprintf("/deliverability/pools/%d/ips", v.Pool.ID)
	}
	return fmt.Sprintf("/deliverability/pools/%d/ips/%d", v.Pool.ID, v.ID)
}

// IPRow is a sending address with today's warm-up state.
type IPRow struct {
	IP        models.SendingIP
	SentToday int64
	Cap       int64 // today's warm-up cap, when Capped
	Capped    bool  // a warm-up cap applies today
	WarmupDay int   // days since the warm-up started
}

func stamp(t *time.Time) string {
	if t == nil {
		return "never"
	}
	return t.UTC().Format("2006-01-02 15:04") + " UTC"
}

func passMark(checked, ok bool) (string, string) {
	switch {
	case !checked:
		return "not checked", "badge"
	case ok:
		return "pass", "badge ok"
	}
	return "fail", "badge bad"
}

func stateClass(state string) string {
	switch state {
	case models.RecordOK:
		return "badge ok"
	case models.RecordMissing, models.RecordWrong:
		return "badge bad"
	case models.RecordIncomplete:
		return "badge warn"
	}
	return "badge unconfirmed"
}

func fmtRate(v float64) string {
	if v == 0 {
		return "∞"
	}
	return fmt.Sprintf("%g", v)
}

func fmtLimit(n int) string {
	if n == 0 {
		return "∞"
	}
	return fmt.Sprint(n)
}

func strategyLabel(s string) string {
	if s == models.PoolWeighted {
		return "weighted"
	}
	return "round robin"
}

func zoneFile(recs []models.DNSRecord) string {
	out := ""
	for _, r := range recs {
		if r.Value != "" {
			out += r.ZoneLine() + "\n"
		}
	}
	return out
}
