package mailer

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// MTASTSOptions configure MTA-STS (RFC 8461) for direct delivery.
type MTASTSOptions struct {
	// Disabled turns MTA-STS off: no TXT lookups, no policy fetches;
	// false (the default) honours every recipient domain's policy.
	Disabled bool
	// FetchTimeout bounds one policy fetch (connect, TLS, headers and
	// body); 0 means 30s.
	FetchTimeout time.Duration
}

// MTA-STS modes (RFC 8461 5).
const (
	stsEnforce = "enforce"
	stsTesting = "testing"
	stsNone    = "none"
)

// stsMaxPolicy is the largest policy body accepted (RFC 8461 3.2 suggests
// a limit; 64 KiB is what common senders use).
const stsMaxPolicy = 64 << 10

// stsPolicy is a domain's MTA-STS policy.
type stsPolicy struct {
	ID     string // of the TXT record the policy was fetched under
	Mode   string
	MX     []string // patterns: "mx.example.com" or "*.example.net"
	MaxAge time.Duration

	expires time.Time
}

// allows reports whether host matches one of the policy's mx patterns
// (RFC 8461 4.1: a wildcard stands for exactly one left-most label).
func (p *stsPolicy) allows(host string) bool {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	for _, m := range p.MX {
		if rest, ok := strings.CutPrefix(m, "*."); ok {
			if _, tail, ok := strings.Cut(host, "."); ok && tail == rest {
				return true
			}
			continue
		}
		if host == m {
			return true
		}
	}
	return false
}

// parseSTSPolicy parses a policy body (RFC 8461 3.2): "key: value" lines
// ending in LF or CRLF; version STSv1, a mode, max_age, and mx patterns
// (required unless the mode is none). Unknown keys are ignored.
func parseSTSPolicy(b []byte) (*stsPolicy, error) {
	p := &stsPolicy{}
	var version string
	haveAge := false
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		if strings.TrimSpace(line) == "" {
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("policy line %q is not \"key: value\"", line)
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		switch k {
		case "version":
			version = v
		case "mode":
			p.Mode = v
		case "max_age":
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil || len(v) > 10 {
				return nil, fmt.Errorf("policy max_age %q is not a number of seconds", v)
			}
			// RFC 8461 3.2: at most 31557600 (a year).
			p.MaxAge, haveAge = time.Duration(min(n, 31557600))*time.Second, true
		case "mx":
			p.MX = append(p.MX, strings.TrimSuffix(strings.ToLower(v), "."))
		}
	}
	switch {
	case version != "STSv1":
		return nil, fmt.Errorf("policy version is %q, want STSv1", version)
	case p.Mode != stsEnforce && p.Mode != stsTesting && p.Mode != stsNone:
		return nil, fmt.Errorf("policy mode is %q, want enforce, testing or none", p.Mode)
	case !haveAge:
		return nil, errors.New("policy has no max_age")
	case len(p.MX) == 0 && p.Mode != stsNone:
		return nil, errors.New("policy lists no mx")
	}
	return p, nil
}

// stsRecordID returns the id of a domain's _mta-sts TXT record (RFC 8461
// 3.1): exactly one record that starts with "v=STSv1", with an id of 1 to
// 32 letters and digits. ok is false when there is none or it is invalid.
func stsRecordID(txts []string) (id string, ok bool) {
	n := 0
	for _, t := range txts {
		if !strings.HasPrefix(t, "v=STSv1") {
			continue
		}
		n++
		for _, f := range strings.Split(t, ";") {
			k, v, _ := strings.Cut(strings.TrimSpace(f), "=")
			if strings.TrimSpace(k) == "id" {
				id = strings.TrimSpace(v)
			}
		}
	}
	if n != 1 || len(id) == 0 || len(id) > 32 {
		return "", false
	}
	for _, c := range id {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return "", false
		}
	}
	return id, true
}

// mtaSTS finds and caches recipient domains' MTA-STS policies. Lookups go
// through the mailer's Resolver (the TXT record and the policy host's
// address alike), the fetch through HTTPS verified against the configured
// roots, without redirects.
type mtaSTS struct {
	res    *Resolver
	client *http.Client
	log    *slog.Logger

	mu       sync.Mutex
	cache    map[string]*stsPolicy    // by domain: the last valid policy, until it expires
	failed   map[string]time.Time     // by domain: a fetch failed; not retried until then
	inflight map[string]chan struct{} // by domain: a fetch under way, closed when done
	now      func() time.Time
}

func newMTASTS(res *Resolver, roots *x509.CertPool, o MTASTSOptions, log *slog.Logger) *mtaSTS {
	timeout := o.FetchTimeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	s := &mtaSTS{res: res, log: log, cache: map[string]*stsPolicy{}, failed: map[string]time.Time{},
		inflight: map[string]chan struct{}{}, now: time.Now}
	dialer := &net.Dialer{Timeout: timeout}
	s.client = &http.Client{
		Timeout: timeout,
		// RFC 8461 3.3: "HTTP 3xx redirects MUST NOT be followed".
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Transport: &http.Transport{
			// The policy host is resolved by the mailer's resolver, as the
			// MX hosts are, not by the system's.
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				host, port, err := net.SplitHostPort(addr)
				if err != nil {
					return nil, err
				}
				addrs, err := res.LookupHost(ctx, host)
				if err != nil {
					return nil, err
				}
				var last error
				for _, a := range addrs {
					c, err := dialer.DialContext(ctx, "tcp", net.JoinHostPort(a.String(), port))
					if err == nil {
						return c, nil
					}
					last = err
				}
				return nil, last
			},
			TLSClientConfig:       &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
			TLSHandshakeTimeout:   timeout,
			ResponseHeaderTimeout: timeout,
			DisableKeepAlives:     true, // one fetch per domain and max_age
		},
	}
	return s
}

// policy returns domain's policy in force: nil when it has none (or mode
// none). A policy that cannot be fetched counts as none, unless an
// earlier one is still cached (RFC 8461 3.3, 5.1).
func (s *mtaSTS) policy(ctx context.Context, domain string) *stsPolicy {
	domain = strings.TrimSuffix(strings.ToLower(domain), ".")
	now := s.now()
	s.mu.Lock()
	cached := s.cache[domain]
	if cached != nil && !now.Before(cached.expires) {
		delete(s.cache, domain)
		cached = nil
	}
	s.mu.Unlock()

	txts, err := s.res.LookupTXT(ctx, "_mta-sts."+domain)
	id, ok := stsRecordID(txts)
	switch {
	case err != nil && !errors.Is(err, ErrNoDomain):
		return effective(cached) // DNS trouble: keep what we know
	case !ok:
		return effective(cached) // no record: a cached policy still holds until max_age
	case cached != nil && cached.ID == id:
		return effective(cached)
	}
	s.mu.Lock()
	if p := s.cache[domain]; p != nil && p.ID == id && now.Before(p.expires) {
		// Fetched by another worker since we looked.
		s.mu.Unlock()
		return effective(p)
	}
	retry, failedBefore := s.failed[domain]
	if failedBefore && now.Before(retry) {
		s.mu.Unlock()
		return effective(cached)
	}
	if wait, busy := s.inflight[domain]; busy {
		// Workers opening connections to one domain at once share one
		// fetch.
		s.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if p := s.cache[domain]; p != nil && p.ID == id {
			return effective(p)
		}
		return effective(cached)
	}
	done := make(chan struct{})
	s.inflight[domain] = done
	s.mu.Unlock()
	p, err := s.fetch(ctx, domain)
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.inflight, domain)
	close(done)
	if err != nil {
		s.failed[domain] = now.Add(5 * time.Minute)
		s.log.Warn("MTA-STS policy fetch failed", "domain", domain, "id", id, "error", err)
		return effective(cached)
	}
	delete(s.failed, domain)
	p.ID, p.expires = id, now.Add(p.MaxAge)
	s.cache[domain] = p
	return effective(p)
}

func effective(p *stsPolicy) *stsPolicy {
	if p == nil || p.Mode == stsNone {
		return nil
	}
	return p
}

// fetch gets https://mta-sts.<domain>/.well-known/mta-sts.txt.
func (s *mtaSTS) fetch(ctx context.Context, domain string) (*stsPolicy, error) {
	url := "https://mta-sts." + domain + "/.well-known/mta-sts.txt"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s answered %s (want 200; redirects are not followed)", url, resp.Status)
	}
	if mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type")); err != nil || mt != "text/plain" {
		return nil, fmt.Errorf("%s has content type %q, want text/plain", url, resp.Header.Get("Content-Type"))
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, stsMaxPolicy+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", url, err)
	}
	if len(b) > stsMaxPolicy {
		return nil, fmt.Errorf("%s is larger than %d bytes", url, stsMaxPolicy)
	}
	p, err := parseSTSPolicy(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", url, err)
	}
	return p, nil
}
