package e2e_test

import (
	"bufio"
	"context"
	"fmt"
	netsmtp "net/smtp"
	"net/textproto"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"

	"github.com/herald-mail/herald/internal/e2e"
	"github.com/herald-mail/herald/mailer/authreport/reporttest"
	"github.com/herald-mail/herald/models"
)

// TestDMARCAndTLSReports runs the built binary with its inbound SMTP
// server: DMARC aggregate reports in XML, gzip and zip form, and a TLS
// report, are sent over SMTP to the addresses of the records Herald
// advises, and the domain's Reports page shows the right counts, marks
// Herald's sources (a pool address, and a relay signing with Herald's
// DKIM selector) and flags the unknown one and Herald's failing mail.
// Hostile reports (billion laughs, external entity, 100 MB zip and gzip
// bombs) are refused with 550, and the server's peak resident memory
// grows by less than 50 MB while it refuses them.
func TestDMARCAndTLSReports(t *testing.T) {
	t.Parallel() // functional: no rate or clock is measured, so it may share the machine
	if testing.Short() {
		t.Skip("starts the built binary")
	}
	dns := e2e.StartDNS(t)
	inbound := "127.0.0.1:" + strconv.Itoa(e2e.FreePort(t))
	h := e2e.Start(t, e2e.Options{DNS: dns, Env: []string{"HERALD_INBOUND_LISTEN=" + inbound}})
	id, recs := h.SendingDomain(t, dns, "news.example")
	var rua, tlsRUA string
	for _, r := range recs {
		switch r.Purpose {
		case "dmarc":
			_, rua, _ = strings.Cut(r.Value, "rua=mailto:")
			rua, _, _ = strings.Cut(rua, ";")
		case "tlsrpt":
			_, tlsRUA, _ = strings.Cut(r.Value, "rua=mailto:")
		}
	}
	if rua != "dmarc@bounces.news.example" || tlsRUA != "tlsrpt@bounces.news.example" {
		t.Fatalf("advised report addresses = %q and %q, want dmarc@ and tlsrpt@ the return-path domain", rua, tlsRUA)
	}
	ctx := context.Background()
	st := h.Store(t)
	sd, err := st.SendingDomain(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	pool := &models.IPPool{Name: "Main"}
	if err := st.CreateIPPool(ctx, pool); err != nil {
		t.Fatal(err)
	}
	if err := st.AddSendingIP(ctx, &models.SendingIP{PoolID: pool.ID, Address: "192.0.2.10", HELO: "mta.news.example", Weight: 1, Active: true}); err != nil {
		t.Fatal(err)
	}
	dns.Add(t, "10.2.0.192.in-addr.arpa. 300 IN PTR mta.news.example.")

	send := func(to string, msg []byte) error {
		return netsmtp.SendMail(inbound, nil, "noreply@receiver.test", []string{to}, msg)
	}
	day := time.Now().UTC().Truncate(24 * time.Hour)
	report := func(id string, ago int, rows ...reporttest.Row) reporttest.Report {
		b := day.AddDate(0, 0, -ago)
		return reporttest.Report{Org: "receiver.test", ReportID: id, Domain: "news.example", Begin: b, End: b.Add(24*time.Hour - time.Second), Rows: rows}
	}
	pass := func(ip string, n int, sel string) reporttest.Row {
		return reporttest.Row{IP: ip, Count: n, DKIM: "pass", SPF: "pass", HeaderFrom: "news.example", DKIMDomain: "news.example", Selector: sel, DKIMResult: "pass",
			SPFDomain: "bounces.news.example", SPFResult: "pass"}
	}
	fail := func(ip string, n int) reporttest.Row {
		return reporttest.Row{IP: ip, Count: n, Disposition: "quarantine", DKIM: "fail", SPF: "fail", HeaderFrom: "news.example",
			DKIMDomain: "news.example", Selector: "x", DKIMResult: "fail", SPFDomain: "spoof.test", SPFResult: "fail"}
	}
	xml := reporttest.DMARCXML(report("r-xml", 3, pass("192.0.2.10", 40, sd.Selector), fail("203.0.113.7", 3)))
	gz := reporttest.Gzip(reporttest.DMARCXML(report("r-gzip", 2, pass("192.0.2.10", 25, sd.Selector), pass("198.51.100.20", 10, sd.Selector))))
	zip := reporttest.Zip("receiver.test!news.example!1!2.xml", reporttest.DMARCXML(report("r-zip", 1, fail("192.0.2.10", 5), fail("203.0.113.7", 2))))
	for _, m := range []reporttest.Attachment{
		{Name: "receiver.test!news.example!1!2.xml", ContentType: "text/xml", Data: xml},
		{Name: "receiver.test!news.example!1!2.xml.gz", ContentType: "application/gzip", Data: gz},
		{Name: "receiver.test!news.example!1!2.zip", ContentType: "application/zip", Data: zip},
		{Name: "again.xml", ContentType: "text/xml", Data: xml}, // a resend: stored once
	} {
		if err := send(rua, reporttest.Message("noreply@receiver.test", rua, "Report domain: news.example", m)); err != nil {
			t.Fatalf("send the %s report: %v", m.Name, err)
		}
	}
	js := reporttest.TLSJSON("receiver.test", "t-1", day.AddDate(0, 0, -1),
		reporttest.TLSPolicy{Type: "sts", Domain: "bounces.news.example", Success: 120, Failure: 4, FailureType: "certificate-expired", SendingIP: "198.51.100.2", MXHost: "mx.news.example"})
	if err := send(tlsRUA, reporttest.Message("tlsrpt@receiver.test", tlsRUA, "Report Domain: bounces.news.example",
		reporttest.Attachment{Name: "receiver.test!bounces.news.example!1!2.json.gz", ContentType: "application/tlsrpt+gzip", Data: reporttest.Gzip(js)})); err != nil {
		t.Fatalf("send the TLS report: %v", err)
	}
	if err := send("postmaster@bounces.news.example", []byte("Subject: hi\r\n\r\nhi\r\n")); err == nil {
		t.Errorf("mail to another address of the return-path domain was accepted")
	}

	// Hostile reports: refused at DATA with the reason, memory measured
	// as the process's peak resident set (VmHWM) before and after.
	bombRow := pass("192.0.2.10", 1, sd.Selector)
	before := vmHWM(t, h.PID())
	for _, c := range []struct {
		name string
		att  reporttest.Attachment
		want string
	}{
		{"billion laughs", reporttest.Attachment{Name: "lol.xml", ContentType: "text/xml", Data: reporttest.BillionLaughs()}, "DOCTYPE or ENTITY"},
		{"external entity", reporttest.Attachment{Name: "xxe.xml", ContentType: "text/xml", Data: reporttest.ExternalEntity()}, "DOCTYPE or ENTITY"},
		{"100 MB zip bomb", reporttest.Attachment{Name: "bomb.zip", ContentType: "application/zip", Data: reporttest.ZipBomb(report("bomb1", 1, bombRow), 100<<20, false)}, "declares 100 MB"},
		{"100 MB zip bomb hiding its size", reporttest.Attachment{Name: "bomb2.zip", ContentType: "application/zip", Data: reporttest.ZipBomb(report("bomb2", 1, bombRow), 100<<20, true)}, "more than it declares"},
		{"100 MB gzip bomb", reporttest.Attachment{Name: "bomb.xml.gz", ContentType: "application/gzip", Data: reporttest.GzipBomb(report("bomb3", 1, bombRow), 100<<20)}, "more than 10000 records"},
		{"100 MB text node", reporttest.Attachment{Name: "bomb4.xml.gz", ContentType: "application/gzip",
			Data: reporttest.Gzip([]byte("<feedback><report_metadata><org_name>" + strings.Repeat("x", 100<<20) + "</org_name></report_metadata></feedback>"))}, "more than 64 KB"},
	} {
		err := send(rua, reporttest.Message("noreply@evil.test", rua, "Report", c.att))
		se, ok := err.(*textproto.Error)
		if !ok || se.Code != 550 || !strings.Contains(se.Msg, "Report refused") || !strings.Contains(se.Msg, c.want) {
			t.Errorf("%s (%d KB): reply %v, want 550 Report refused: …%s…", c.name, len(c.att.Data)>>10, err, c.want)
		}
	}
	after := vmHWM(t, h.PID())
	t.Logf("server peak resident memory (VmHWM): %d MB before the hostile reports, %d MB after: growth %d MB", before>>10, after>>10, (after-before)>>10)
	if after-before >= 50<<10 {
		t.Errorf("peak resident memory grew by %d MB refusing the hostile reports, want under 50 MB", (after-before)>>10)
	}

	// The Reports page.
	d := h.Dashboard(t)
	code, body := d.Get(t, fmt.Sprintf("/deliverability/domains/%d/reports", id))
	if code != 200 {
		t.Fatalf("reports page = %d", code)
	}
	doc, err := goquery.NewDocumentFromReader(strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	text := func(sel string) string { return strings.TrimSpace(doc.Find(sel).First().Text()) }
	if got := text(`[data-testid="total-messages"]`); got != "85" {
		t.Errorf("total messages = %q, want 85 (40+3 xml, 25+10 gzip, 5+2 zip; the resend not counted)", got)
	}
	if got := text(`[data-testid="total-sources"]`); got != "3" {
		t.Errorf("sources = %q, want 3", got)
	}
	if got := text(`[data-testid="total-reports"]`); got != "3" {
		t.Errorf("reports = %q, want 3", got)
	}
	for ip, want := range map[string]struct {
		messages, aligned string
		herald            bool
		flag              string
		reverse           string
	}{
		"192.0.2.10":    {"70", "65", true, "Herald's mail failing DMARC", "mta.news.example"},
		"198.51.100.20": {"10", "10", true, "", ""},
		"203.0.113.7":   {"5", "0", false, "Unknown source failing DMARC", ""},
	} {
		row := doc.Find(`[data-testid="source-` + ip + `"]`)
		if row.Length() != 1 {
			t.Errorf("no row for source %s", ip)
			continue
		}
		cell := func(id string) string {
			return strings.TrimSpace(row.Find(`[data-testid="` + id + `"]`).First().Text())
		}
		if got := cell("messages"); got != want.messages {
			t.Errorf("%s messages = %q, want %s", ip, got, want.messages)
		}
		if got := cell("aligned"); !strings.HasPrefix(got, want.aligned+" ") {
			t.Errorf("%s DMARC pass = %q, want %s", ip, got, want.aligned)
		}
		if got := row.Find(`[data-testid="herald"]`).Length() == 1; got != want.herald {
			t.Errorf("%s marked Herald's = %v, want %v", ip, got, want.herald)
		}
		if got := cell("flag"); !strings.HasPrefix(got, want.flag) || (want.flag == "") != (got == "") {
			t.Errorf("%s flag = %q, want %q", ip, got, want.flag)
		}
		if got := cell("reverse"); got != want.reverse {
			t.Errorf("%s reverse name = %q, want %q", ip, got, want.reverse)
		}
	}
	if got := cellText(doc, "source-203.0.113.7", "disposition"); !strings.Contains(got, "quarantined 5") {
		t.Errorf("unknown source disposition = %q, want quarantined 5", got)
	}
	if doc.Find(`[data-testid="days-table"] tbody tr`).Length() != 3 {
		t.Errorf("days shown = %d, want 3", doc.Find(`[data-testid="days-table"] tbody tr`).Length())
	}
	if text(`[data-testid="tls-success"]`) != "120" || text(`[data-testid="tls-failure"]`) != "4" ||
		!strings.Contains(text(`[data-testid="failure-detail"]`), "certificate-expired 198.51.100.2 mx.news.example 4") {
		t.Errorf("TLS summary: %q succeeded, %q failed, detail %q", text(`[data-testid="tls-success"]`), text(`[data-testid="tls-failure"]`), text(`[data-testid="failure-detail"]`))
	}
	// The same through the API.
	var api struct {
		Data struct {
			Messages   int64 `json:"messages"`
			TLSFailure int64 `json:"tls_failure"`
			Sources    []struct {
				IP     string `json:"ip"`
				Herald bool   `json:"herald"`
				Flag   string `json:"flag"`
			} `json:"sources"`
		} `json:"data"`
	}
	h.MustAPI(t, 200, "GET", fmt.Sprintf("/sending-domains/%d/reports?days=30", id), nil, &api)
	if api.Data.Messages != 85 || api.Data.TLSFailure != 4 || len(api.Data.Sources) != 3 || !api.Data.Sources[0].Herald || api.Data.Sources[0].IP != "192.0.2.10" {
		t.Errorf("API reports = %+v", api.Data)
	}
	// A 7-day period still holds all three (the oldest began three days ago).
	_, body = d.Get(t, fmt.Sprintf("/deliverability/domains/%d/reports?%s", id, url.Values{"days": {"7"}}.Encode()))
	if !strings.Contains(body, `data-testid="total-messages">85<`) {
		t.Errorf("7-day period does not show the 85 messages")
	}
}

func cellText(doc *goquery.Document, row, cell string) string {
	return strings.TrimSpace(doc.Find(`[data-testid="` + row + `"] [data-testid="` + cell + `"]`).Text())
}

// vmHWM is a process's peak resident set size in KB.
func vmHWM(t *testing.T, pid int) int64 {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Skipf("no /proc to read memory from: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return n
		}
	}
	t.Fatalf("no VmHWM in /proc/%d/status", pid)
	return 0
}
