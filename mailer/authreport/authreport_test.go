package authreport_test

import (
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/herald-mail/herald/mailer/authreport"
	"github.com/herald-mail/herald/mailer/authreport/reporttest"
)

var day = time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)

func sample() reporttest.Report {
	return reporttest.Report{Org: "receiver.test", ReportID: "r-1", Domain: "news.example", Begin: day, End: day.Add(24*time.Hour - time.Second),
		Rows: []reporttest.Row{
			{IP: "192.0.2.10", Count: 40, DKIM: "pass", SPF: "pass", HeaderFrom: "news.example", DKIMDomain: "news.example", Selector: "herald", DKIMResult: "pass", SPFDomain: "bounces.news.example", SPFResult: "pass"},
			{IP: "203.0.113.7", Count: 3, Disposition: "quarantine", DKIM: "fail", SPF: "fail", HeaderFrom: "news.example", SPFDomain: "spoof.test", SPFResult: "fail"},
		}}
}

func TestParseDMARCForms(t *testing.T) {
	xml := reporttest.DMARCXML(sample())
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"xml", xml},
		{"gzip", reporttest.Gzip(xml)},
		{"zip", reporttest.Zip("receiver.test!news.example!1!2.xml", xml)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep, err := authreport.ParseDMARC(tc.data, authreport.Limits{})
			if err != nil {
				t.Fatalf("ParseDMARC() error = %v", err)
			}
			if rep.OrgName != "receiver.test" || rep.ReportID != "r-1" || rep.Policy.Domain != "news.example" || rep.Policy.P != "none" {
				t.Errorf("metadata = %+v / %+v", rep, rep.Policy)
			}
			if !rep.Begin.Equal(day) {
				t.Errorf("Begin = %v, want %v", rep.Begin, day)
			}
			if len(rep.Records) != 2 {
				t.Fatalf("records = %d, want 2", len(rep.Records))
			}
			a, b := rep.Records[0], rep.Records[1]
			if a.SourceIP != "192.0.2.10" || a.Count != 40 || !a.Pass() || a.DKIMResults[0].Selector != "herald" || a.SPFResults[0].Domain != "bounces.news.example" {
				t.Errorf("first record = %+v", a)
			}
			if b.Count != 3 || b.Pass() || b.Disposition != "quarantine" || len(b.DKIMResults) != 0 {
				t.Errorf("second record = %+v", b)
			}
		})
	}
}

func TestParseDMARCRefuses(t *testing.T) {
	bomb := sample()
	for _, tc := range []struct {
		name, data, want string
	}{
		{"billion laughs", string(reporttest.BillionLaughs()), "DOCTYPE"},
		{"external entity", string(reporttest.ExternalEntity()), "DOCTYPE"},
		{"undeclared entity", `<feedback><report_metadata><org_name>&xxe;</org_name></report_metadata></feedback>`, "not a valid DMARC report"},
		{"not a report", `<html><body>hi</body></html>`, "root element is <html>"},
		{"no metadata", `<feedback><policy_published><domain>a.test</domain></policy_published></feedback>`, "report_metadata"},
		{"bad ip", strings.Replace(string(reporttest.DMARCXML(sample())), "192.0.2.10", "nowhere", 1), "not an address"},
		{"truncated", string(reporttest.DMARCXML(sample()))[:300], "not a valid DMARC report"},
		{"zip bomb", string(reporttest.ZipBomb(bomb, 100<<20, false)), "declares 100 MB"},
		{"zip bomb lying about its size", string(reporttest.ZipBomb(bomb, 100<<20, true)), "more than it declares"},
		{"gzip bomb", string(reporttest.GzipBomb(bomb, 100<<20)), "more than 10000 records"},
		{"one huge element", "<feedback><report_metadata><org_name>" + strings.Repeat("x", 70<<10) + "</org_name></report_metadata></feedback>", "more than 64 KB"},
		{"zip of many files", string(manyFiles(10)), "holds 10 files"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep, err := authreport.ParseDMARC([]byte(tc.data), authreport.Limits{})
			if err == nil {
				t.Fatalf("ParseDMARC() = %+v, want an error", rep)
			}
			if !authreport.IsRefused(err) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("ParseDMARC() error = %v, want a refusal mentioning %q", err, tc.want)
			}
		})
	}
}

func manyFiles(n int) []byte { return zipN(n, reporttest.DMARCXML(sample())) }

// TestHostileReportMemory measures what refusing each hostile report
// costs: the peak growth of the heap, the larger of what a sampler saw
// every 200µs and the growth of the memory the heap took from the
// system (which catches a peak between two samples). It must stay under
// 50 MB although the bombs inflate to 100 MB. The bytes allocated in all
// (garbage included) are logged too.
func TestHostileReportMemory(t *testing.T) {
	bomb := sample()
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"zip bomb 100 MB", reporttest.ZipBomb(bomb, 100<<20, false)},
		{"zip bomb 100 MB, size lied", reporttest.ZipBomb(bomb, 100<<20, true)},
		{"gzip bomb 100 MB", reporttest.GzipBomb(bomb, 100<<20)},
		{"gzip bomb, one 100 MB element", reporttest.Gzip([]byte("<feedback><report_metadata><org_name>" + strings.Repeat("x", 100<<20) + "</org_name></report_metadata></feedback>"))},
		{"billion laughs", reporttest.BillionLaughs()},
		{"external entity", reporttest.ExternalEntity()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			total, peak, err := measure(func() error { _, err := authreport.ParseDMARC(tc.data, authreport.Limits{}); return err })
			if !authreport.IsRefused(err) {
				t.Fatalf("ParseDMARC() error = %v, want a refusal", err)
			}
			t.Logf("%s: %d KB packed, refused (%v); allocated %.1f MB in all, peak heap growth %.1f MB",
				tc.name, len(tc.data)>>10, err, float64(total)/(1<<20), float64(peak)/(1<<20))
			if peak >= 50<<20 {
				t.Errorf("memory: peak heap growth %d bytes, want under 50 MB", peak)
			}
		})
	}
}

// measure runs f and returns the bytes it allocated and the highest heap
// growth seen by a sampler every 200µs.
func measure(f func() error) (total, peak uint64, err error) {
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	var max atomic.Uint64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		var m runtime.MemStats
		for {
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Microsecond):
			}
			runtime.ReadMemStats(&m)
			if m.HeapAlloc > before.HeapAlloc && m.HeapAlloc-before.HeapAlloc > max.Load() {
				max.Store(m.HeapAlloc - before.HeapAlloc)
			}
		}
	}()
	err = f()
	close(stop)
	<-done
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	if after.HeapAlloc > before.HeapAlloc && after.HeapAlloc-before.HeapAlloc > max.Load() {
		max.Store(after.HeapAlloc - before.HeapAlloc)
	}
	if after.HeapSys > before.HeapSys && after.HeapSys-before.HeapSys > max.Load() {
		max.Store(after.HeapSys - before.HeapSys)
	}
	return after.TotalAlloc - before.TotalAlloc, max.Load(), err
}

func TestParseTLS(t *testing.T) {
	js := reporttest.TLSJSON("receiver.test", "t-1", day,
		reporttest.TLSPolicy{Type: "sts", Domain: "bounces.news.example", Success: 120, Failure: 4, FailureType: "certificate-expired", SendingIP: "198.51.100.2", MXHost: "mx.news.example"})
	for _, data := range [][]byte{js, reporttest.Gzip(js)} {
		rep, err := authreport.ParseTLS(data, authreport.Limits{})
		if err != nil {
			t.Fatalf("ParseTLS() error = %v", err)
		}
		p := rep.Policies[0]
		if rep.OrgName != "receiver.test" || rep.ReportID != "t-1" || !rep.DateRange.Start.Equal(day) || p.Policy.Domain != "bounces.news.example" ||
			p.Summary.Success != 120 || p.Summary.Failure != 4 || p.Failures[0].ResultType != "certificate-expired" {
			t.Errorf("ParseTLS() = %+v", rep)
		}
	}
	for _, bad := range []string{`{"policies":[]}`, `not json`, `{"organization-name":"a","report-id":"b","policies":[{"policy":{}}]}`} {
		if _, err := authreport.ParseTLS([]byte(bad), authreport.Limits{}); !authreport.IsRefused(err) {
			t.Errorf("ParseTLS(%q) error = %v, want a refusal", bad, err)
		}
	}
	big := reporttest.Gzip([]byte(`{"organization-name":"` + strings.Repeat("a", 3<<20) + `"}`))
	if _, err := authreport.ParseTLS(big, authreport.Limits{}); err == nil || !strings.Contains(err.Error(), "larger than 2 MB") {
		t.Errorf("ParseTLS(3 MB) error = %v, want the size refusal", err)
	}
}

func TestFind(t *testing.T) {
	x := reporttest.DMARCXML(sample())
	js := reporttest.TLSJSON("receiver.test", "t-1", day, reporttest.TLSPolicy{Type: "sts", Domain: "news.example", Success: 1})
	msg := reporttest.Message("noreply@receiver.test", "dmarc@bounces.news.example", "Report domain: news.example",
		reporttest.Attachment{Name: "r.xml.gz", ContentType: "application/gzip", Data: reporttest.Gzip(x)},
		reporttest.Attachment{Name: "t.json.gz", ContentType: "application/tlsrpt+gzip", Data: reporttest.Gzip(js)})
	atts, err := authreport.Find(msg)
	if err != nil {
		t.Fatal(err)
	}
	if len(atts) != 2 || atts[0].Kind != authreport.KindDMARC || atts[1].Kind != authreport.KindTLS {
		t.Fatalf("Find() = %d attachments %+v", len(atts), atts)
	}
	if rep, err := authreport.ParseDMARC(atts[0].Data, authreport.Limits{}); err != nil || len(rep.Records) != 2 {
		t.Errorf("the found DMARC attachment parses to %v, %v", rep, err)
	}
	none, err := authreport.Find([]byte("From: a@b.test\r\nSubject: hi\r\n\r\nhello\r\n"))
	if err != nil || len(none) != 0 {
		t.Errorf("Find(plain mail) = %v, %v; want nothing", none, err)
	}
}
