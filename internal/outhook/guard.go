// Package outhook posts Herald's outgoing webhooks: it checks where a
// webhook may point, signs each delivery and retries it with backoff.
package outhook

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// ErrTarget is wrapped by every refusal of a webhook URL; its message is
// safe to show to the admin who typed it.
var ErrTarget = errors.New("webhook target refused")

// TargetError says why a URL or an address may not be a webhook target.
type TargetError struct{ Msg string }

func (e *TargetError) Error() string { return e.Msg }
func (e *TargetError) Unwrap() error { return ErrTarget }

// privateKind names the kind of address ip is when webhooks may not reach
// it without the admin's leave; "" for a public address.
func privateKind(ip netip.Addr) string {
	ip = ip.Unmap()
	switch {
	case ip.IsLoopback():
		return "a loopback address"
	case ip.IsUnspecified():
		return "the unspecified address"
	case ip.IsLinkLocalUnicast(), ip.IsLinkLocalMulticast():
		return "a link-local address"
	case ip.Is4() && ip.IsPrivate():
		return "a private address"
	case ip.Is6() && ip.IsPrivate():
		return "a unique-local address"
	case ip.IsMulticast(), ip.IsInterfaceLocalMulticast():
		return "a multicast address"
	case cgnat.Contains(ip):
		return "a shared (carrier-grade NAT) address"
	}
	return ""
}

var cgnat = netip.MustParsePrefix("100.64.0.0/10")

// allowedIP is the refusal of ip, or nil.
func allowedIP(ip netip.Addr, host string, allowPrivate bool) error {
	if allowPrivate {
		return nil
	}
	if kind := privateKind(ip); kind != "" {
		what := ip.String()
		if host != "" && host != what {
			what = fmt.Sprintf("%s resolves to %s,", host, ip)
		} else {
			what += " is"
		}
		return &TargetError{fmt.Sprintf("%s %s. Webhooks may not reach loopback or private networks unless an admin allows private targets under Settings → Webhooks.", what, kind)}
	}
	return nil
}

// CheckURL checks a webhook URL before it is saved: an absolute http or
// https URL whose host resolves only to addresses webhooks may reach
// (every address, since a later lookup may return any of them).
func CheckURL(ctx context.Context, raw string, allowPrivate bool, r *net.Resolver) error {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return &TargetError{"Enter an absolute http:// or https:// URL, e.g. https://hooks.example.com/herald."}
	}
	if u.User != nil {
		return &TargetError{"Leave user and password out of the URL: deliveries are authenticated by their signature."}
	}
	if len(raw) > 2000 {
		return &TargetError{"Keep the URL under 2000 characters."}
	}
	host := u.Hostname()
	if ip, err := netip.ParseAddr(host); err == nil {
		return allowedIP(ip, "", allowPrivate)
	}
	if r == nil {
		r = net.DefaultResolver
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	ips, err := r.LookupNetIP(ctx, "ip", host)
	if err != nil || len(ips) == 0 {
		return &TargetError{fmt.Sprintf("The host %s could not be resolved; check the name (Herald must be able to look it up to send to it).", host)}
	}
	for _, ip := range ips {
		if err := allowedIP(ip, host, allowPrivate); err != nil {
			return err
		}
	}
	return nil
}

// dialControl refuses connections to addresses webhooks may not reach. It
// runs on the address actually dialled, after resolution, so a name that
// resolves to a public address when the URL is saved and to a private one
// when a delivery is made (DNS rebinding) is refused too.
func dialControl(allowPrivate bool) func(network, address string, c syscall.RawConn) error {
	return func(network, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return &TargetError{fmt.Sprintf("cannot check the address %s", address)}
		}
		return allowedIP(ap.Addr(), "", allowPrivate)
	}
}
