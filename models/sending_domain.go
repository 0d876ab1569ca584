package models

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"time"

	"gorm.io/gorm"
)

// SendingDomain is a domain Herald signs mail for: its DKIM keys (private
// halves sealed under the server secret), the return-path (bounce) domain
// and the last DNS check.
type SendingDomain struct {
	ID               int64
	Domain           string
	Selector         string
	RSAPrivate       string `gorm:"column:rsa_private"`
	RSAPublic        string `gorm:"column:rsa_public"` // base64 DER (SubjectPublicKeyInfo)
	Ed25519Selector  string `gorm:"column:ed25519_selector"`
	Ed25519Private   string `gorm:"column:ed25519_private"`
	Ed25519Public    string `gorm:"column:ed25519_public"` // base64 of the raw 32 bytes
	ReturnPathDomain string
	SPFIncludes      string     `gorm:"column:spf_includes"` // space-separated include: domains (a relay's)
	DNSCheckedAt     *time.Time `gorm:"column:dns_checked_at"`
	DNSOK            bool       `gorm:"column:dns_ok"`
	DNSReport        string     `gorm:"column:dns_report"` // DNSCheck as JSON, written by SaveDNSCheck
	CreatedAt        time.Time
	UpdatedAt        time.Time
}

// SendingDomainOptions are the choices made when adding a domain.
type SendingDomainOptions struct {
	// Selector is the DKIM selector; "" means "herald" plus the year and
	// month, so a later rotation gets a new name.
	Selector string
	// Ed25519 adds a second, Ed25519, key and signature.
	Ed25519 bool
	// ReturnPathDomain receives bounces; "" means "bounces." + domain.
	ReturnPathDomain string
	// SPFIncludes are include: terms for the return-path SPF record (a
	// relay's SPF domain), space- or comma-separated; "" means none.
	SPFIncludes string
}

// SendingDomainForm is the dashboard's "add a sending domain" form.
type SendingDomainForm struct {
	Domain string
	SendingDomainOptions
}

// Validate normalises the form (lower case, punycode, defaults filled in)
// and returns a field→message map, empty when the domain may be added.
func (f *SendingDomainForm) Validate() map[string]string {
	errs := map[string]string{}
	d, problem := normalizeHostname(f.Domain, false)
	switch {
	case problem != "":
		errs["domain"] = problem
	case !strings.Contains(d, "."):
		errs["domain"] = "Use the full domain you send from, e.g. news.example.com (it has no dot)."
	default:
		f.Domain = d
	}
	f.Selector = strings.ToLower(strings.TrimSpace(f.Selector))
	if f.Selector != "" {
		if msg := validSelector(f.Selector); msg != "" {
			errs["selector"] = msg
		}
	}
	if rp := strings.TrimSpace(f.ReturnPathDomain); rp != "" {
		n, problem := normalizeHostname(rp, false)
		switch {
		case problem != "":
			errs["return_path_domain"] = problem
		case errs["domain"] == "" && n != f.Domain && !strings.HasSuffix(n, "."+f.Domain):
			errs["return_path_domain"] = "The return-path domain must be " + f.Domain + " or a subdomain of it (e.g. bounces." + f.Domain + "), or SPF will not align for DMARC."
		default:
			f.ReturnPathDomain = n
		}
	}
	incs, msg := normalizeIncludes(f.SPFIncludes)
	if msg != "" {
		errs["spf_includes"] = msg
	}
	f.SPFIncludes = incs
	return errs
}

// ValidationError carries field messages for a form the store refused.
type ValidationError struct{ Fields map[string]string }

func (e *ValidationError) Error() string {
	var parts []string
	for k, v := range e.Fields {
		parts = append(parts, k+": "+v)
	}
	sort.Strings(parts)
	return "invalid input: " + strings.Join(parts, "; ")
}

// normalizeHostname lower-cases a host name, turns an internationalised
// one into punycode and checks its shape. It returns the name, or a
// message saying what is wrong. allowUnderscore admits the underscore
// labels of SPF and DKIM names ("_spf.relay.example").
func normalizeHostname(raw string, allowUnderscore bool) (string, string) {
	s := strings.ToLower(strings.TrimSuffix(strings.TrimSpace(raw), "."))
	if s == "" {
		return "", "Enter a domain name, e.g. example.com."
	}
	if _, err := netip.ParseAddr(s); err == nil {
		return "", "Enter a domain name, not an IP address."
	}
	if strings.ContainsAny(s, "@/: ") {
		return "", fmt.Sprintf("%q is not a domain name: leave out any address, scheme, path or port (e.g. example.com).", raw)
	}
	if !allowUnderscore || !strings.Contains(s, "_") {
		ascii, err := idnaProfile.ToASCII(s)
		if err != nil {
			return "", fmt.Sprintf("%q is not a valid domain name: use letters, digits, hyphens and dots (e.g. mail.example.com).", raw)
		}
		s = ascii
	}
	if len(s) > 253 {
		return "", "The domain name is longer than 253 characters."
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 {
			return "", fmt.Sprintf("%q has an empty or over-long (more than 63 characters) part between dots.", raw)
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return "", fmt.Sprintf("%q has a part that starts or ends with a hyphen.", raw)
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || allowUnderscore && r == '_') {
				return "", fmt.Sprintf("%q contains %q; use letters, digits, hyphens and dots.", raw, r)
			}
		}
	}
	return s, ""
}

func validSelector(sel string) string {
	if len(sel) > 63 {
		return "The selector is longer than 63 characters."
	}
	for i, r := range sel {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' && i > 0) {
			return "Use letters, digits and hyphens for the selector (e.g. herald2026), starting with a letter or digit."
		}
	}
	return ""
}

// normalizeIncludes checks a space- or comma-separated list of SPF include
// domains and returns it space-separated.
func normalizeIncludes(raw string) (string, string) {
	var out []string
	for _, inc := range splitList(raw) {
		n, problem := normalizeHostname(strings.TrimPrefix(inc, "include:"), true)
		if problem != "" {
			return raw, "SPF include: " + problem
		}
		if !strings.Contains(n, ".") {
			return raw, fmt.Sprintf("SPF include %q is not a full domain (e.g. _spf.relay.example).", inc)
		}
		out = append(out, n)
	}
	if len(out) > 5 {
		return raw, "At most 5 SPF includes: each costs DNS lookups, and SPF allows 10 in all."
	}
	return strings.Join(out, " "), ""
}

// DKIMKeys are a sending domain's unsealed signing keys.
type DKIMKeys struct {
	Domain          string
	Selector        string
	RSA             *rsa.PrivateKey
	Ed25519Selector string
	Ed25519         ed25519.PrivateKey // nil when the domain has none
}

// ErrBadSecret is returned when sealed keys do not open under the secret.
var ErrBadSecret = errors.New("the DKIM keys do not decrypt with this server secret")

// CreateSendingDomain adds a domain, generates its RSA-2048 key (and an
// Ed25519 one when asked) and stores the private keys sealed with AES-GCM
// under secret. A *ValidationError when the domain or options are not
// valid, ErrConflict when the domain exists.
func (s *Store) CreateSendingDomain(ctx context.Context, domain, secret string, o SendingDomainOptions) (*SendingDomain, error) {
	f := SendingDomainForm{Domain: domain, SendingDomainOptions: o}
	if errs := f.Validate(); len(errs) > 0 {
		return nil, fmt.Errorf("models: add sending domain %q: %w", domain, &ValidationError{errs})
	}
	domain, o = f.Domain, f.SendingDomainOptions
	d := &SendingDomain{Domain: domain, Selector: o.Selector, ReturnPathDomain: o.ReturnPathDomain, SPFIncludes: o.SPFIncludes}
	if d.Selector == "" {
		d.Selector = "herald" + now().UTC().Format("200601")
	}
	if d.ReturnPathDomain == "" {
		d.ReturnPathDomain = "bounces." + domain
	}
	if err := d.generateKeys(secret, o.Ed25519); err != nil {
		return nil, fmt.Errorf("models: add sending domain: %w", err)
	}
	d.CreatedAt, d.UpdatedAt = dbNow(), dbNow()
	err := s.tx(ctx, func(tx *gorm.DB) error {
		var n int64
		if err := tx.Model(&SendingDomain{}).Where("domain = ?", domain).Count(&n).Error; err != nil {
			return err
		}
		if n > 0 {
			return ErrConflict
		}
		return tx.Create(d).Error
	})
	if err != nil {
		return nil, fmt.Errorf("models: add sending domain %s: %w", domain, err)
	}
	return d, nil
}

// generateKeys makes a new RSA-2048 key, and an Ed25519 one when ed is
// set (its selector is the RSA selector plus "e"), sealing the private
// halves under secret.
func (d *SendingDomain) generateKeys(secret string, ed bool) error {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return err
	}
	d.RSAPublic = base64.StdEncoding.EncodeToString(pub)
	if d.RSAPrivate, err = seal(secret, x509.MarshalPKCS1PrivateKey(key)); err != nil {
		return err
	}
	d.Ed25519Selector, d.Ed25519Public, d.Ed25519Private = "", "", ""
	if ed {
		epub, epriv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return err
		}
		d.Ed25519Selector = d.Selector + "e"
		d.Ed25519Public = base64.StdEncoding.EncodeToString(epub)
		if d.Ed25519Private, err = seal(secret, epriv.Seed()); err != nil {
			return err
		}
	}
	return nil
}

// RotateDKIMKey replaces a domain's signing keys with new ones under a new
// selector (selector "" picks "herald" plus the date, never the current
// one), keeping an Ed25519 key when the domain had one. The stored DNS
// check is cleared: the new key must be published and checked again.
// Leave the old selector's record published for a few days, for messages
// still in flight.
func (s *Store) RotateDKIMKey(ctx context.Context, id int64, secret, selector string) (*SendingDomain, error) {
	selector = strings.ToLower(strings.TrimSpace(selector))
	if selector != "" {
		if msg := validSelector(selector); msg != "" {
			return nil, fmt.Errorf("models: rotate DKIM key of %d: %w", id, &ValidationError{map[string]string{"selector": msg}})
		}
	}
	d, err := s.SendingDomain(ctx, id)
	if err != nil {
		return nil, err
	}
	if selector == d.Selector || selector != "" && selector+"e" == d.Ed25519Selector {
		return nil, fmt.Errorf("models: rotate DKIM key of %d: %w", id, &ValidationError{map[string]string{
			"selector": "Choose a selector other than the current one (" + d.Selector + "), so both keys can be published while mail signed with the old one is delivered."}})
	}
	if selector == "" {
		selector = nextSelector(d.Selector, now())
	}
	old := d.Selector
	d.Selector = selector
	if err := d.generateKeys(secret, d.Ed25519Private != ""); err != nil {
		return nil, fmt.Errorf("models: rotate DKIM key of %d: %w", id, err)
	}
	d.UpdatedAt = dbNow()
	res := s.conn(ctx).Exec(`UPDATE sending_domains SET selector = ?, rsa_private = ?, rsa_public = ?,
		ed25519_selector = ?, ed25519_private = ?, ed25519_public = ?,
		dns_checked_at = NULL, dns_ok = ?, dns_report = '', updated_at = ? WHERE id = ? AND selector = ?`,
		d.Selector, d.RSAPrivate, d.RSAPublic, d.Ed25519Selector, d.Ed25519Private, d.Ed25519Public, false, d.UpdatedAt, id, old)
	if res.Error != nil {
		return nil, fmt.Errorf("models: rotate DKIM key of %d: %w", id, res.Error)
	}
	if res.RowsAffected == 0 { // deleted or rotated by someone else meanwhile
		return nil, fmt.Errorf("models: rotate DKIM key of %d: %w", id, ErrConflict)
	}
	d.DNSCheckedAt, d.DNSOK, d.DNSReport = nil, false, ""
	return d, nil
}

// nextSelector names a rotated key: "herald" plus the month, or plus the
// day when that is the current selector, or with a counter after that.
func nextSelector(current string, t time.Time) string {
	t = t.UTC()
	for _, c := range []string{"herald" + t.Format("200601"), "herald" + t.Format("20060102")} {
		if c != current {
			return c
		}
	}
	for i := 2; ; i++ {
		if c := fmt.Sprintf("herald%s-%d", t.Format("20060102"), i); c != current {
			return c
		}
	}
}

// SendingDomain returns one sending domain.
func (s *Store) SendingDomain(ctx context.Context, id int64) (*SendingDomain, error) {
	var d SendingDomain
	if err := s.conn(ctx).First(&d, id).Error; err != nil {
		return nil, fmt.Errorf("models: sending domain %d: %w", id, notFound(err))
	}
	return &d, nil
}

// SendingDomainByName returns the sending domain for a domain name.
func (s *Store) SendingDomainByName(ctx context.Context, domain string) (*SendingDomain, error) {
	var d SendingDomain
	if err := s.conn(ctx).Where("domain = ?", strings.ToLower(domain)).First(&d).Error; err != nil {
		return nil, fmt.Errorf("models: sending domain %q: %w", domain, notFound(err))
	}
	return &d, nil
}

// SendingDomainsCovering returns the sending domains that are domain or
// one of its parents (for news.example.com: news.example.com and
// example.com), the candidates SigningDomain chooses from.
func (s *Store) SendingDomainsCovering(ctx context.Context, domain string) ([]SendingDomain, error) {
	var names []string
	for d := strings.ToLower(strings.TrimSuffix(domain, ".")); strings.Contains(d, "."); {
		names = append(names, d)
		_, d, _ = strings.Cut(d, ".")
	}
	var out []SendingDomain
	if len(names) == 0 {
		return out, nil
	}
	if err := s.conn(ctx).Where("domain IN ?", names).Order("domain").Find(&out).Error; err != nil {
		return nil, fmt.Errorf("models: sending domains covering %q: %w", domain, err)
	}
	return out, nil
}

// SigningDomain decides whose DKIM key signs mail From an address in
// fromDomain; the engine signs with it and the pre-send checklist reports
// it, so the two cannot disagree. It is chosen (a campaign's own choice,
// nil for none) when that is fromDomain or a parent of it, else the
// closest of domains that is (fromDomain itself, else its nearest parent).
// A parent's key gives d= the parent, which aligns with a From on its
// subdomain under relaxed DKIM alignment (DMARC adkim=r: the default, and
// what Herald's DMARC record sets). nil means no key covers fromDomain: the
// mail goes out unsigned.
func SigningDomain(domains []SendingDomain, chosen *SendingDomain, fromDomain string) *SendingDomain {
	from := strings.ToLower(strings.TrimSuffix(fromDomain, "."))
	covers := func(d *SendingDomain) bool {
		return d != nil && d.RSAPublic != "" && (from == d.Domain || strings.HasSuffix(from, "."+d.Domain))
	}
	if covers(chosen) {
		return chosen
	}
	var best *SendingDomain
	for i := range domains {
		if d := &domains[i]; covers(d) && (best == nil || len(d.Domain) > len(best.Domain)) {
			best = d
		}
	}
	return best
}

// SendingDomains returns every sending domain by name.
func (s *Store) SendingDomains(ctx context.Context) ([]SendingDomain, error) {
	var out []SendingDomain
	if err := s.conn(ctx).Order("domain").Find(&out).Error; err != nil {
		return nil, fmt.Errorf("models: sending domains: %w", err)
	}
	return out, nil
}

// DeleteSendingDomain removes a sending domain and its keys. Campaigns
// that named it keep running and sign with nothing (their column is set to
// NULL); ErrNotFound when there is no such domain.
func (s *Store) DeleteSendingDomain(ctx context.Context, id int64) error {
	res := s.conn(ctx).Exec("DELETE FROM sending_domains WHERE id = ?", id)
	if res.Error != nil {
		return fmt.Errorf("models: delete sending domain %d: %w", id, res.Error)
	}
	if res.RowsAffected == 0 {
		return fmt.Errorf("models: delete sending domain %d: %w", id, ErrNotFound)
	}
	return nil
}

// SaveDNSCheck records the outcome of a DNS check of a sending domain;
// report is DNSCheck.JSON().
func (s *Store) SaveDNSCheck(ctx context.Context, id int64, ok bool, report string) error {
	res := s.conn(ctx).Exec("UPDATE sending_domains SET dns_checked_at = ?, dns_ok = ?, dns_report = ?, updated_at = ? WHERE id = ?",
		dbNow(), ok, report, dbNow(), id)
	if res.Error != nil {
		return fmt.Errorf("models: save DNS check of %d: %w", id, res.Error)
	}
	if res.RowsAffected == 0 {
		return fmt.Errorf("models: save DNS check of %d: %w", id, ErrNotFound)
	}
	return nil
}

// Keys unseals the domain's signing keys with the server secret.
func (d *SendingDomain) Keys(secret string) (*DKIMKeys, error) {
	der, err := open(secret, d.RSAPrivate)
	if err != nil {
		return nil, fmt.Errorf("models: keys of %s: %w", d.Domain, err)
	}
	key, err := x509.ParsePKCS1PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("models: keys of %s: %w", d.Domain, err)
	}
	k := &DKIMKeys{Domain: d.Domain, Selector: d.Selector, RSA: key, Ed25519Selector: d.Ed25519Selector}
	if d.Ed25519Private != "" {
		seed, err := open(secret, d.Ed25519Private)
		if err != nil || len(seed) != ed25519.SeedSize {
			return nil, fmt.Errorf("models: ed25519 key of %s: %w", d.Domain, ErrBadSecret)
		}
		k.Ed25519 = ed25519.NewKeyFromSeed(seed)
	}
	return k, nil
}

func sealKey(secret string) []byte {
	sum := sha256.Sum256([]byte("herald dkim key seal v1\x00" + secret))
	return sum[:]
}

func seal(secret string, plain []byte) (string, error) {
	block, err := aes.NewCipher(sealKey(secret))
	if err != nil {
		return "", err
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return "", err
	}
	nonce := make([]byte, gcm.NonceSize(), gcm.NonceSize()+len(plain)+gcm.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	return "v1:" + base64.StdEncoding.EncodeToString(gcm.Seal(nonce, nonce, plain, nil)), nil
}

func open(secret, sealed string) ([]byte, error) {
	raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(sealed, "v1:"))
	if err != nil || !strings.HasPrefix(sealed, "v1:") {
		return nil, ErrBadSecret
	}
	block, err := aes.NewCipher(sealKey(secret))
	if err != nil {
		return nil, err
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	if len(raw) < gcm.NonceSize() {
		return nil, ErrBadSecret
	}
	plain, err := gcm.Open(nil, raw[:gcm.NonceSize()], raw[gcm.NonceSize():], nil)
	if err != nil {
		return nil, ErrBadSecret
	}
	return plain, nil
}

// DNSRecord is one record a domain owner must publish.
type DNSRecord struct {
	Type    string // TXT, MX or CNAME
	Name    string // fully qualified, no trailing dot
	Value   string // TXT text, "preference host" for MX, target for CNAME
	Purpose string // dkim, dkim-ed25519, spf, dmarc, return-path, tlsrpt (optional)
	// Incomplete says Herald cannot name every source the record must
	// allow (Note says why); Value then holds what it knows, or nothing.
	Incomplete bool `json:",omitempty"`
	// Note is shown beside the record: why it is incomplete, or why it
	// is optional.
	Note string `json:",omitempty"`
}

// DNSRecordOptions describe the sending infrastructure the records point at.
type DNSRecordOptions struct {
	// SPFIncludes are domains to include in the return-path SPF record
	// (relays, e.g. "_spf.relay.example") besides the domain's own
	// SPFIncludes; nil means none.
	SPFIncludes []string
	// SendingIPs are the addresses direct delivery leaves from, added as
	// ip4:/ip6: terms; nil means none.
	SendingIPs []string
	// InboundHost is the host receiving bounces for the return-path domain
	// (MX target); "" means "mx." + the return-path domain's parent.
	InboundHost string
	// ReturnPathCNAME, when set, is published as a CNAME for the
	// return-path domain instead of its MX and SPF (a hosted bounce
	// domain that carries both).
	ReturnPathCNAME string
	// DMARCReports is the rua mailbox; "" means dmarc@ the return-path
	// domain, whose MX is Herald's inbound server (dmarc@ the domain when
	// ReturnPathCNAME hands the return path to another host).
	DMARCReports string
	// SourcesUnknown, when set, says why Herald cannot list every server
	// the mail leaves from (direct delivery without configured sending
	// addresses, a relay whose SPF include it does not know); the SPF
	// record is then marked incomplete. "" means the addresses and
	// includes above are all of them.
	SourcesUnknown string
	// SourceHost is a host whose address is probably where mail leaves
	// from when nothing else is known (the EHLO name of direct delivery,
	// the relay's host): the incomplete SPF record then allows it (a:host,
	// or ip4:/ip6: for an address, with or without brackets). "" means no
	// guess.
	SourceHost string
	// OrgDMARC is the policy the domain's organisational domain sets for
	// its subdomains, when the domain is a subdomain and one is published
	// (the last DNS check found it); nil means none. The advised DMARC
	// record then asks for no less.
	OrgDMARC *OrgDMARC
}

// guessTerm is the SPF term allowing host: a: for a name, ip4:/ip6: for
// an address (an EHLO address literal such as [192.0.2.1] or
// [IPv6:2001:db8::1] too); "" for none.
func guessTerm(host string) string {
	h := strings.TrimPrefix(strings.Trim(host, "[]"), "IPv6:")
	if h == "" {
		return ""
	}
	if a, err := netip.ParseAddr(h); err == nil {
		if a.Is4() {
			return "ip4:" + a.String()
		}
		return "ip6:" + a.String()
	}
	if n, problem := normalizeHostname(h, false); problem == "" && strings.Contains(n, ".") {
		return "a:" + n
	}
	return ""
}

// noSourcesNote explains an SPF record Herald cannot fill in.
const noSourcesNote = "Herald knows no address your mail leaves from: no sending addresses are configured under Rules & IPs and no relay SPF include is set. " +
	"Publish an SPF record naming your sending servers (ip4:/ip6: terms, or your relay's include:), or add them to Herald so it can show the record."

// DNSRecords returns the exact records to publish for the domain.
func (d *SendingDomain) DNSRecords(o DNSRecordOptions) []DNSRecord {
	recs := []DNSRecord{{
		Type: "TXT", Name: d.Selector + "._domainkey." + d.Domain,
		Value: "v=DKIM1; k=rsa; p=" + d.RSAPublic, Purpose: "dkim",
	}}
	if d.Ed25519Public != "" {
		recs = append(recs, DNSRecord{Type: "TXT", Name: d.Ed25519Selector + "._domainkey." + d.Domain,
			Value: "v=DKIM1; k=ed25519; p=" + d.Ed25519Public, Purpose: "dkim-ed25519"})
	}
	if o.ReturnPathCNAME != "" {
		recs = append(recs, DNSRecord{Type: "CNAME", Name: d.ReturnPathDomain, Value: o.ReturnPathCNAME, Purpose: "return-path"})
	} else {
		host := o.InboundHost
		if host == "" {
			host = "mx." + d.Domain
		}
		recs = append(recs, DNSRecord{Type: "MX", Name: d.ReturnPathDomain, Value: "10 " + host, Purpose: "return-path"})
		spf := []string{"v=spf1"}
		for _, ip := range o.SendingIPs {
			if strings.Contains(ip, ":") {
				spf = append(spf, "ip6:"+ip)
			} else {
				spf = append(spf, "ip4:"+ip)
			}
		}
		for _, inc := range append(append([]string(nil), o.SPFIncludes...), splitList(d.SPFIncludes)...) {
			spf = append(spf, "include:"+inc)
		}
		rec := DNSRecord{Type: "TXT", Name: d.ReturnPathDomain, Purpose: "spf"}
		switch {
		case len(spf) == 1:
			// "v=spf1 ~all" would authorise nothing: allow the likely
			// source and say that it is a guess, or leave the value empty.
			rec.Incomplete, rec.Note = true, o.SourcesUnknown
			if rec.Note == "" {
				rec.Note = noSourcesNote
			}
			if term := guessTerm(o.SourceHost); term != "" {
				rec.Value = "v=spf1 " + term + " ~all"
				rec.Note += " The value shown allows " + strings.TrimPrefix(strings.TrimPrefix(strings.TrimPrefix(term, "a:"), "ip4:"), "ip6:") +
					", where Herald guesses your mail leaves from; check that this is so."
			}
		case o.SourcesUnknown != "":
			rec.Incomplete, rec.Note = true, o.SourcesUnknown
			fallthrough
		default:
			rec.Value = strings.Join(append(spf, "~all"), " ")
		}
		recs = append(recs, rec)
	}
	rua := o.DMARCReports
	if rua == "" {
		rua = d.ReportAddress("dmarc", o.ReturnPathCNAME != "")
	}
	dmarc := DNSRecord{Type: "TXT", Name: "_dmarc." + d.Domain,
		Value: "v=DMARC1; p=none; rua=mailto:" + rua + "; adkim=r; aspf=r", Purpose: "dmarc"}
	if org := o.OrgDMARC; org != nil && org.Domain != d.Domain {
		// A record at a subdomain replaces the organisational domain's
		// policy for it: never advise a weaker one.
		dmarc.Value = "v=DMARC1; p=" + org.Policy + "; rua=mailto:" + rua + "; adkim=" + org.ADKIM + "; aspf=" + org.ASPF
		dmarc.Note = "Optional: " + org.Domain + "'s DMARC policy already applies to " + d.Domain + " (p=" + org.Policy +
			" for subdomains). Publish this record only to receive reports here; a weaker policy at this name would override " + org.Domain + "'s."
	}
	recs = append(recs, dmarc)
	if o.ReturnPathCNAME == "" {
		// TLS reports about mail to the return-path domain, whose MX is
		// Herald's inbound server: they say whether reporters reach it
		// over TLS. Optional: nothing depends on it.
		tlsrpt := d.ReportAddress("tlsrpt", false)
		recs = append(recs, DNSRecord{Type: "TXT", Name: "_smtp._tls." + d.ReturnPathDomain, Value: "v=TLSRPTv1; rua=mailto:" + tlsrpt, Purpose: "tlsrpt",
			Note: "Optional: receivers send daily TLS reports about their connections to Herald's inbound server to " + tlsrpt + "; Herald shows them on the domain's Reports page."})
	}
	return recs
}

// ReportAddress is the address Herald advises for the domain's reports
// and accepts at its inbound server: local ("dmarc" or "tlsrpt") at the
// return-path domain, whose MX is Herald, or at the domain itself when
// own says the return path is handled elsewhere.
func (d *SendingDomain) ReportAddress(local string, own bool) string {
	if own || d.ReturnPathDomain == "" {
		return local + "@" + d.Domain
	}
	return local + "@" + d.ReturnPathDomain
}

// CampaignsUsingSendingDomain counts the campaigns not yet finished or
// cancelled that sign with a domain.
func (s *Store) CampaignsUsingSendingDomain(ctx context.Context, id int64) (int64, error) {
	var n int64
	err := s.conn(ctx).Table("campaigns").Where("sending_domain_id = ? AND status NOT IN ?", id, []string{"finished", "cancelled"}).Count(&n).Error
	if err != nil {
		return 0, fmt.Errorf("models: campaigns using sending domain %d: %w", id, err)
	}
	return n, nil
}

// ZoneLine is the record in zone-file syntax, TXT values split into the
// 255-byte strings DNS allows, for pasting into a zone or a DNS host that
// takes them.
func (r DNSRecord) ZoneLine() string {
	v := r.Value
	switch r.Type {
	case "TXT":
		var parts []string
		for len(v) > 0 {
			n := min(len(v), 255)
			parts = append(parts, `"`+strings.ReplaceAll(v[:n], `"`, `\"`)+`"`)
			v = v[n:]
		}
		v = strings.Join(parts, " ")
	case "MX", "CNAME":
		v += "."
	}
	return r.Name + ". 3600 IN " + r.Type + " " + v
}

// KeyNames names the domain's DKIM keys: "RSA-2048", or "RSA-2048 and
// Ed25519".
func (d *SendingDomain) KeyNames() string {
	if d.Ed25519Public != "" {
		return "RSA-2048 and Ed25519"
	}
	return "RSA-2048"
}
