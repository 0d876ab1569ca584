package mailer_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/herald-mail/herald/internal/testdb"
	"github.com/herald-mail/herald/internal/token"
	"github.com/herald-mail/herald/mailer"
	"github.com/herald-mail/herald/mailer/authreport/reporttest"
	"github.com/herald-mail/herald/models"
)

func reportFixture(id string, begin time.Time) []byte {
	x := reporttest.DMARCXML(reporttest.Report{Org: "receiver.test", ReportID: id, Domain: "news.example", Begin: begin, End: begin.Add(time.Hour),
		Rows: []reporttest.Row{{IP: "192.0.2.10", Count: 7, DKIM: "pass", SPF: "fail", HeaderFrom: "news.example"}}})
	return reporttest.Message("noreply@receiver.test", "dmarc@bounces.news.example", "Report", reporttest.Attachment{Name: id + ".xml.gz", ContentType: "application/gzip", Data: reporttest.Gzip(x)})
}

// The inbound server takes reports at dmarc@ and tlsrpt@ a sending or
// return-path domain only, stores them, and refuses unreadable ones with
// a permanent error naming the reason.
func TestInboundReports(t *testing.T) {
	testdb.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		if _, err := s.CreateSendingDomain(ctx, "news.example", strings.Repeat("s", 32), models.SendingDomainOptions{}); err != nil {
			t.Fatal(err)
		}
		addr := startInbound(t, s, mailer.InboundOptions{Keys: token.NewKeyring(strings.Repeat("k", 32))})
		day := time.Now().UTC().Truncate(24 * time.Hour).Add(-24 * time.Hour)
		for _, to := range []string{"dmarc@bounces.news.example", "DMARC@news.example"} {
			if err := send(t, addr, "noreply@receiver.test", to, reportFixture("r-"+to, day)); err != nil {
				t.Errorf("report to %s: %v", to, err)
			}
		}
		var se *smtp.SMTPError
		if err := send(t, addr, "x@receiver.test", "dmarc@other.example", reportFixture("r-x", day)); !errors.As(err, &se) || se.Code != 550 {
			t.Errorf("report to another domain: %v, want 550 at RCPT", err)
		}
		err := send(t, addr, "x@evil.test", "dmarc@bounces.news.example", reporttest.Message("x@evil.test", "dmarc@bounces.news.example", "r",
			reporttest.Attachment{Name: "x.xml", ContentType: "text/xml", Data: reporttest.ExternalEntity()}))
		if !errors.As(err, &se) || se.Code != 550 || !strings.Contains(se.Message, "DOCTYPE") {
			t.Errorf("external entity: %v, want 550 naming the DOCTYPE", err)
		}
		if err := send(t, addr, "x@receiver.test", "tlsrpt@bounces.news.example", []byte("Subject: hi\r\n\r\nno report here\r\n")); !errors.As(err, &se) || se.Code != 550 {
			t.Errorf("a message without a report: %v, want 550", err)
		}
		sum, err := s.DMARCSummary(ctx, "news.example", day.Add(-time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if sum.Messages != 14 || len(sum.Reports) != 2 || sum.Sources[0].DKIMPass != 14 || sum.Sources[0].SPFPass != 0 {
			t.Errorf("stored: %d messages in %d reports (%+v), want 14 in 2", sum.Messages, len(sum.Reports), sum.Sources)
		}
	})
}

// A mailbox hands over whatever arrived: a report is stored whatever
// address it came to, a hostile one is dropped (not kept for the next
// poll), and bounces still go the bounce way.
func TestRecorderReportsFromAMailbox(t *testing.T) {
	s := testdb.SQLite(t)
	ctx := context.Background()
	rec, err := mailer.NewRecorder(s, mailer.InboundOptions{Keys: token.NewKeyring(strings.Repeat("k", 32))})
	if err != nil {
		t.Fatal(err)
	}
	day := time.Now().UTC().Truncate(24 * time.Hour).Add(-24 * time.Hour)
	in := func(raw []byte) error {
		return rec.Process(ctx, mailer.InboundMessage{Raw: raw, Rcpts: []string{"postmaster@corp.example"}, Source: mailer.Source{Via: "imap"}})
	}
	if err := in(reportFixture("m-1", day)); err != nil {
		t.Fatal(err)
	}
	if err := in(reportFixture("m-1", day)); err != nil { // fetched twice
		t.Fatal(err)
	}
	bomb := reporttest.ZipBomb(reporttest.Report{Org: "evil.test", ReportID: "b", Domain: "news.example", Begin: day, End: day,
		Rows: []reporttest.Row{{IP: "192.0.2.1", Count: 1, DKIM: "pass", SPF: "pass", HeaderFrom: "news.example"}}}, 100<<20, true)
	if err := in(reporttest.Message("x@evil.test", "postmaster@corp.example", "r", reporttest.Attachment{Name: "b.zip", ContentType: "application/zip", Data: bomb})); err != nil {
		t.Errorf("Process(zip bomb) = %v, want nil (dropped)", err)
	}
	sum, err := s.DMARCSummary(ctx, "news.example", day.Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if sum.Messages != 7 || len(sum.Reports) != 1 {
		t.Errorf("stored %d messages in %d reports, want 7 in 1", sum.Messages, len(sum.Reports))
	}
}
