package authreport

import (
	"encoding/json"
	"errors"
	"strings"
	"time"
)

// TLSReport is one SMTP TLS report (RFC 8460 §4): how the reporter's
// sessions to a domain's MX hosts fared under each policy.
type TLSReport struct {
	OrgName   string      `json:"organization-name"`
	Contact   string      `json:"contact-info"`
	ReportID  string      `json:"report-id"`
	DateRange TLSRange    `json:"date-range"`
	Policies  []TLSPolicy `json:"policies"`
}

// TLSRange is the period a TLS report covers.
type TLSRange struct {
	Start time.Time `json:"start-datetime"`
	End   time.Time `json:"end-datetime"`
}

// TLSPolicy is the result of the sessions under one policy.
type TLSPolicy struct {
	Policy struct {
		Type   string   `json:"policy-type"` // sts, tlsa, no-policy-found
		Domain string   `json:"policy-domain"`
		MXHost []string `json:"mx-host"`
	} `json:"policy"`
	Summary struct {
		Success int64 `json:"total-successful-session-count"`
		Failure int64 `json:"total-failure-session-count"`
	} `json:"summary"`
	Failures []TLSFailure `json:"failure-details"`
}

// TLSFailure is one kind of failure from one sending MTA to one MX.
type TLSFailure struct {
	ResultType    string `json:"result-type"`
	SendingIP     string `json:"sending-mta-ip"`
	ReceivingMX   string `json:"receiving-mx-hostname"`
	ReceivingIP   string `json:"receiving-ip"`
	FailedCount   int64  `json:"failed-session-count"`
	FailureReason string `json:"failure-reason-code"`
}

// ParseTLS reads one TLS report from an attachment: JSON or gzip (zip
// too, which some reporters use), told apart by their first bytes.
func ParseTLS(data []byte, l Limits) (*TLSReport, error) {
	l = l.withDefaults()
	l.MaxBytes = l.MaxJSONBytes
	r, closeFn, err := open(data, l, ".json")
	if err != nil {
		return nil, err
	}
	defer closeFn()
	var rep TLSReport
	if err := json.NewDecoder(r).Decode(&rep); err != nil {
		var re *RefusedError
		if errors.As(err, &re) {
			return nil, re
		}
		return nil, refused("not a valid TLS report: %v", err)
	}
	rep.OrgName, rep.ReportID = strings.TrimSpace(rep.OrgName), strings.TrimSpace(rep.ReportID)
	switch {
	case rep.OrgName == "" || rep.ReportID == "":
		return nil, refused("the TLS report has no organization-name or report-id")
	case len(rep.Policies) > l.MaxRecords:
		return nil, refused("more than %d policies", l.MaxRecords)
	}
	for i := range rep.Policies {
		p := &rep.Policies[i]
		p.Policy.Domain = strings.TrimSuffix(norm(p.Policy.Domain), ".")
		p.Policy.Type = norm(p.Policy.Type)
		if p.Policy.Domain == "" {
			return nil, refused("a policy of the TLS report names no policy-domain")
		}
		if len(p.Failures) > l.MaxRecords {
			return nil, refused("more than %d failure details", l.MaxRecords)
		}
		if p.Summary.Success < 0 || p.Summary.Failure < 0 {
			return nil, refused("negative session counts")
		}
	}
	return &rep, nil
}
