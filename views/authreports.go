package views

import (
	"strconv"
	"strings"

	"github.com/herald-mail/herald/models"
)

// DomainReportsView is what the domain's Reports page shows: the DMARC
// aggregate reports' sources over a period, and the TLS reports.
type DomainReportsView struct {
	Domain       *models.SendingDomain
	Days         int // the period shown, in days
	DMARC        *models.DMARCSummary
	Sources      []ReportSource
	TLS          *models.TLSSummary
	DMARCAddress string // where the advised records send the reports
	TLSAddress   string
	// HeraldFailures and Unknown count the flagged sources.
	HeraldFailures, Unknown int
}

// ReportSource is one sending address with Herald's verdict on it.
type ReportSource struct {
	models.DMARCSource
	// Herald says the address is Herald's (HeraldWhy says how it knows).
	Herald    bool
	HeraldWhy string
	// Flag is what to look at ("" when nothing), FlagClass its badge.
	Flag, FlagClass string
}

// ReportPeriods are the periods the page offers, in days.
var ReportPeriods = []int{7, 30, 90, 365}

// Judge marks which sources are Herald's (an address of a sending pool,
// or mail signed with one of the domain's Herald DKIM selectors) and
// flags unknown sources and Herald's own failures.
func (v *DomainReportsView) Judge(own []string, selectors []string) {
	v.Sources, v.HeraldFailures, v.Unknown = nil, 0, 0
	for _, s := range v.DMARC.Sources {
		r := ReportSource{DMARCSource: s}
		for _, ip := range own {
			if ip == s.IP {
				r.Herald, r.HeraldWhy = true, "a sending address of Herald's pools"
			}
		}
		if !r.Herald {
			for _, sel := range s.Selectors {
				for _, mine := range selectors {
					if mine != "" && strings.EqualFold(sel, mine) {
						r.Herald, r.HeraldWhy = true, "signed with Herald's DKIM key (selector "+sel+")"
					}
				}
			}
		}
		switch {
		case r.Herald && s.Failed() > 0:
			r.Flag, r.FlagClass = "Herald's mail failing DMARC: check the DNS records", "badge bad"
			v.HeraldFailures++
		case !r.Herald && s.Failed() > 0:
			r.Flag, r.FlagClass = "Unknown source failing DMARC: spoofing, or a service not set up for this domain", "badge bad"
			v.Unknown++
		case !r.Herald:
			r.Flag, r.FlagClass = "Unknown source passing DMARC: another service sends as this domain", "badge warn"
			v.Unknown++
		}
		v.Sources = append(v.Sources, r)
	}
}

// percent is part of whole as a whole percentage ("–" of nothing).
func percent(part, whole int64) string {
	if whole == 0 {
		return "–"
	}
	return strconv.FormatInt(part*100/whole, 10) + "%"
}

func count(n int64) string { return strconv.FormatInt(n, 10) }

// sources counts sources in words: "1 source is", "2 sources are".
func sources(n int) string {
	if n == 1 {
		return "1 source is"
	}
	return strconv.Itoa(n) + " sources are"
}
