package mailer

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// relayParams are the settings a relay URL's query may carry, with what
// each takes (for error messages and the configuration help).
var relayParams = map[string]string{
	"connections":    "connections at most (a whole number from 1; default 10)",
	"rate":           "messages per second at most, the relay's quota (a number; default 0, no limit)",
	"max_per_conn":   "messages per connection before a new one (a whole number; default 0, no limit)",
	"weight":         "share of the mail among relays of the same priority (a whole number from 1; default 1)",
	"priority":       "failover order: relays of a higher number are used only while all lower ones are paused (a whole number; default 0)",
	"dkim":           "relay when the relay signs with DKIM for your domains, herald (the default) when Herald signs",
	"dkim_selectors": "the selectors the relay signs with, comma separated, for the readiness check",
}

// ParseRelay reads one relay URL: smtp://user:pass@host:587 (STARTTLS) or
// smtps://user:pass@host:465 (implicit TLS), with the relay's settings in
// its query, e.g. ?connections=20&rate=14&max_per_conn=100.
func ParseRelay(s string) (RelayHost, error) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "smtp" && u.Scheme != "smtps") || u.Hostname() == "" {
		return RelayHost{}, fmt.Errorf("mailer: the relay must be a URL such as smtp://user:pass@smtp.example.com:587")
	}
	name := u.Redacted()
	h := RelayHost{Host: u.Hostname(), TLS: TLSStartTLS}
	if u.Scheme == "smtps" {
		h.TLS = TLSImplicit
	}
	if p := u.Port(); p != "" {
		if h.Port, err = strconv.Atoi(p); err != nil {
			return RelayHost{}, fmt.Errorf("mailer: the relay URL's port %q is not a number", p)
		}
	}
	if u.User != nil {
		h.Username = u.User.Username()
		h.Password, _ = u.User.Password()
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return RelayHost{}, fmt.Errorf("mailer: relay %s: the query cannot be read: %v", name, err)
	}
	for k, vs := range q {
		what, known := relayParams[k]
		if !known {
			return RelayHost{}, fmt.Errorf("mailer: relay %s: unknown setting %q (known: connections, rate, max_per_conn, weight, priority, dkim, dkim_selectors)", name, k)
		}
		v := vs[len(vs)-1]
		bad := func() error { return fmt.Errorf("mailer: relay %s: %s=%q: want %s", name, k, v, what) }
		whole := func(lo int) (int, error) {
			n, err := strconv.Atoi(v)
			if err != nil || n < lo {
				return 0, bad()
			}
			return n, nil
		}
		switch k {
		case "connections":
			h.MaxConnections, err = whole(1)
		case "max_per_conn":
			h.MaxPerConnection, err = whole(0)
		case "weight":
			h.Weight, err = whole(1)
		case "priority":
			h.Priority, err = whole(0)
		case "rate":
			if h.PerSecond, err = strconv.ParseFloat(v, 64); err != nil || h.PerSecond < 0 {
				err = bad()
			}
		case "dkim":
			switch v {
			case "relay":
				h.SignsDKIM = true
			case "herald", "":
			default:
				err = bad()
			}
		case "dkim_selectors":
			for _, sel := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' }) {
				h.DKIMSelectors = append(h.DKIMSelectors, strings.ToLower(sel))
			}
		}
		if err != nil {
			return RelayHost{}, err
		}
	}
	return h, nil
}

// ParseRelays reads every relay of a configuration (config.RelayURLs).
func ParseRelays(urls []string) ([]RelayHost, error) {
	if len(urls) == 0 {
		return nil, fmt.Errorf("mailer: the relay must be a URL such as smtp://user:pass@smtp.example.com:587")
	}
	hosts := make([]RelayHost, 0, len(urls))
	for _, s := range urls {
		h, err := ParseRelay(s)
		if err != nil {
			return nil, err
		}
		hosts = append(hosts, h)
	}
	return hosts, nil
}
