package mailer

import (
	"context"

	"github.com/herald-mail/herald/mailer/smtpclient"
)

// smtpConn is an SMTP client connection of Direct or Relay: an
// smtpclient.Client and what Herald reports about it.
type smtpConn struct {
	c        *smtpclient.Client
	host     string // MX host (or relay) reported in replies
	source   string // local address
	tls      string // Reply.TLS of everything sent here
	verified bool
	note     string // Reply.TLSPolicy: a policy failure that did not stop the mail
	// direct and domain: for direct delivery, the transport and the
	// domain the connection was opened for (its TLS policy was applied).
	direct *Direct
	domain string
	broken bool // a transaction failed: Close skips QUIT
	closed bool
}

// reply completes a server's reply with what the connection knows.
func (s *smtpConn) reply(r smtpclient.Reply) Reply {
	return Reply{Code: r.Code, Enhanced: r.Enhanced, Text: r.Text, Command: r.Command, MXHost: s.host, SourceIP: s.source, TLS: s.tls, TLSPolicy: s.note}
}

// Send runs one transaction. After a refused transaction the next one
// starts with RSET.
func (s *smtpConn) Send(ctx context.Context, env *Envelope) (Reply, error) {
	if s.direct != nil {
		if r, ok := s.checkRecipient(ctx, env.To); !ok {
			return r, nil
		}
	}
	if env.UTF8 && !s.c.Ext("SMTPUTF8") {
		return Reply{}, &SMTPUTF8Error{Host: s.host}
	}
	r, err := s.c.SendWith(smtpclient.MailOptions{SMTPUTF8: env.UTF8}, env.From, env.To, env.Signature, env.Message)
	if err != nil {
		s.broken = true
	}
	return s.reply(r), err
}

// Ext reports whether the server offered the EHLO keyword name (any
// case), e.g. "SMTPUTF8".
func (s *smtpConn) Ext(name string) bool { return s.c.Ext(name) }

// Stale reports whether the server has closed the connection since a
// refusal, before anything of the next message is rendered or sent.
func (s *smtpConn) Stale() bool { return s.c.Stale() }

func (s *smtpConn) Close() error {
	if s.closed {
		return nil
	}
	s.closed = true
	if !s.broken {
		s.c.Quit()
	}
	return s.c.Close()
}
