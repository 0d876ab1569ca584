package mailer

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/herald-mail/herald/internal/config"
)

// RelayCheck is the outcome of connecting to one relay (CheckRelays).
type RelayCheck struct {
	// Relay names it: host:port, and the user when it signs in.
	Relay string
	// Err is nil when it took Herald's greeting, STARTTLS and
	// credentials; its text says what went wrong in plain words.
	Err error
	// Detail says what worked: the TLS in use and whether it signed in.
	Detail string
}

// CheckRelays connects to each relay of urls as the relay transport
// does (the same dial: greeting, EHLO, STARTTLS when smtp:// — which
// requires it — or TLS from the first byte for smtps://, AUTH when the
// URL has a user) and hangs up without sending. An error means a URL
// does not parse (ParseRelays' message).
func CheckRelays(ctx context.Context, urls []string, helo string) ([]RelayCheck, error) {
	hosts, err := ParseRelays(urls)
	if err != nil {
		return nil, err
	}
	r := NewRelay(RelayOptions{Hosts: hosts, HELO: helo, Timeouts: Timeouts{Connect: 10 * time.Second, Command: 15 * time.Second}})
	var out []RelayCheck
	for _, h := range r.hosts {
		addr := net.JoinHostPort(h.Host, strconv.Itoa(h.Port))
		rc := RelayCheck{Relay: addr}
		if h.Username != "" {
			rc.Relay = h.Username + " at " + addr
		}
		c, err := r.dial(ctx, h, Route{})
		if err != nil {
			rc.Err = errors.New(relayProblem(addr, err))
			out = append(out, rc)
			continue
		}
		rc.Detail = "connected"
		if c.tls != "" {
			rc.Detail += " over " + c.tls
		} else {
			rc.Detail += " in plain text"
		}
		if h.Username != "" {
			rc.Detail += ", signed in as " + h.Username
		}
		c.Close()
		out = append(out, rc)
	}
	return out, nil
}

// relayProblem says in plain words why a relay could not be reached or
// refused Herald, and what to check.
func relayProblem(addr string, err error) string {
	var re *RelayError
	var dnsErr *net.DNSError
	var certErr x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var invalid x509.CertificateInvalidError
	var ne net.Error
	msg := err.Error()
	switch {
	case errors.As(err, &re) && re.Stage == "auth":
		return fmt.Sprintf("The relay %s refused the user name or password (%d %s). Check the credentials in the relay URL.",
			addr, re.Reply.Code, strings.TrimSpace(re.Reply.Enhanced+" "+re.Reply.Text))
	case errors.As(err, &re):
		return fmt.Sprintf("The relay %s answered but refused to talk to Herald: %d %s.", addr, re.Reply.Code,
			strings.TrimSpace(re.Reply.Enhanced+" "+re.Reply.Text))
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Sprintf("Nothing accepts connections at %s (connection refused). Check the host and port, and that the relay is running.", addr)
	case errors.As(err, &dnsErr):
		return fmt.Sprintf("The host name of %s does not resolve (%s). Check the spelling of the host.", addr, dnsErr.Err)
	case errors.As(err, &certErr), errors.As(err, &hostErr), errors.As(err, &invalid), strings.Contains(msg, "x509:"), strings.Contains(msg, "certificate"):
		return fmt.Sprintf("The relay %s's TLS certificate is not trusted: %s. Use the relay's own host name, or install its CA.", addr, msg)
	case strings.Contains(msg, "does not offer STARTTLS"):
		return fmt.Sprintf("The relay %s does not offer STARTTLS, which an smtp:// relay requires. Use smtps:// for a port with TLS from the start (465), or the relay's submission port (587).", addr)
	case strings.Contains(msg, "AUTH") || strings.Contains(msg, "auth"):
		return fmt.Sprintf("The relay %s did not accept signing in: %s. Check the user name and password, and whether the relay wants them at all.", addr, msg)
	case errors.As(err, &ne) && ne.Timeout():
		return fmt.Sprintf("The relay %s did not answer in time. Check the host and port, and that no firewall drops the connection.", addr)
	}
	return fmt.Sprintf("Could not use the relay %s: %s.", addr, msg)
}

// CheckMailbox logs in to the bounce mailbox raw names (imaps:// or
// imap:// with STARTTLS) as the poller does and opens its folder; it
// returns how many messages wait there, or what went wrong in plain words.
// tlsConfig verifies the server; nil means as the poller does (the system
// roots and the URL's host).
func CheckMailbox(ctx context.Context, raw string, tlsConfig *tls.Config) (uint32, error) {
	p, err := NewPoller(nil, PollOptions{URL: raw, Timeout: 15 * time.Second, TLSConfig: tlsConfig, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return 0, err
	}
	n, err := p.Check(ctx)
	if err != nil {
		return 0, errors.New(mailboxProblem(p.addr, p.user, p.folder, err))
	}
	return n, nil
}

func mailboxProblem(addr, user, folder string, err error) string {
	var me *MailboxError
	var dnsErr *net.DNSError
	var ne net.Error
	msg := err.Error()
	switch {
	case errors.As(err, &me) && me.Stage == "login":
		return fmt.Sprintf("The mailbox at %s refused to log in %s: %s. Check the user name and password.", addr, user, msg)
	case errors.As(err, &me):
		return fmt.Sprintf("Logged in to %s, but the folder %q cannot be opened: %s. Check the folder in the URL's path.", addr, folder, msg)
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Sprintf("Nothing accepts connections at %s (connection refused). Check the host and port (993 for imaps://, 143 for imap://).", addr)
	case errors.As(err, &dnsErr):
		return fmt.Sprintf("The host name of %s does not resolve (%s). Check the spelling of the host.", addr, dnsErr.Err)
	case strings.Contains(msg, "x509:") || strings.Contains(msg, "certificate"):
		return fmt.Sprintf("The mailbox server %s's TLS certificate is not trusted: %s.", addr, msg)
	case errors.As(err, &ne) && ne.Timeout():
		return fmt.Sprintf("The mailbox server %s did not answer in time. Check the host, port and firewall.", addr)
	}
	return fmt.Sprintf("Could not use the mailbox at %s: %s.", addr, msg)
}

// RunBounceMailbox polls the bounce mailbox of the settings in effect
// (LoadEffective: HERALD_BOUNCE_IMAP and its flags over Settings →
// Delivery) through rec until ctx ends. Every check it reads the settings
// again and restarts the poller when the mailbox, interval or folder
// changed (stopping it when the mailbox was removed), so a change saved
// in the dashboard takes effect on every node without a restart.
func RunBounceMailbox(ctx context.Context, cfg *config.Config, store DeliveryStore, rec *Recorder, log *slog.Logger, check time.Duration) {
	if log == nil {
		log = slog.Default()
	}
	var (
		running string // the settings the poller runs with; "" none
		stop    context.CancelFunc
	)
	defer func() {
		if stop != nil {
			stop()
		}
	}()
	t := time.NewTicker(check)
	defer t.Stop()
	for {
		eff, _, err := LoadEffective(ctx, cfg, store)
		if err != nil && ctx.Err() == nil {
			log.Error("bounce mailbox: reading its settings", "err", err)
		}
		if err == nil {
			want := ""
			if eff.BounceIMAP != "" {
				want = eff.BounceIMAP + "\x00" + eff.BounceIMAPInterval + "\x00" + eff.BounceIMAPMove
			}
			if want != running {
				if stop != nil {
					stop()
					stop = nil
					log.Info("bounce mailbox settings changed: polling stopped")
				}
				running = want
				if want != "" {
					every, _ := time.ParseDuration(eff.BounceIMAPInterval) // checked on save and by config
					p, err := NewPoller(rec, PollOptions{URL: eff.BounceIMAP, Interval: every, MoveTo: eff.BounceIMAPMove, Logger: log})
					if err != nil {
						log.Error("bounce mailbox not polled", "err", err)
					} else {
						pctx, cancel := context.WithCancel(ctx)
						stop = cancel
						go p.Run(pctx)
						log.Info("polling the bounce mailbox", "mailbox", redactURL(eff.BounceIMAP), "every", every)
					}
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// RedactURLs hides the passwords of the URLs in s (separated by spaces
// or commas as config.RelayURLs reads them), for showing them back.
func RedactURLs(urls []string) []string {
	out := make([]string, len(urls))
	for i, u := range urls {
		out[i] = redactURL(u)
	}
	return out
}

// redactedPassword is what url.URL.Redacted puts for a password.
const redactedPassword = "xxxxx"

// KeepPasswords puts back, in each URL of submitted whose password is
// the redacted placeholder, the password of the stored URL with the same
// scheme, user and host: a form showing URLs with masked passwords keeps
// them when they were left alone. It returns the URLs, and the index of
// one whose masked password matches no stored URL (-1 when none).
func KeepPasswords(submitted, stored []string) ([]string, int) {
	out := make([]string, len(submitted))
	for i, s := range submitted {
		out[i] = s
		u, err := url.Parse(s)
		if err != nil || u.User == nil {
			continue
		}
		if pw, ok := u.User.Password(); !ok || pw != redactedPassword {
			continue
		}
		found := false
		for _, st := range stored {
			su, err := url.Parse(st)
			if err != nil || su.User == nil || su.Scheme != u.Scheme || su.Host != u.Host || su.User.Username() != u.User.Username() {
				continue
			}
			if pw, ok := su.User.Password(); ok {
				u.User = url.UserPassword(u.User.Username(), pw)
				out[i], found = u.String(), true
				break
			}
		}
		if !found {
			return out, i
		}
	}
	return out, -1
}
