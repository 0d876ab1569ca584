package e2e

import (
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"

	"github.com/herald-mail/herald/models"
)

// DNS is a small authoritative DNS server on 127.0.0.1 (UDP and TCP on one
// port) answering from records the test adds: a real protocol peer for
// public names. A name with no record of any type, and nothing below it,
// is NXDOMAIN; a name with records of other types answers NODATA. Like a
// real server, it truncates a UDP answer larger than the client's EDNS0
// buffer (512 bytes without EDNS0), so the client retries over TCP.
type DNS struct {
	// Addr is host:port, for HERALD_DNS_SERVER.
	Addr string

	mu  sync.Mutex
	rrs map[string][]dns.RR // by "TYPE name."
}

// StartDNS starts a DNS server that stops when the test ends.
func StartDNS(t testing.TB) *DNS {
	t.Helper()
	d := &DNS{rrs: map[string][]dns.RR{}}
	var pc net.PacketConn
	var l net.Listener
	for range 20 {
		var err error
		if pc, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		if l, err = net.Listen("tcp", pc.LocalAddr().String()); err == nil {
			break
		}
		pc.Close()
		pc = nil
	}
	if pc == nil {
		t.Fatal("e2e: no port free for UDP and TCP at once")
	}
	d.Addr = pc.LocalAddr().String()
	udp := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(d.serve)}
	tcp := &dns.Server{Listener: l, Handler: dns.HandlerFunc(d.serve)}
	go udp.ActivateAndServe()
	go tcp.ActivateAndServe()
	t.Cleanup(func() { udp.Shutdown(); tcp.Shutdown() })
	return d
}

// Add adds records in zone-file syntax, e.g. "example.com. 300 IN MX 10
// mx.example.com." or "example.com. 300 IN MX 0 ." (null MX). A TXT value
// longer than 255 bytes may be given whole with AddTXT.
func (d *DNS) Add(t testing.TB, lines ...string) {
	t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, l := range lines {
		rr, err := dns.NewRR(l)
		if err != nil {
			t.Fatalf("e2e: dns record %q: %v", l, err)
		}
		k := dns.TypeToString[rr.Header().Rrtype] + " " + strings.ToLower(rr.Header().Name)
		d.rrs[k] = append(d.rrs[k], rr)
	}
}

// AddTXT adds a TXT record, split into strings of at most 255 bytes.
func (d *DNS) AddTXT(t testing.TB, name, value string) {
	t.Helper()
	var parts []string
	for v := value; len(v) > 0; {
		n := min(len(v), 250)
		parts = append(parts, `"`+strings.ReplaceAll(v[:n], `"`, `\"`)+`"`)
		v = v[n:]
	}
	d.Add(t, dns.Fqdn(name)+" 300 IN TXT "+strings.Join(parts, " "))
}

// Records publishes records as Herald's pages show them (their zone
// lines, long TXT values split into 255-byte strings as a DNS host stores
// them).
func (d *DNS) Records(t testing.TB, recs ...models.DNSRecord) {
	t.Helper()
	for _, r := range recs {
		d.Add(t, r.ZoneLine())
	}
}

// Remove drops every record of type typ (e.g. "MX") at name.
func (d *DNS) Remove(name, typ string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.rrs, typ+" "+strings.ToLower(dns.Fqdn(name)))
}

// Provider publishes an MX record for each domain naming mxHost, and mxHost's
// A record: the domains share one receiving provider.
func (d *DNS) Provider(t testing.TB, mxHost, ip string, domains ...string) {
	t.Helper()
	mxHost = dns.Fqdn(mxHost)
	d.Add(t, mxHost+" 300 IN A "+ip)
	for _, dom := range domains {
		d.Add(t, dns.Fqdn(dom)+" 300 IN MX 10 "+mxHost)
	}
}

func (d *DNS) serve(w dns.ResponseWriter, r *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(r)
	m.Authoritative = true
	if len(r.Question) == 0 {
		m.Rcode = dns.RcodeFormatError
		w.WriteMsg(m)
		return
	}
	q := r.Question[0]
	name := strings.ToLower(q.Name)
	d.mu.Lock()
	m.Answer = append(m.Answer, d.rrs[dns.TypeToString[q.Qtype]+" "+name]...)
	if len(m.Answer) == 0 && q.Qtype != dns.TypeCNAME {
		m.Answer = append(m.Answer, d.rrs["CNAME "+name]...)
	}
	exists := false
	for k := range d.rrs {
		if n := k[strings.IndexByte(k, ' ')+1:]; n == name || strings.HasSuffix(n, "."+name) {
			exists = true
			break
		}
	}
	d.mu.Unlock()
	if !exists {
		m.Rcode = dns.RcodeNameError
	}
	if _, udp := w.LocalAddr().(*net.UDPAddr); udp {
		size := dns.MinMsgSize
		if o := r.IsEdns0(); o != nil {
			size = max(int(o.UDPSize()), dns.MinMsgSize)
		}
		m.Truncate(size)
	}
	w.WriteMsg(m)
}
