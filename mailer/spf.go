package mailer

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/miekg/dns"
)

// SPF results (RFC 7208 §2.6).
const (
	SPFPass      = "pass"
	SPFFail      = "fail"
	SPFSoftFail  = "softfail"
	SPFNeutral   = "neutral"
	SPFNone      = "none"
	SPFPermError = "permerror"
	SPFTempError = "temperror"
)

// SPF limits of RFC 7208 §4.6.4.
const (
	spfMaxLookups = 10 // include, a, mx, ptr, exists and redirect together
	spfMaxVoid    = 2  // lookups answering NXDOMAIN or nothing
	spfMaxNames   = 10 // MX or PTR names looked at by one mx or ptr term
)

// SPFTerm is one directive of an SPF record: a qualifier and a mechanism.
type SPFTerm struct {
	Qualifier byte   // '+', '-', '~' or '?'
	Mechanism string // all, include, a, mx, ptr, ip4, ip6 or exists
	Domain    string // the domain-spec of include, a, mx, ptr, exists; "" for the current domain
	Net       netip.Prefix
	Prefix4   int // CIDR length of a and mx for IPv4 (32 when absent)
	Prefix6   int // and for IPv6 (128 when absent)
}

// SPFRecord is a parsed SPF record.
type SPFRecord struct {
	Terms    []SPFTerm
	Redirect string // the redirect= modifier; "" when absent
	Exp      string // the exp= modifier; "" when absent
}

// ParseSPF parses an SPF record by the grammar of RFC 7208 §4.6.1 and §5–6.
// The error says which term is wrong and why, for people.
func ParseSPF(txt string) (*SPFRecord, error) {
	fields := strings.Fields(txt)
	if len(fields) == 0 || !strings.EqualFold(fields[0], "v=spf1") {
		return nil, errors.New("it does not start with v=spf1")
	}
	if strings.ContainsAny(txt, "\t\r\n") {
		return nil, errors.New("terms must be separated by spaces only")
	}
	rec := &SPFRecord{}
	for _, f := range fields[1:] {
		if i := strings.IndexAny(f, "=:/"); i > 0 && f[i] == '=' {
			name, val := strings.ToLower(f[:i]), f[i+1:]
			if !validModifierName(name) {
				return nil, fmt.Errorf("%q is not a valid modifier name", f[:i])
			}
			if err := checkMacroString(val); err != nil {
				return nil, fmt.Errorf("%s: %v", f, err)
			}
			switch name {
			case "redirect", "exp":
				if err := checkDomainSpec(val); err != nil {
					return nil, fmt.Errorf("%s: %v", f, err)
				}
				dst := &rec.Redirect
				if name == "exp" {
					dst = &rec.Exp
				}
				if *dst != "" {
					return nil, fmt.Errorf("the %s= modifier appears twice", name)
				}
				*dst = val
			}
			continue
		}
		t, err := parseSPFTerm(f)
		if err != nil {
			return nil, err
		}
		rec.Terms = append(rec.Terms, t)
	}
	return rec, nil
}

func parseSPFTerm(f string) (SPFTerm, error) {
	t := SPFTerm{Qualifier: '+', Prefix4: 32, Prefix6: 128}
	if strings.ContainsRune("+-~?", rune(f[0])) {
		t.Qualifier, f = f[0], f[1:]
	}
	name, arg, hasArg := strings.Cut(f, ":")
	name = strings.ToLower(name)
	cidr := ""
	if !hasArg && (strings.HasPrefix(name, "a/") || strings.HasPrefix(name, "mx/")) {
		name, cidr, _ = strings.Cut(name, "/")
		cidr = "/" + cidr
	} else if hasArg && (name == "a" || name == "mx") {
		if i := strings.Index(arg, "/"); i >= 0 {
			arg, cidr = arg[:i], arg[i:]
		}
	}
	t.Mechanism = name
	switch name {
	case "all":
		if hasArg {
			return t, fmt.Errorf("%q: all takes no argument", f)
		}
	case "include", "exists":
		if !hasArg || arg == "" {
			return t, fmt.Errorf("%q: %s needs a domain, e.g. %s:_spf.example.com", f, name, name)
		}
		fallthrough
	case "a", "mx", "ptr":
		if hasArg {
			if err := checkDomainSpec(arg); err != nil {
				return t, fmt.Errorf("%q: %v", f, err)
			}
			t.Domain = arg
		}
		if cidr != "" {
			if name != "a" && name != "mx" {
				return t, fmt.Errorf("%q: %s takes no prefix length", f, name)
			}
			var err error
			if t.Prefix4, t.Prefix6, err = parseDualCIDR(cidr); err != nil {
				return t, fmt.Errorf("%q: %v", f, err)
			}
		}
	case "ip4", "ip6":
		if !hasArg {
			return t, fmt.Errorf("%q: %s needs an address, e.g. %s", f, name, map[string]string{"ip4": "ip4:192.0.2.10", "ip6": "ip6:2001:db8::10"}[name])
		}
		addr, bits, hasBits := strings.Cut(arg, "/")
		a, err := netip.ParseAddr(addr)
		if err != nil || a.Zone() != "" || (name == "ip4") != a.Is4() {
			return t, fmt.Errorf("%q: %q is not an IPv%s address", f, addr, name[2:])
		}
		n := a.BitLen()
		if hasBits {
			if n, err = strconv.Atoi(bits); err != nil || n < 0 || n > a.BitLen() || bits != strconv.Itoa(n) {
				return t, fmt.Errorf("%q: the prefix length must be 0 to %d", f, a.BitLen())
			}
		}
		t.Net = netip.PrefixFrom(a, n).Masked()
	default:
		return t, fmt.Errorf("%q is not an SPF mechanism (all, include, a, mx, ptr, ip4, ip6, exists) or modifier", f)
	}
	return t, nil
}

func parseDualCIDR(s string) (int, int, error) {
	p4, p6 := 32, 128
	v4, v6, dual := strings.Cut(s, "//")
	v4 = strings.TrimPrefix(v4, "/")
	if dual {
		// "//64" (IPv6 only) or "/24//64".
		n, err := strconv.Atoi(v6)
		if err != nil || n < 0 || n > 128 || v6 != strconv.Itoa(n) {
			return 0, 0, errors.New("the IPv6 prefix length must be 0 to 128")
		}
		p6 = n
	}
	if v4 != "" || !dual {
		n, err := strconv.Atoi(v4)
		if err != nil || n < 0 || n > 32 || v4 != strconv.Itoa(n) {
			return 0, 0, errors.New("the IPv4 prefix length must be 0 to 32")
		}
		p4 = n
	}
	return p4, p6, nil
}

func validModifierName(n string) bool {
	if n == "" || n[0] < 'a' || n[0] > 'z' {
		return false
	}
	for _, r := range n {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}

// checkMacroString checks the macro syntax of RFC 7208 §7.1.
func checkMacroString(s string) error {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x21 || c > 0x7e {
			return fmt.Errorf("character %q is not allowed", c)
		}
		if c != '%' {
			continue
		}
		if i+1 >= len(s) {
			return errors.New("a lone % (write %% for a percent sign)")
		}
		switch s[i+1] {
		case '%', '_', '-':
			i++
			continue
		case '{':
		default:
			return fmt.Errorf("%%%c is not a macro (write %%%% for a percent sign)", s[i+1])
		}
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			return errors.New("a macro %{ is not closed")
		}
		body := strings.ToLower(s[i+2 : i+end])
		if body == "" || !strings.ContainsRune("slodiphcrtv", rune(body[0])) {
			return fmt.Errorf("%%{%s} is not a known macro letter", body)
		}
		rest := body[1:]
		for len(rest) > 0 && rest[0] >= '0' && rest[0] <= '9' {
			rest = rest[1:]
		}
		rest = strings.TrimPrefix(rest, "r")
		for _, d := range rest {
			if !strings.ContainsRune(".-+,/_=", d) {
				return fmt.Errorf("%%{%s} has an invalid delimiter %q", body, d)
			}
		}
		i += end
	}
	return nil
}

// checkDomainSpec checks a domain-spec: a macro string whose end is a
// macro or a top label of letters, digits and hyphens, not all digits.
func checkDomainSpec(s string) error {
	if err := checkMacroString(s); err != nil {
		return err
	}
	if strings.HasSuffix(s, "}") {
		return nil
	}
	s = strings.TrimSuffix(s, ".")
	i := strings.LastIndexByte(s, '.')
	if i < 0 {
		return fmt.Errorf("%q is not a full domain name", s)
	}
	top := s[i+1:]
	allDigits := true
	for _, r := range top {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
			return fmt.Errorf("%q does not end in a valid top-level label", s)
		}
		allDigits = allDigits && r >= '0' && r <= '9'
	}
	if top == "" || allDigits || top[0] == '-' || top[len(top)-1] == '-' {
		return fmt.Errorf("%q does not end in a valid top-level label", s)
	}
	return nil
}

// SPFEvaluation is what evaluating a domain's SPF policy found.
type SPFEvaluation struct {
	Record  string            // the SPF record of the domain itself; "" when none
	Lookups int               // DNS-querying terms met when no term matches (the most a receiver can need)
	Voids   int               // of them, lookups that found nothing
	Err     error             // why the policy is a permerror (syntax, limits, include without SPF); nil otherwise
	Results map[string]string // result per sending IP (SPFPass, SPFFail, …)
	Matched map[string]string // the term that decided each IP's result; "" for none (default neutral)
}

// EvaluateSPF reads domain's SPF policy through res and evaluates it the
// way a receiver does (RFC 7208 check_host) for each ip, and once for an
// address no term matches, which walks every include and redirect and so
// counts the DNS lookups a receiver may need.
func EvaluateSPF(ctx context.Context, res *Resolver, domain string, ips []netip.Addr) *SPFEvaluation {
	ev := &SPFEvaluation{Results: map[string]string{}, Matched: map[string]string{}}
	// The counting walk does not stop at the limits, so the report can
	// say how far over them the policy is.
	full := &spfEval{ctx: ctx, res: res, record: &ev.Record, counting: true}
	_, _, err := full.checkHost(netip.Addr{}, domain, 0)
	ev.Lookups, ev.Voids = full.lookups, full.voids
	var pe *spfPermError
	switch {
	case errors.As(err, &pe):
		ev.Err = pe
	case ev.Lookups > spfMaxLookups:
		ev.Err = permErr("it needs %d DNS lookups (include, a, mx, ptr, exists and redirect, counted through every include); RFC 7208 allows %d", ev.Lookups, spfMaxLookups)
	case ev.Voids > spfMaxVoid:
		ev.Err = permErr("%d of its DNS lookups find nothing (void lookups); RFC 7208 allows %d", ev.Voids, spfMaxVoid)
	}
	for _, ip := range ips {
		e := &spfEval{ctx: ctx, res: res}
		result, term, err := e.checkHost(ip, domain, 0)
		if err != nil && result == "" {
			result = SPFTempError
		}
		ev.Results[ip.String()], ev.Matched[ip.String()] = result, term
	}
	return ev
}

// spfPermError is a policy error a receiver answers with permerror.
type spfPermError struct{ msg string }

func (e *spfPermError) Error() string { return e.msg }

func permErr(format string, a ...any) error { return &spfPermError{fmt.Sprintf(format, a...)} }

type spfEval struct {
	ctx     context.Context
	res     *Resolver
	lookups int
	voids   int
	record  *string // set to the top-level record when not nil
	// counting walks past the lookup limits (up to a bound that stops
	// loops) to count them all.
	counting bool
}

// spfRecords returns the SPF records among a name's TXT records.
func spfRecords(txts []string) []string {
	var out []string
	for _, t := range txts {
		l := strings.ToLower(t)
		if l == "v=spf1" || strings.HasPrefix(l, "v=spf1 ") {
			out = append(out, t)
		}
	}
	return out
}

// checkHost is RFC 7208 §4: the result, the term that decided it, and for
// permerror and temperror the reason.
func (e *spfEval) checkHost(ip netip.Addr, domain string, depth int) (string, string, error) {
	txts, err := e.res.LookupTXT(e.ctx, domain)
	if err != nil {
		return SPFTempError, "", err
	}
	recs := spfRecords(txts)
	switch {
	case len(recs) == 0:
		return SPFNone, "", nil
	case len(recs) > 1:
		return SPFPermError, "", permErr("%s publishes %d SPF records", domain, len(recs))
	}
	if depth == 0 && e.record != nil {
		*e.record = recs[0]
	}
	rec, err := ParseSPF(recs[0])
	if err != nil {
		return SPFPermError, "", permErr("the SPF record of %s is invalid: %v", domain, err)
	}
	for _, t := range rec.Terms {
		match, err := e.match(ip, domain, t, depth)
		if err != nil {
			return resultOf(err), termString(t), err
		}
		if match {
			return qualifierResult(t.Qualifier), termString(t), nil
		}
	}
	if rec.Redirect != "" && !hasAll(rec) {
		if err := e.count(); err != nil {
			return SPFPermError, "redirect=" + rec.Redirect, err
		}
		target := e.expand(rec.Redirect, ip, domain)
		r, term, err := e.checkHost(ip, target, depth+1)
		if r == SPFNone {
			return SPFPermError, "redirect=" + rec.Redirect, permErr("redirect=%s: %s has no SPF record", rec.Redirect, target)
		}
		return r, term, err
	}
	return SPFNeutral, "", nil
}

func hasAll(r *SPFRecord) bool {
	for _, t := range r.Terms {
		if t.Mechanism == "all" {
			return true
		}
	}
	return false
}

func resultOf(err error) string {
	var pe *spfPermError
	if errors.As(err, &pe) {
		return SPFPermError
	}
	return SPFTempError
}

func qualifierResult(q byte) string {
	return map[byte]string{'+': SPFPass, '-': SPFFail, '~': SPFSoftFail, '?': SPFNeutral}[q]
}

func termString(t SPFTerm) string {
	s := t.Mechanism
	if t.Qualifier != '+' {
		s = string(t.Qualifier) + s
	}
	switch {
	case t.Net.IsValid():
		s += ":" + t.Net.String()
	case t.Domain != "":
		s += ":" + t.Domain
	}
	return s
}

// count counts one DNS-querying term against the limit of 10.
func (e *spfEval) count() error {
	e.lookups++
	if e.lookups > spfMaxLookups && (!e.counting || e.lookups > 50) {
		return permErr("it needs more than %d DNS lookups; RFC 7208 allows %d", spfMaxLookups, spfMaxLookups)
	}
	return nil
}

// void counts a lookup that found nothing against the limit of 2.
func (e *spfEval) void(n int) error {
	if n > 0 {
		return nil
	}
	e.voids++
	if e.voids > spfMaxVoid && !e.counting {
		return permErr("more than %d lookups found nothing (void lookups)", spfMaxVoid)
	}
	return nil
}

func (e *spfEval) match(ip netip.Addr, domain string, t SPFTerm, depth int) (bool, error) {
	target := domain
	if t.Domain != "" {
		target = e.expand(t.Domain, ip, domain)
	}
	switch t.Mechanism {
	case "all":
		return true, nil
	case "ip4", "ip6":
		return ip.IsValid() && t.Net.Contains(ip.Unmap()), nil
	case "include":
		if err := e.count(); err != nil {
			return false, err
		}
		if depth > 20 {
			return false, permErr("include:%s loops", t.Domain)
		}
		r, _, err := e.checkHost(ip, target, depth+1)
		switch r {
		case SPFPass:
			return true, nil
		case SPFNone:
			return false, permErr("include:%s names a domain without an SPF record", t.Domain)
		case SPFPermError, SPFTempError:
			return false, err
		}
		return false, nil
	case "a":
		if err := e.count(); err != nil {
			return false, err
		}
		return e.matchHost(ip, target, t)
	case "mx":
		if err := e.count(); err != nil {
			return false, err
		}
		mxs, err := e.res.LookupRaw(e.ctx, target, dns.TypeMX)
		if err != nil {
			return false, err
		}
		if err := e.void(len(mxs)); err != nil {
			return false, err
		}
		if len(mxs) > spfMaxNames {
			return false, permErr("mx:%s has more than %d MX hosts", target, spfMaxNames)
		}
		matched := false
		for _, mx := range mxs {
			_, host, _ := strings.Cut(mx, " ")
			if host == "" || host == "." {
				continue
			}
			m, err := e.matchHost(ip, host, t)
			if err != nil {
				return false, err
			}
			matched = matched || m
		}
		return matched, nil
	case "ptr":
		if err := e.count(); err != nil {
			return false, err
		}
		if !ip.IsValid() {
			return false, nil
		}
		names, err := e.res.LookupAddr(e.ctx, ip)
		if err != nil {
			return false, nil // a failed PTR lookup is no match (§5.5)
		}
		for i, n := range names {
			if i >= spfMaxNames {
				break
			}
			if n != target && !strings.HasSuffix(n, "."+target) {
				continue
			}
			if ok, _ := e.matchHost(ip, n, SPFTerm{Prefix4: 32, Prefix6: 128}); ok {
				return true, nil
			}
		}
		return false, nil
	case "exists":
		if err := e.count(); err != nil {
			return false, err
		}
		addrs, err := e.res.LookupRaw(e.ctx, target, dns.TypeA)
		if err != nil {
			return false, err
		}
		if err := e.void(len(addrs)); err != nil {
			return false, err
		}
		return len(addrs) > 0 && ip.IsValid(), nil
	}
	return false, permErr("unknown mechanism %s", t.Mechanism)
}

// matchHost looks up host's addresses of ip's family and tells whether
// one of them, within the term's prefix length, is ip. Without an ip (the
// counting walk) it asks for A records.
func (e *spfEval) matchHost(ip netip.Addr, host string, t SPFTerm) (bool, error) {
	qt, bits := uint16(dns.TypeA), t.Prefix4
	if ip.IsValid() && ip.Unmap().Is6() {
		qt, bits = dns.TypeAAAA, t.Prefix6
	}
	addrs, err := e.res.LookupRaw(e.ctx, host, qt)
	if err != nil {
		return false, err
	}
	if err := e.void(len(addrs)); err != nil {
		return false, err
	}
	if !ip.IsValid() {
		return false, nil
	}
	for _, a := range addrs {
		p, err := netip.ParseAddr(a)
		if err != nil {
			continue
		}
		if pr, err := p.Prefix(bits); err == nil && pr.Contains(ip.Unmap()) {
			return true, nil
		}
	}
	return false, nil
}

// expand expands the macros of RFC 7208 §7 that need no DNS: s, l, o, d,
// i, h, v with digits, r and delimiters. The sender is postmaster@domain
// (what a receiver uses for a bounce); p (PTR) expands to "unknown".
func (e *spfEval) expand(spec string, ip netip.Addr, domain string) string {
	if !strings.Contains(spec, "%") {
		return strings.TrimSuffix(strings.ToLower(spec), ".")
	}
	var b strings.Builder
	for i := 0; i < len(spec); i++ {
		c := spec[i]
		if c != '%' || i+1 >= len(spec) {
			b.WriteByte(c)
			continue
		}
		i++
		switch spec[i] {
		case '%':
			b.WriteByte('%')
			continue
		case '_':
			b.WriteByte(' ')
			continue
		case '-':
			b.WriteString("%20")
			continue
		}
		end := strings.IndexByte(spec[i:], '}')
		if end < 0 {
			break
		}
		body := strings.ToLower(spec[i+1 : i+end])
		i += end
		var val string
		switch body[0] {
		case 's':
			val = "postmaster@" + domain
		case 'l':
			val = "postmaster"
		case 'o', 'd', 'h':
			val = domain
		case 'i':
			if ip.Is4() || ip.Is4In6() {
				val = ip.Unmap().String()
			} else if ip.IsValid() {
				x := ip.StringExpanded()
				x = strings.ReplaceAll(x, ":", "")
				val = strings.Join(strings.Split(x, ""), ".")
			} else {
				val = "192.0.2.0"
			}
		case 'v':
			val = "in-addr"
			if ip.Is6() && !ip.Is4In6() {
				val = "ip6"
			}
		default:
			val = "unknown"
		}
		rest := body[1:]
		digits := 0
		for len(rest) > 0 && rest[0] >= '0' && rest[0] <= '9' {
			digits = digits*10 + int(rest[0]-'0')
			rest = rest[1:]
		}
		reverse := strings.HasPrefix(rest, "r")
		delims := strings.TrimPrefix(rest, "r")
		if delims == "" {
			delims = "."
		}
		parts := strings.FieldsFunc(val, func(r rune) bool { return strings.ContainsRune(delims, r) })
		if reverse {
			for l, r := 0, len(parts)-1; l < r; l, r = l+1, r-1 {
				parts[l], parts[r] = parts[r], parts[l]
			}
		}
		if digits > 0 && digits < len(parts) {
			parts = parts[len(parts)-digits:]
		}
		b.WriteString(strings.Join(parts, "."))
	}
	return strings.TrimSuffix(strings.ToLower(b.String()), ".")
}
