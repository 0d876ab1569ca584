package authreport

import (
	"encoding/xml"
	"errors"
	"io"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// DMARCReport is one aggregate report: who sent it, for which domain and
// period, under which published policy, and one Record per group of
// messages with the same source and results.
type DMARCReport struct {
	OrgName, Email, ReportID string
	Begin, End               time.Time
	Policy                   PublishedPolicy
	Records                  []DMARCRecord
}

// PublishedPolicy is the DMARC record the reporter found.
type PublishedPolicy struct {
	Domain      string `xml:"domain"`
	ADKIM, ASPF string
	P, SP       string
	Pct         int
}

// DMARCRecord is one row: Count messages from SourceIP with the same
// identifiers and results.
type DMARCRecord struct {
	SourceIP    string
	Count       int64
	Disposition string // none, quarantine, reject
	// DKIM and SPF are the policy-evaluated (aligned) results: pass or fail.
	DKIM, SPF    string
	Reasons      []string // policy override reasons (forwarded, local_policy, …)
	HeaderFrom   string
	EnvelopeFrom string
	// DKIMResults and SPFResults are the raw authentication results.
	DKIMResults []AuthResult
	SPFResults  []AuthResult
}

// AuthResult is one DKIM signature's or SPF check's result.
type AuthResult struct {
	Domain   string `xml:"domain"`
	Selector string `xml:"selector"` // DKIM only
	Scope    string `xml:"scope"`    // SPF only: mfrom or helo
	Result   string `xml:"result"`
}

// Pass says whether the message passed DMARC: DKIM or SPF passed and
// aligned.
func (r DMARCRecord) Pass() bool { return r.DKIM == "pass" || r.SPF == "pass" }

// The XML as RFC 7489 appendix C has it (and DMARCbis, whose namespace
// encoding/xml matches by local name).
type xmlMetadata struct {
	OrgName   string `xml:"org_name"`
	Email     string `xml:"email"`
	ReportID  string `xml:"report_id"`
	DateRange struct {
		Begin string `xml:"begin"`
		End   string `xml:"end"`
	} `xml:"date_range"`
}

type xmlPolicy struct {
	Domain string `xml:"domain"`
	ADKIM  string `xml:"adkim"`
	ASPF   string `xml:"aspf"`
	P      string `xml:"p"`
	SP     string `xml:"sp"`
	Pct    string `xml:"pct"`
}

type xmlRecord struct {
	Row struct {
		SourceIP string `xml:"source_ip"`
		Count    string `xml:"count"`
		Policy   struct {
			Disposition string `xml:"disposition"`
			DKIM        string `xml:"dkim"`
			SPF         string `xml:"spf"`
			Reasons     []struct {
				Type string `xml:"type"`
			} `xml:"reason"`
		} `xml:"policy_evaluated"`
	} `xml:"row"`
	Identifiers struct {
		HeaderFrom   string `xml:"header_from"`
		EnvelopeFrom string `xml:"envelope_from"`
	} `xml:"identifiers"`
	Auth struct {
		DKIM []AuthResult `xml:"dkim"`
		SPF  []AuthResult `xml:"spf"`
	} `xml:"auth_results"`
}

// ParseDMARC reads one aggregate report from an attachment: XML, gzip or
// zip, told apart by their first bytes.
func ParseDMARC(data []byte, l Limits) (*DMARCReport, error) {
	l = l.withDefaults()
	r, closeFn, err := open(data, l, ".xml")
	if err != nil {
		return nil, err
	}
	defer closeFn()
	return decodeDMARC(r, l)
}

// norm lower-cases and trims a token of the report.
func norm(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

// maxRun is the longest stretch of XML without a '<' or '>': no name,
// attribute or text of a report comes near it, and encoding/xml holds a
// whole token in memory, so a 20 MB text node would cost several times
// that.
const maxRun = 64 << 10

// runGuard fails a read once a stretch without '<' or '>' passes maxRun.
type runGuard struct {
	r   io.Reader
	run int
}

func (g *runGuard) Read(p []byte) (int, error) {
	n, err := g.r.Read(p)
	for _, c := range p[:n] {
		if c == '<' || c == '>' {
			g.run = 0
		} else if g.run++; g.run > maxRun {
			return 0, refused("a tag or text of more than %d KB", maxRun>>10)
		}
	}
	return n, err
}

func decodeDMARC(r io.Reader, l Limits) (*DMARCReport, error) {
	d := xml.NewDecoder(&runGuard{r: r})
	d.Strict = true
	var (
		rep    DMARCReport
		root   bool
		meta   bool
		policy bool
		depth  int
	)
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			var re *RefusedError
			if errors.As(err, &re) {
				return nil, re
			}
			return nil, refused("not a valid DMARC report: %v", err)
		}
		switch t := tok.(type) {
		case xml.Directive:
			// <!DOCTYPE …> and <!ENTITY …>: no report needs one, and they
			// are how entity bombs and external entities arrive.
			return nil, refused("the XML declares a DOCTYPE or ENTITY, which DMARC reports never need")
		case xml.StartElement:
			depth++
			if !root {
				if t.Name.Local != "feedback" {
					return nil, refused("not a DMARC aggregate report: the root element is <%s>, not <feedback>", t.Name.Local)
				}
				root = true
				continue
			}
			if depth != 2 {
				continue
			}
			var derr error
			switch t.Name.Local {
			case "report_metadata":
				var m xmlMetadata
				if derr = d.DecodeElement(&m, &t); derr == nil {
					meta = true
					rep.OrgName, rep.Email, rep.ReportID = strings.TrimSpace(m.OrgName), strings.TrimSpace(m.Email), strings.TrimSpace(m.ReportID)
					rep.Begin, derr = unixTime(m.DateRange.Begin)
					if derr == nil {
						rep.End, derr = unixTime(m.DateRange.End)
					}
				}
			case "policy_published":
				var p xmlPolicy
				if derr = d.DecodeElement(&p, &t); derr == nil {
					policy = true
					rep.Policy = PublishedPolicy{Domain: strings.TrimSuffix(norm(p.Domain), "."), ADKIM: norm(p.ADKIM), ASPF: norm(p.ASPF), P: norm(p.P), SP: norm(p.SP)}
					rep.Policy.Pct, _ = strconv.Atoi(strings.TrimSpace(p.Pct))
				}
			case "record":
				if len(rep.Records) >= l.MaxRecords {
					return nil, refused("more than %d records", l.MaxRecords)
				}
				var x xmlRecord
				if derr = d.DecodeElement(&x, &t); derr == nil {
					var rec DMARCRecord
					if rec, derr = x.record(); derr == nil {
						rep.Records = append(rep.Records, rec)
					}
				}
			default:
				derr = d.Skip()
			}
			depth-- // DecodeElement and Skip consume the end element
			if derr != nil {
				var re *RefusedError
				if errors.As(derr, &re) {
					return nil, re
				}
				return nil, refused("not a valid DMARC report: %v", derr)
			}
		case xml.EndElement:
			depth--
		}
	}
	switch {
	case !root:
		return nil, refused("not a DMARC aggregate report: no <feedback> element")
	case !meta || rep.OrgName == "" || rep.ReportID == "":
		return nil, refused("the report has no report_metadata with org_name and report_id")
	case !policy || rep.Policy.Domain == "":
		return nil, refused("the report has no policy_published domain")
	}
	return &rep, nil
}

func (x xmlRecord) record() (DMARCRecord, error) {
	ip, err := netip.ParseAddr(strings.TrimSpace(x.Row.SourceIP))
	if err != nil {
		return DMARCRecord{}, refused("a record's source_ip %q is not an address", truncate(x.Row.SourceIP, 64))
	}
	n, err := strconv.ParseInt(strings.TrimSpace(x.Row.Count), 10, 64)
	if err != nil || n < 0 {
		return DMARCRecord{}, refused("a record's count %q is not a number", truncate(x.Row.Count, 32))
	}
	rec := DMARCRecord{SourceIP: ip.Unmap().String(), Count: n, Disposition: norm(x.Row.Policy.Disposition),
		DKIM: norm(x.Row.Policy.DKIM), SPF: norm(x.Row.Policy.SPF),
		HeaderFrom: strings.TrimSuffix(norm(x.Identifiers.HeaderFrom), "."), EnvelopeFrom: norm(x.Identifiers.EnvelopeFrom)}
	for _, r := range x.Row.Policy.Reasons {
		if t := norm(r.Type); t != "" {
			rec.Reasons = append(rec.Reasons, t)
		}
	}
	for _, a := range x.Auth.DKIM {
		rec.DKIMResults = append(rec.DKIMResults, AuthResult{Domain: norm(a.Domain), Selector: norm(a.Selector), Result: norm(a.Result)})
	}
	for _, a := range x.Auth.SPF {
		rec.SPFResults = append(rec.SPFResults, AuthResult{Domain: norm(a.Domain), Scope: norm(a.Scope), Result: norm(a.Result)})
	}
	return rec, nil
}

func unixTime(s string) (time.Time, error) {
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || n < 0 {
		return time.Time{}, refused("the date range %q is not a Unix time", truncate(s, 32))
	}
	return time.Unix(n, 0).UTC(), nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
