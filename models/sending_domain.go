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
	DNSCheckedAt     *time.Time `gorm:"column:dns_checked_at"`
	DNSOK            bool       `gorm:"column:dns_ok"`
	DNSReport        string     `gorm:"column:dns_report"` // JSON written by the mailer's DNS check
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
// under secret. ErrConflict when the domain exists.
func (s *Store) CreateSendingDomain(ctx context.Context, domain, secret string, o SendingDomainOptions) (*SendingDomain, error) {
	domain = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(domain), "."))
	if !strings.Contains(domain, ".") {
		return nil, fmt.Errorf("models: add sending domain %q: not a domain name", domain)
	}
	d := &SendingDomain{Domain: domain, Selector: o.Selector, ReturnPathDomain: o.ReturnPathDomain}
	if d.Selector == "" {
		d.Selector = "herald" + now().UTC().Format("200601")
	}
	if d.ReturnPathDomain == "" {
		d.ReturnPathDomain = "bounces." + domain
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("models: add sending domain: %w", err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("models: add sending domain: %w", err)
	}
	d.RSAPublic = base64.StdEncoding.EncodeToString(pub)
	if d.RSAPrivate, err = seal(secret, x509.MarshalPKCS1PrivateKey(key)); err != nil {
		return nil, fmt.Errorf("models: add sending domain: %w", err)
	}
	if o.Ed25519 {
		epub, epriv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("models: add sending domain: %w", err)
		}
		d.Ed25519Selector = d.Selector + "e"
		d.Ed25519Public = base64.StdEncoding.EncodeToString(epub)
		if d.Ed25519Private, err = seal(secret, epriv.Seed()); err != nil {
			return nil, fmt.Errorf("models: add sending domain: %w", err)
		}
	}
	d.CreatedAt, d.UpdatedAt = dbNow(), dbNow()
	err = s.tx(ctx, func(tx *gorm.DB) error {
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

// SendingDomain returns one sending domain.
func (s *Store) SendingDomain(ctx context.Context, id int64) (*SendingDomain, error) {
	var d SendingDomain
	if err := s.db.WithContext(ctx).First(&d, id).Error; err != nil {
		return nil, fmt.Errorf("models: sending domain %d: %w", id, notFound(err))
	}
	return &d, nil
}

// SendingDomainByName returns the sending domain for a domain name.
func (s *Store) SendingDomainByName(ctx context.Context, domain string) (*SendingDomain, error) {
	var d SendingDomain
	if err := s.db.WithContext(ctx).Where("domain = ?", strings.ToLower(domain)).First(&d).Error; err != nil {
		return nil, fmt.Errorf("models: sending domain %q: %w", domain, notFound(err))
	}
	return &d, nil
}

// SendingDomains returns every sending domain by name.
func (s *Store) SendingDomains(ctx context.Context) ([]SendingDomain, error) {
	var out []SendingDomain
	if err := s.db.WithContext(ctx).Order("domain").Find(&out).Error; err != nil {
		return nil, fmt.Errorf("models: sending domains: %w", err)
	}
	return out, nil
}

// DeleteSendingDomain removes a sending domain and its keys.
func (s *Store) DeleteSendingDomain(ctx context.Context, id int64) error {
	if err := s.db.WithContext(ctx).Exec("DELETE FROM sending_domains WHERE id = ?", id).Error; err != nil {
		return fmt.Errorf("models: delete sending domain %d: %w", id, err)
	}
	return nil
}

// SaveDNSCheck records the outcome of a DNS check of a sending domain.
func (s *Store) SaveDNSCheck(ctx context.Context, id int64, ok bool, report string) error {
	err := s.db.WithContext(ctx).Exec("UPDATE sending_domains SET dns_checked_at = ?, dns_ok = ?, dns_report = ?, updated_at = ? WHERE id = ?",
		dbNow(), ok, report, dbNow(), id).Error
	if err != nil {
		return fmt.Errorf("models: save DNS check of %d: %w", id, err)
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
	Purpose string // dkim, dkim-ed25519, spf, dmarc, return-path
}

// DNSRecordOptions describe the sending infrastructure the records point at.
type DNSRecordOptions struct {
	// SPFIncludes are domains to include in the return-path SPF record
	// (relays, e.g. "_spf.relay.example"); nil means none.
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
	// DMARCReports is the rua mailbox; "" means "dmarc@" + the domain.
	DMARCReports string
}

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
		for _, inc := range o.SPFIncludes {
			spf = append(spf, "include:"+inc)
		}
		spf = append(spf, "~all")
		recs = append(recs, DNSRecord{Type: "TXT", Name: d.ReturnPathDomain, Value: strings.Join(spf, " "), Purpose: "spf"})
	}
	rua := o.DMARCReports
	if rua == "" {
		rua = "dmarc@" + d.Domain
	}
	recs = append(recs, DNSRecord{Type: "TXT", Name: "_dmarc." + d.Domain,
		Value: "v=DMARC1; p=none; rua=mailto:" + rua + "; adkim=r; aspf=r", Purpose: "dmarc"})
	return recs
}

// IP pool strategies.
const (
	PoolRoundRobin = "round_robin"
	PoolWeighted   = "weighted"
)

// IPPool is a named set of source addresses a campaign sends from.
type IPPool struct {
	ID        int64
	Name      string
	Strategy  string
	CreatedAt time.Time
}

// SendingIP is one source address: its HELO name, weight in its pool, own
// rate (messages per second, 0 unlimited) and warm-up start (nil: warmed).
type SendingIP struct {
	ID          int64
	PoolID      int64
	Address     string
	HELO        string `gorm:"column:helo"`
	Weight      int
	PerSecond   float64
	WarmupStart *time.Time
	Active      bool
	CreatedAt   time.Time
}

// CreateIPPool stores a pool; ErrConflict when the name is taken.
func (s *Store) CreateIPPool(ctx context.Context, p *IPPool) error {
	if p.Strategy == "" {
		p.Strategy = PoolRoundRobin
	}
	p.CreatedAt = dbNow()
	var n int64
	if err := s.db.WithContext(ctx).Model(&IPPool{}).Where("name = ?", p.Name).Count(&n).Error; err != nil {
		return fmt.Errorf("models: create IP pool: %w", err)
	}
	if n > 0 {
		return fmt.Errorf("models: create IP pool %q: %w", p.Name, ErrConflict)
	}
	if err := s.db.WithContext(ctx).Create(p).Error; err != nil {
		return fmt.Errorf("models: create IP pool: %w", err)
	}
	return nil
}

// IPPools returns every pool by name.
func (s *Store) IPPools(ctx context.Context) ([]IPPool, error) {
	var out []IPPool
	if err := s.db.WithContext(ctx).Order("name").Find(&out).Error; err != nil {
		return nil, fmt.Errorf("models: IP pools: %w", err)
	}
	return out, nil
}

// IPPool returns one pool.
func (s *Store) IPPool(ctx context.Context, id int64) (*IPPool, error) {
	var p IPPool
	if err := s.db.WithContext(ctx).First(&p, id).Error; err != nil {
		return nil, fmt.Errorf("models: IP pool %d: %w", id, notFound(err))
	}
	return &p, nil
}

// AddSendingIP adds an address to a pool.
func (s *Store) AddSendingIP(ctx context.Context, ip *SendingIP) error {
	ip.CreatedAt = dbNow()
	if ip.Weight <= 0 {
		ip.Weight = 1
	}
	if err := s.db.WithContext(ctx).Create(ip).Error; err != nil {
		return fmt.Errorf("models: add sending IP %s: %w", ip.Address, err)
	}
	return nil
}

// SendingIPs returns a pool's active addresses.
func (s *Store) SendingIPs(ctx context.Context, poolID int64) ([]SendingIP, error) {
	var out []SendingIP
	if err := s.db.WithContext(ctx).Where("pool_id = ? AND active = ?", poolID, true).Order("id").Find(&out).Error; err != nil {
		return nil, fmt.Errorf("models: sending IPs of pool %d: %w", poolID, err)
	}
	return out, nil
}

// DeleteSendingIP removes an address from its pool.
func (s *Store) DeleteSendingIP(ctx context.Context, id int64) error {
	if err := s.db.WithContext(ctx).Exec("DELETE FROM sending_ips WHERE id = ?", id).Error; err != nil {
		return fmt.Errorf("models: delete sending IP %d: %w", id, err)
	}
	return nil
}
