package mailer

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/mail"
	"net/textproto"
	"net/url"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// PollOptions configure a Poller. Every zero value means the documented
// default.
type PollOptions struct {
	// URL names the mailbox: imaps://user:password@host:993/INBOX (TLS from
	// the first byte) or imap://user:password@host:143/INBOX (STARTTLS
	// required). User and password are URL-escaped; the path is the
	// folder, zero meaning INBOX. Required.
	URL string
	// Interval is the time between two polls. Zero: one minute.
	Interval time.Duration
	// MoveTo is the folder handled messages are moved to (created when
	// missing). Zero: handled messages are deleted.
	MoveTo string
	// BatchSize caps the messages handled per poll; the rest wait for the
	// next one. Zero: 200.
	BatchSize int
	// TLSConfig verifies the server. Zero: the system roots and the URL's
	// host name.
	TLSConfig *tls.Config
	// Timeout bounds each network read and write. Zero: one minute.
	Timeout time.Duration
	// Logger receives one line per poll and per message. Zero: slog.Default().
	Logger *slog.Logger
}

// Poller fetches bounces and feedback reports from an IMAP mailbox (for a
// return-path domain whose mail lands at a mail provider rather than at
// Herald's inbound SMTP server) and applies each through the same Recorder
// as the SMTP server. A message that was applied, or that was not for us,
// is moved away or deleted; one whose recording failed stays for the next
// poll.
type Poller struct {
	rec          *Recorder
	o            PollOptions
	addr, folder string
	implicitTLS  bool
	user, pass   string
	log          *slog.Logger
}

// NewPoller checks the options and returns a poller applying messages
// through rec.
func NewPoller(rec *Recorder, o PollOptions) (*Poller, error) {
	u, err := url.Parse(o.URL)
	if err != nil || u.Host == "" || (u.Scheme != "imap" && u.Scheme != "imaps") {
		return nil, fmt.Errorf("mailer: bounce mailbox %q: want imaps://user:password@host:993/INBOX or imap://… (STARTTLS)", redactURL(o.URL))
	}
	if u.User == nil || u.User.Username() == "" {
		return nil, fmt.Errorf("mailer: bounce mailbox %s: the URL needs a user and password", redactURL(o.URL))
	}
	p := &Poller{rec: rec, o: o, implicitTLS: u.Scheme == "imaps", user: u.User.Username(), log: o.Logger}
	p.pass, _ = u.User.Password()
	p.addr = u.Host
	if u.Port() == "" {
		p.addr = net.JoinHostPort(u.Hostname(), map[bool]string{true: "993", false: "143"}[p.implicitTLS])
	}
	p.folder = strings.TrimPrefix(u.Path, "/")
	if p.folder == "" {
		p.folder = "INBOX"
	}
	if p.o.Interval <= 0 {
		p.o.Interval = time.Minute
	}
	if p.o.BatchSize <= 0 {
		p.o.BatchSize = 200
	}
	if p.o.Timeout <= 0 {
		p.o.Timeout = time.Minute
	}
	if p.o.TLSConfig == nil {
		p.o.TLSConfig = &tls.Config{ServerName: u.Hostname()}
	}
	if p.log == nil {
		p.log = slog.Default()
	}
	p.log = p.log.With("mailbox", redactURL(o.URL))
	return p, nil
}

// redactURL hides the password of a mailbox URL.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparseable URL)"
	}
	return u.Redacted()
}

// Run polls at once and then every Interval until ctx is done. A failed
// poll is logged and retried at the next tick.
func (p *Poller) Run(ctx context.Context) error {
	t := time.NewTicker(p.o.Interval)
	defer t.Stop()
	for {
		if n, err := p.Poll(ctx); err != nil {
			p.log.Error("bounce mailbox poll failed", "err", err)
		} else if n > 0 {
			p.log.Info("bounce mailbox polled", "handled", n)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Poll handles up to BatchSize messages of the mailbox once and returns how
// many it handled (and moved or deleted).
func (p *Poller) Poll(ctx context.Context) (int, error) {
	c, _, closeConn, err := p.open(ctx)
	if err != nil {
		return 0, err
	}
	defer closeConn()
	found, err := c.UIDSearch(&imap.SearchCriteria{NotFlag: []imap.Flag{imap.FlagDeleted}}, nil).Wait()
	if err != nil {
		return 0, fmt.Errorf("mailer: poll %s: search: %w", p.addr, err)
	}
	uids := found.AllUIDs()
	if len(uids) == 0 {
		return 0, c.Logout().Wait()
	}
	if len(uids) > p.o.BatchSize {
		uids = uids[:p.o.BatchSize]
	}
	section := &imap.FetchItemBodySection{Peek: true}
	msgs, err := c.Fetch(imap.UIDSetNum(uids...), &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{section}}).Collect()
	if err != nil {
		return 0, fmt.Errorf("mailer: poll %s: fetch: %w", p.addr, err)
	}
	var done imap.UIDSet
	var failed error
	for _, m := range msgs {
		raw := m.FindBodySection(section)
		err := p.rec.Process(ctx, InboundMessage{Raw: raw, Rcpts: headerRecipients(raw),
			Source: Source{Via: "imap", From: p.addr}})
		if err != nil {
			// A database failure: the message stays for the next poll.
			p.log.Error("bounce mailbox message not recorded; kept for the next poll", "uid", m.UID, "err", err)
			failed = errors.Join(failed, err)
			continue
		}
		done.AddNum(m.UID)
	}
	if len(done) > 0 {
		if err := p.remove(c, done); err != nil {
			return 0, err
		}
	}
	if err := c.Logout().Wait(); err != nil && failed == nil {
		p.log.Warn("bounce mailbox logout", "err", err)
	}
	n := 0
	for _, r := range done {
		n += int(r.Stop-r.Start) + 1
	}
	return n, failed
}

// open connects, logs in and selects the folder; done closes the
// connection.
func (p *Poller) open(ctx context.Context) (c *imapclient.Client, sel *imap.SelectData, done func(), err error) {
	if c, done, err = p.login(ctx); err != nil {
		return nil, nil, nil, err
	}
	if sel, err = c.Select(p.folder, nil).Wait(); err != nil {
		done()
		return nil, nil, nil, &MailboxError{Stage: "select", Err: fmt.Errorf("mailer: poll %s: select %s: %w", p.addr, p.folder, err)}
	}
	return c, sel, done, nil
}

// login connects and logs in; done closes the connection.
func (p *Poller) login(ctx context.Context) (c *imapclient.Client, done func(), err error) {
	opts := &imapclient.Options{TLSConfig: p.o.TLSConfig, Dialer: &net.Dialer{Timeout: p.o.Timeout}}
	if p.implicitTLS {
		c, err = imapclient.DialTLS(p.addr, opts)
	} else {
		c, err = imapclient.DialStartTLS(p.addr, opts)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("mailer: poll %s: connect: %w", p.addr, err)
	}
	stop := context.AfterFunc(ctx, func() { c.Close() })
	done = func() { stop(); c.Close() }
	if err := c.Login(p.user, p.pass).Wait(); err != nil {
		done()
		return nil, nil, &MailboxError{Stage: "login", Err: fmt.Errorf("mailer: poll %s: login as %s: %w", p.addr, p.user, err)}
	}
	return c, done, nil
}

// MailboxError is a mailbox's refusal after the connection: of the login
// (Stage "login") or of the folder ("select").
type MailboxError struct {
	Stage string
	Err   error
}

func (e *MailboxError) Error() string { return e.Err.Error() }
func (e *MailboxError) Unwrap() error { return e.Err }

// Check connects to the mailbox, logs in and opens the folder as a poll
// does, handles nothing, and returns how many messages the folder holds.
func (p *Poller) Check(ctx context.Context) (uint32, error) {
	c, sel, done, err := p.open(ctx)
	if err != nil {
		return 0, err
	}
	defer done()
	if err := c.Logout().Wait(); err != nil {
		p.log.Warn("bounce mailbox logout", "err", err)
	}
	return sel.NumMessages, nil
}

// remove moves handled messages to MoveTo, or deletes them.
func (p *Poller) remove(c *imapclient.Client, uids imap.UIDSet) error {
	if p.o.MoveTo != "" {
		if _, err := c.Move(uids, p.o.MoveTo).Wait(); err != nil {
			// The folder may not exist yet: create it once and retry.
			if cerr := c.Create(p.o.MoveTo, nil).Wait(); cerr != nil {
				return fmt.Errorf("mailer: poll %s: move to %s: %w", p.addr, p.o.MoveTo, err)
			}
			if _, err := c.Move(uids, p.o.MoveTo).Wait(); err != nil {
				return fmt.Errorf("mailer: poll %s: move to %s: %w", p.addr, p.o.MoveTo, err)
			}
		}
		return nil
	}
	if err := c.Store(uids, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
		return fmt.Errorf("mailer: poll %s: delete: %w", p.addr, err)
	}
	if err := c.Expunge().Close(); err != nil {
		return fmt.Errorf("mailer: poll %s: expunge: %w", p.addr, err)
	}
	return nil
}

// headerRecipients reads the addresses a message fetched from a mailbox was
// delivered to: Delivered-To and X-Original-To (set by the delivering MTA,
// and holding the VERP address), then Envelope-To and To.
func headerRecipients(raw []byte) []string {
	m, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return nil
	}
	var out []string
	for _, f := range []string{"Delivered-To", "X-Original-To", "Envelope-To", "To"} {
		for _, v := range m.Header[textproto.CanonicalMIMEHeaderKey(f)] {
			if list, err := mail.ParseAddressList(v); err == nil {
				for _, a := range list {
					out = append(out, a.Address)
				}
			} else if v = strings.Trim(strings.TrimSpace(v), "<>"); v != "" {
				out = append(out, v)
			}
		}
	}
	return out
}
