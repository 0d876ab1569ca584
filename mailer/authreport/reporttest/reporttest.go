// Package reporttest builds DMARC aggregate and TLS reports for tests,
// well-formed ones and hostile ones, and the mail that carries them.
package reporttest

import (
	"archive/zip"
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"
)

// Row is one DMARC record: Count messages from IP with these results.
type Row struct {
	IP          string
	Count       int
	Disposition string // "" is none
	DKIM, SPF   string // policy-evaluated: pass or fail
	HeaderFrom  string
	DKIMDomain  string // "" omits the auth_results dkim element
	Selector    string
	DKIMResult  string
	SPFDomain   string
	SPFResult   string
}

// Report describes one aggregate report.
type Report struct {
	Org, ReportID, Domain string
	Begin, End            time.Time
	Rows                  []Row
}

// DMARCXML returns the report as RFC 7489 appendix C XML.
func DMARCXML(r Report) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, `<?xml version="1.0" encoding="UTF-8" ?>
<feedback>
  <version>1.0</version>
  <report_metadata>
    <org_name>%s</org_name>
    <email>noreply-dmarc@%s</email>
    <report_id>%s</report_id>
    <date_range><begin>%d</begin><end>%d</end></date_range>
  </report_metadata>
  <policy_published><domain>%s</domain><adkim>r</adkim><aspf>r</aspf><p>none</p><sp>none</sp><pct>100</pct></policy_published>
`, r.Org, r.Org, r.ReportID, r.Begin.Unix(), r.End.Unix(), r.Domain)
	for _, w := range r.Rows {
		b.WriteString(RecordXML(w))
	}
	b.WriteString("</feedback>\n")
	return b.Bytes()
}

// RecordXML is one <record> element.
func RecordXML(w Row) string {
	disp := w.Disposition
	if disp == "" {
		disp = "none"
	}
	var auth strings.Builder
	if w.DKIMDomain != "" {
		fmt.Fprintf(&auth, `<dkim><domain>%s</domain><selector>%s</selector><result>%s</result></dkim>`, w.DKIMDomain, w.Selector, w.DKIMResult)
	}
	if w.SPFDomain != "" {
		fmt.Fprintf(&auth, `<spf><domain>%s</domain><scope>mfrom</scope><result>%s</result></spf>`, w.SPFDomain, w.SPFResult)
	}
	return fmt.Sprintf(`  <record>
    <row><source_ip>%s</source_ip><count>%d</count><policy_evaluated><disposition>%s</disposition><dkim>%s</dkim><spf>%s</spf></policy_evaluated></row>
    <identifiers><header_from>%s</header_from></identifiers>
    <auth_results>%s</auth_results>
  </record>
`, w.IP, w.Count, disp, w.DKIM, w.SPF, w.HeaderFrom, auth.String())
}

// Gzip compresses b.
func Gzip(b []byte) []byte {
	var out bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&out, gzip.BestCompression)
	zw.Write(b)
	zw.Close()
	return out.Bytes()
}

// Zip packs b as the one file name.
func Zip(name string, b []byte) []byte {
	var out bytes.Buffer
	zw := zip.NewWriter(&out)
	w, _ := zw.Create(name)
	w.Write(b)
	zw.Close()
	return out.Bytes()
}

// BillionLaughs is the classic entity-expansion bomb dressed as a report.
func BillionLaughs() []byte {
	var b strings.Builder
	b.WriteString(`<?xml version="1.0"?>` + "\n" + `<!DOCTYPE feedback [` + "\n" + `<!ENTITY lol0 "lol">` + "\n")
	for i := 1; i <= 9; i++ {
		fmt.Fprintf(&b, `<!ENTITY lol%d "%s">`+"\n", i, strings.Repeat(fmt.Sprintf("&lol%d;", i-1), 10))
	}
	b.WriteString(`]>` + "\n" + `<feedback><report_metadata><org_name>&lol9;</org_name><report_id>1</report_id></report_metadata></feedback>`)
	return []byte(b.String())
}

// ExternalEntity is a report that tries to read a local file.
func ExternalEntity() []byte {
	return []byte(`<?xml version="1.0"?>
<!DOCTYPE feedback [ <!ENTITY xxe SYSTEM "file:///etc/passwd"> ]>
<feedback><report_metadata><org_name>&xxe;</org_name><report_id>1</report_id></report_metadata>
<policy_published><domain>example.com</domain></policy_published></feedback>`)
}

// ZipBomb is a zip holding one well-formed report that grows to size bytes
// once inflated: the same record over and over, so it compresses about a
// thousand to one (100 MB packs into about 100 KB). The zip's declared
// size is the true one unless lie is set, when it claims a tiny file.
func ZipBomb(r Report, size int64, lie bool) []byte {
	if lie {
		// archive/zip writes the true sizes: build the entry with CreateRaw.
		return lyingZip(r, size)
	}
	var out bytes.Buffer
	zw := zip.NewWriter(&out)
	w, _ := zw.CreateHeader(&zip.FileHeader{Name: "bomb.xml", Method: zip.Deflate})
	writeBomb(w, r, size)
	zw.Close()
	return out.Bytes()
}

// GzipBomb is the same report as a gzip file.
func GzipBomb(r Report, size int64) []byte {
	var out bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&out, gzip.BestCompression)
	writeBomb(zw, r, size)
	zw.Close()
	return out.Bytes()
}

func writeBomb(w io.Writer, r Report, size int64) {
	head := DMARCXML(Report{Org: r.Org, ReportID: r.ReportID, Domain: r.Domain, Begin: r.Begin, End: r.End})
	head = head[:len(head)-len("</feedback>\n")]
	w.Write(head)
	rec := []byte(RecordXML(r.Rows[0]))
	for n := int64(len(head)); n < size; n += int64(len(rec)) {
		w.Write(rec)
	}
	io.WriteString(w, "</feedback>\n")
}

func lyingZip(r Report, size int64) []byte {
	var deflated bytes.Buffer
	// The deflate stream of the bomb, computed through a real zip.
	real := ZipBomb(r, size, false)
	zr, _ := zip.NewReader(bytes.NewReader(real), int64(len(real)))
	f := zr.File[0]
	raw, _ := f.OpenRaw()
	io.Copy(&deflated, raw)
	var out bytes.Buffer
	zw := zip.NewWriter(&out)
	w, _ := zw.CreateRaw(&zip.FileHeader{Name: "bomb.xml", Method: zip.Deflate, CRC32: f.CRC32,
		CompressedSize64: uint64(deflated.Len()), UncompressedSize64: 1024})
	w.Write(deflated.Bytes())
	zw.Close()
	return out.Bytes()
}

// TLSPolicy is one policy of a TLS report.
type TLSPolicy struct {
	Type, Domain      string
	Success, Failure  int64
	FailureType       string
	SendingIP, MXHost string
}

// TLSJSON returns an RFC 8460 report.
func TLSJSON(org, id string, start time.Time, policies ...TLSPolicy) []byte {
	type failure struct {
		ResultType  string `json:"result-type"`
		SendingIP   string `json:"sending-mta-ip,omitempty"`
		ReceivingMX string `json:"receiving-mx-hostname,omitempty"`
		Count       int64  `json:"failed-session-count"`
	}
	type policy struct {
		Policy struct {
			Type   string `json:"policy-type"`
			Domain string `json:"policy-domain"`
		} `json:"policy"`
		Summary struct {
			Success int64 `json:"total-successful-session-count"`
			Failure int64 `json:"total-failure-session-count"`
		} `json:"summary"`
		Failures []failure `json:"failure-details,omitempty"`
	}
	rep := map[string]any{
		"organization-name": org, "contact-info": "tlsrpt@" + org, "report-id": id,
		"date-range": map[string]string{"start-datetime": start.UTC().Format(time.RFC3339), "end-datetime": start.Add(24*time.Hour - time.Second).UTC().Format(time.RFC3339)},
	}
	var ps []policy
	for _, p := range policies {
		var x policy
		x.Policy.Type, x.Policy.Domain = p.Type, p.Domain
		x.Summary.Success, x.Summary.Failure = p.Success, p.Failure
		if p.Failure > 0 {
			x.Failures = []failure{{ResultType: p.FailureType, SendingIP: p.SendingIP, ReceivingMX: p.MXHost, Count: p.Failure}}
		}
		ps = append(ps, x)
	}
	rep["policies"] = ps
	b, _ := json.Marshal(rep)
	return b
}

// Attachment is a file to attach to a message.
type Attachment struct {
	Name, ContentType string
	Data              []byte
}

// Message is the mail a reporter sends: a short text part and the
// attachments, base64-encoded.
func Message(from, to, subject string, atts ...Attachment) []byte {
	var b bytes.Buffer
	const boundary = "==report-boundary=="
	fmt.Fprintf(&b, "From: %s\r\nTo: %s\r\nSubject: %s\r\nDate: %s\r\nMessage-ID: <%d.report@%s>\r\nMIME-Version: 1.0\r\n",
		from, to, subject, time.Now().UTC().Format(time.RFC1123Z), time.Now().UnixNano(), strings.SplitN(from, "@", 2)[1])
	fmt.Fprintf(&b, "Content-Type: multipart/mixed; boundary=\"%s\"\r\n\r\n", boundary)
	fmt.Fprintf(&b, "--%s\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nThis is an aggregate report.\r\n", boundary)
	for _, a := range atts {
		fmt.Fprintf(&b, "--%s\r\nContent-Type: %s; name=\"%s\"\r\nContent-Disposition: attachment; filename=\"%s\"\r\nContent-Transfer-Encoding: base64\r\n\r\n",
			boundary, a.ContentType, a.Name, a.Name)
		enc := base64.StdEncoding.EncodeToString(a.Data)
		for len(enc) > 76 {
			b.WriteString(enc[:76] + "\r\n")
			enc = enc[76:]
		}
		b.WriteString(enc + "\r\n")
	}
	fmt.Fprintf(&b, "--%s--\r\n", boundary)
	return b.Bytes()
}
