package models_test

import (
	"context"
	"testing"
	"time"

	"github.com/herald-mail/herald/internal/testdb"
	"github.com/herald-mail/herald/models"
)

func TestDMARCReports(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		day := time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)
		rep := func(org, id string, begin time.Time, recs ...models.DMARCRecord) *models.DMARCReport {
			return &models.DMARCReport{Domain: "news.example", OrgName: org, ReportID: id, DateBegin: begin, DateEnd: begin.Add(24*time.Hour - time.Second),
				Policy: "p=none", Via: "smtp", Records: recs}
		}
		herald := models.DMARCRecord{SourceIP: "192.0.2.10", ReverseName: "mta.news.example", Count: 40, DKIM: "pass", SPF: "pass", HeaderFrom: "news.example",
			DKIMAuth: "news.example herald pass", SPFAuth: "bounces.news.example mfrom pass"}
		spoof := models.DMARCRecord{SourceIP: "203.0.113.7", Count: 3, Disposition: "quarantine", DKIM: "fail", SPF: "fail", HeaderFrom: "news.example",
			SPFAuth: "spoof.test mfrom fail"}
		other := models.DMARCRecord{SourceIP: "198.51.100.1", Count: 99, DKIM: "pass", SPF: "pass", HeaderFrom: "other.example"}
		for i, r := range []*models.DMARCReport{
			rep("a.test", "1", day, herald, spoof, other),
			rep("b.test", "1", day.Add(24*time.Hour), herald),
			rep("a.test", "old", day.AddDate(0, -3, 0), herald),
		} {
			stored, err := s.SaveDMARCReport(ctx, r)
			if err != nil || !stored {
				t.Fatalf("SaveDMARCReport(%d) = %v, %v", i, stored, err)
			}
		}
		if stored, err := s.SaveDMARCReport(ctx, rep("a.test", "1", day, herald)); err != nil || stored {
			t.Errorf("SaveDMARCReport(resend) = %v, %v; want false, nil", stored, err)
		}
		sum, err := s.DMARCSummary(ctx, "news.example", day.AddDate(0, 0, -7))
		if err != nil {
			t.Fatal(err)
		}
		if sum.Messages != 83 || sum.Aligned != 80 || len(sum.Sources) != 2 || len(sum.Days) != 2 || len(sum.Reports) != 2 {
			t.Fatalf("summary = %d messages, %d aligned, %d sources, %d days, %d reports; want 83, 80, 2, 2, 2",
				sum.Messages, sum.Aligned, len(sum.Sources), len(sum.Days), len(sum.Reports))
		}
		h, x := sum.Sources[0], sum.Sources[1]
		if h.IP != "192.0.2.10" || h.Messages != 80 || h.Aligned != 80 || h.ReverseName != "mta.news.example" || len(h.Reporters) != 2 ||
			len(h.Selectors) != 1 || h.Selectors[0] != "herald" || h.DKIMSignatures[0] != "news.example (herald): pass" {
			t.Errorf("first source = %+v", h)
		}
		if x.IP != "203.0.113.7" || x.Failed() != 3 || x.Quarantined != 3 || x.SPFDomains[0] != "spoof.test: fail" {
			t.Errorf("second source = %+v", x)
		}
		if d := sum.Days[0]; !d.Day.Equal(day) || d.Messages != 43 || d.Sources != 2 {
			t.Errorf("first day = %+v", d)
		}
		if sum.Reports[0].OrgName != "b.test" || sum.Reports[1].Messages != 142 {
			t.Errorf("reports = %+v", sum.Reports)
		}
	})
}

func TestTLSReports(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		day := time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)
		r := &models.TLSReport{OrgName: "a.test", ReportID: "t1", DateBegin: day, DateEnd: day.Add(time.Hour), Via: "smtp",
			Policies: []models.TLSReportPolicy{
				{PolicyType: "sts", PolicyDomain: "bounces.news.example", Success: 10, Failure: 2, Failures: "certificate-expired 192.0.2.1 mx.news.example 2"},
				{PolicyType: "no-policy-found", PolicyDomain: "elsewhere.example", Success: 5},
			}}
		if stored, err := s.SaveTLSReport(ctx, r); err != nil || !stored {
			t.Fatalf("SaveTLSReport() = %v, %v", stored, err)
		}
		if stored, err := s.SaveTLSReport(ctx, &models.TLSReport{OrgName: "a.test", ReportID: "t1", DateBegin: day, DateEnd: day}); err != nil || stored {
			t.Errorf("SaveTLSReport(resend) = %v, %v", stored, err)
		}
		sum, err := s.TLSSummary(ctx, []string{"news.example", "Bounces.News.Example"}, day.AddDate(0, 0, -1))
		if err != nil {
			t.Fatal(err)
		}
		if sum.Success != 10 || sum.Failure != 2 || len(sum.Results) != 1 || sum.Results[0].OrgName != "a.test" || sum.Results[0].FailureLines()[0] != "certificate-expired 192.0.2.1 mx.news.example 2" {
			t.Errorf("TLSSummary() = %+v", sum)
		}
	})
}

func TestIsReportDomain(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		if _, err := s.CreateSendingDomain(ctx, "news.example", "0123456789abcdef0123456789abcdef", models.SendingDomainOptions{}); err != nil {
			t.Fatal(err)
		}
		for d, want := range map[string]bool{"news.example": true, "BOUNCES.news.example": true, "other.example": false} {
			if got, err := s.IsReportDomain(ctx, d); err != nil || got != want {
				t.Errorf("IsReportDomain(%q) = %v, %v; want %v", d, got, err, want)
			}
		}
	})
}
