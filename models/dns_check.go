package models

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// States of one checked DNS record.
const (
	RecordOK      = "ok"      // published as required
	RecordMissing = "missing" // nothing of the kind at that name
	RecordWrong   = "wrong"   // something is there, but not what is needed
	RecordError   = "error"   // the lookup itself failed; try again
	// RecordIncomplete: what is published is valid, but Herald cannot
	// tell whether it covers every server the mail leaves from (direct
	// delivery from an unknown address, a relay it does not know).
	RecordIncomplete = "incomplete"
)

// DNSRecordCheck is the state of one required DNS record after a check.
type DNSRecordCheck struct {
	DNSRecord
	State   string   // RecordOK, RecordMissing, RecordWrong or RecordError
	OK      bool     // State == RecordOK
	Found   []string // what the DNS answered for the name and type
	Problem string   // what is wrong, for people; "" when OK
	Fix     string   // what to do about it; "" when OK
	// Notes are remarks on a record that passes or fails: where a policy
	// was found, how many DNS lookups SPF needs, what each sending
	// address gets.
	Notes []string `json:",omitempty"`
}

// DNSCheck is the result of checking a sending domain's DNS, as stored in
// sending_domains.dns_report (the mailer's CheckDomain produces it).
type DNSCheck struct {
	Domain  string
	OK      bool // every record is right
	Records []DNSRecordCheck
	// OrgDomain is the domain's organisational domain (Public Suffix
	// List); OrgDMARC the policy published there when it differs from
	// Domain and publishes a valid one (the DMARC advice for a subdomain
	// never asks for less).
	OrgDomain string        `json:",omitempty"`
	OrgDMARC  *OrgDMARC     `json:",omitempty"`
	Alignment *DNSAlignment `json:",omitempty"` // of mail From Domain; nil when no DMARC policy was readable
}

// OrgDMARC is the DMARC policy an organisational domain sets for its
// subdomains.
type OrgDMARC struct {
	Domain string // the organisational domain
	Policy string // sp=, or p= when sp= is absent
	ADKIM  string // "r" or "s"
	ASPF   string // "r" or "s"
}

// DNSAlignment is how the identities of a message line up with its From
// domain under a DMARC policy's adkim and aspf (RFC 7489 §3.1).
type DNSAlignment struct {
	From       string // the From domain
	DKIMDomain string // the DKIM signature's d=
	Envelope   string // the envelope (Return-Path) domain SPF checks
	ADKIM      string // "r" or "s"
	ASPF       string
	DKIM       bool // d= aligns with From
	SPF        bool // the envelope domain aligns with From
	// PolicyDomain is where the DMARC policy applied was found, Policy
	// the policy that applies to From ("" when none was found).
	PolicyDomain string `json:",omitempty"`
	Policy       string `json:",omitempty"`
}

// Explain says in words how the identities align.
func (a DNSAlignment) Explain() string {
	mode := map[string]string{"r": "relaxed", "s": "strict"}
	word := func(ok bool) string {
		if ok {
			return "aligns"
		}
		return "does not align"
	}
	return fmt.Sprintf("DKIM d=%s %s with From %s (adkim=%s, %s); the envelope domain %s %s (aspf=%s, %s)",
		a.DKIMDomain, word(a.DKIM), a.From, a.ADKIM, mode[a.ADKIM], a.Envelope, word(a.SPF), a.ASPF, mode[a.ASPF])
}

// JSON is the check as stored in sending_domains.dns_report.
func (c *DNSCheck) JSON() string {
	b, _ := json.Marshal(c)
	return string(b)
}

// Passed reports whether every checked record with the purpose passed;
// "dkim" covers the Ed25519 key too. False when no such record was checked.
func (c *DNSCheck) Passed(purpose string) bool {
	seen := false
	for _, r := range c.Records {
		if r.Purpose == purpose || purpose == "dkim" && strings.HasPrefix(r.Purpose, "dkim") {
			if !r.OK {
				return false
			}
			seen = true
		}
	}
	return seen
}

// LastCheck returns the stored result of the domain's last DNS check, nil
// when it has not been checked (or not since its key was rotated).
func (d *SendingDomain) LastCheck() *DNSCheck {
	if d.DNSCheckedAt == nil || d.DNSReport == "" {
		return nil
	}
	var c DNSCheck
	if err := json.Unmarshal([]byte(d.DNSReport), &c); err != nil {
		return nil
	}
	return &c
}

// SendingDomainStatus is what the last DNS check said about a domain:
// whether DKIM, SPF, DMARC and the return path passed, and when.
type SendingDomainStatus struct {
	ID        int64
	Domain    string
	Checked   bool       // a check result is stored
	CheckedAt *time.Time // nil when never checked
	OK        bool       // every record passed
	DKIM      bool
	SPF       bool
	DMARC     bool
	// ReturnPath is the return-path domain's MX or CNAME.
	ReturnPath bool
	Check      *DNSCheck // the full stored result; nil when never checked
}

// Status summarises the domain's stored DNS check.
func (d *SendingDomain) Status() SendingDomainStatus {
	st := SendingDomainStatus{ID: d.ID, Domain: d.Domain}
	if c := d.LastCheck(); c != nil {
		st.Checked, st.CheckedAt, st.OK, st.Check = true, d.DNSCheckedAt, d.DNSOK, c
		st.DKIM, st.SPF, st.DMARC, st.ReturnPath = c.Passed("dkim"), c.Passed("spf"), c.Passed("dmarc"), c.Passed("return-path")
	}
	return st
}

// SendingDomainStatuses returns every sending domain's last DNS check
// result, by domain name: when it ran and whether DKIM, SPF, DMARC and the
// return path passed. Domains never checked have Checked false.
func (s *Store) SendingDomainStatuses(ctx context.Context) ([]SendingDomainStatus, error) {
	ds, err := s.SendingDomains(ctx)
	if err != nil {
		return nil, fmt.Errorf("models: sending domain statuses: %w", err)
	}
	out := make([]SendingDomainStatus, len(ds))
	for i := range ds {
		out[i] = ds[i].Status()
	}
	return out, nil
}
