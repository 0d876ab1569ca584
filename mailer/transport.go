package mailer

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"strings"

	"github.com/herald-mail/herald/models"
)

// Transport carries messages to their destination. The engine dials one
// Conn per destination lane (destination × source address) and sends
// messages over it one after another.
type Transport interface {
	Dial(ctx context.Context, r Route) (Conn, error)
}

// Route says where a connection goes and where it comes from.
type Route struct {
	// Domain is the recipient domain (the destination's first domain when
	// a connection serves several).
	Domain string
	// MX are the mail exchangers in preference order, already resolved by
	// the engine for direct delivery; empty for other transports or when
	// the transport should resolve them itself.
	MX []string
	// SourceIP is the local address to bind; "" lets the OS choose.
	SourceIP string
	// HELO is the name to greet with; "" means the transport's default.
	HELO string
	// RequireTLS: the destination's domain rule requires TLS with a
	// certificate valid for the MX host (no plain text, no unverified
	// certificate: the mail is deferred instead); false leaves TLS
	// opportunistic unless the domain's MTA-STS policy says otherwise.
	RequireTLS bool
}

// Envelope is one message on its way.
type Envelope struct {
	From       string // SMTP MAIL FROM (the VERP return path)
	To         string // SMTP RCPT TO
	DeliveryID int64
	CampaignID int64
	Signature  []byte // DKIM-Signature fields, prepended to Message
	Message    []byte // header and body, CRLF line ends
	// UTF8 says an address (To's local part, or one in the header) is not
	// ASCII: the message goes only to a server offering SMTPUTF8 (RFC
	// 6531), with that parameter on MAIL FROM; a server that does not
	// offer it gets nothing, and Send returns an *SMTPUTF8Error.
	UTF8 bool
}

// SMTPUTF8Error is returned by Send for a message that needs SMTPUTF8
// (Envelope.UTF8) when the server does not offer it. Nothing was sent and
// the connection stays usable; the message cannot go to that server.
type SMTPUTF8Error struct {
	Host string
}

func (e *SMTPUTF8Error) Error() string {
	return "the address has characters that are not ASCII before the @, and " + e.Host +
		" does not offer SMTPUTF8 (RFC 6531), so it cannot take mail for it"
}

// Conn is an open connection of a Transport.
type Conn interface {
	// Send transfers one message. An SMTP refusal comes back as a Reply
	// with its code (>= 400) and a nil error. A non-nil error means the
	// connection is done and must be closed; with a Reply that has a code,
	// the server answered for the message first (a refusal, then a hang-up
	// or a 421) and that answer decides it; with none (network, timeout,
	// protocol violation), the message's fate is unknown. A *DialError
	// means the connection could not be opened at all (a wrapper that
	// dials lazily, such as Staging): it is handled as a failed Dial. A
	// *StoreError means Herald's own database failed and nothing was sent:
	// it is no outcome, and the message is sent again later.
	Send(ctx context.Context, env *Envelope) (Reply, error)
	Close() error
}

// Reply is a server's answer to a message.
type Reply struct {
	Code     int
	Enhanced string // "4.7.0"; "" when the server gave none
	Text     string
	MXHost   string // the host that answered
	// Command is what the reply answered, as smtpclient.Reply.Command
	// ("RCPT", "end of data", "greeting", …); "" when not known. It is
	// the stage the bounce classifier weighs a refusal by.
	Command  string
	SourceIP string // the local address the connection used
	// TLS: "" = plain text; otherwise the version and whether the
	// certificate was verified, e.g. "TLSv1.3 verified", "TLSv1.2
	// unverified"; or "plain text after a failed STARTTLS handshake (…)"
	// when opportunistic TLS fell back to a new plain-text connection.
	TLS string
	// TLSPolicy is a TLS policy failure that did not stop the message
	// (MTA-STS in testing mode: the MX host not in the policy, no
	// STARTTLS, an invalid certificate), to be reported; "" when none.
	TLSPolicy string
	// Relayed says a relay pool shared by every recipient domain carried
	// the message: the pool has applied a slow-down reply to itself (all
	// domains' mail waited), so the recipient's destination is not
	// suspended for it.
	Relayed bool
}

// captureHost is the MXHost of a captured message's reply. A captured
// message crossed no network, so its TLS state is not recorded.
const captureHost = "outbox"

// DialError is returned by Dial. Permanent errors (null MX, no such domain,
// no address) fail the messages at once; others are retried.
type DialError struct {
	Permanent bool
	Reply     Reply // the server's refusal when it answered at all
	Err       error
}

func (e *DialError) Error() string {
	if e.Reply.Code != 0 {
		return fmt.Sprintf("dial: %d %s %s", e.Reply.Code, e.Reply.Enhanced, e.Reply.Text)
	}
	return "dial: " + e.Err.Error()
}

func (e *DialError) Unwrap() error { return e.Err }

// Capture keeps messages in the outbox table instead of sending them: the
// default transport when nothing is configured, so a new install can send a
// campaign and read what would have gone out.
type Capture struct {
	store OutboxStore
}

var _ Transport = (*Capture)(nil)

// NewCapture returns a capture transport writing to store.
func NewCapture(store OutboxStore) *Capture { return &Capture{store: store} }

// Dial returns a connection to the outbox.
func (c *Capture) Dial(ctx context.Context, r Route) (Conn, error) { return captureConn{c.store}, nil }

type captureConn struct{ store OutboxStore }

func (c captureConn) Close() error { return nil }

func (c captureConn) Send(ctx context.Context, env *Envelope) (Reply, error) {
	raw := make([]byte, 0, len(env.Signature)+len(env.Message))
	raw = append(append(raw, env.Signature...), env.Message...)
	m := &models.OutboxMessage{DeliveryID: env.DeliveryID, CampaignID: env.CampaignID, MailFrom: env.From, RcptTo: env.To, Raw: string(raw)}
	if msg, err := mail.ReadMessage(bytes.NewReader(raw)); err == nil {
		dec := new(mime.WordDecoder)
		m.Subject, _ = dec.DecodeHeader(msg.Header.Get("Subject"))
		m.MessageID = msg.Header.Get("Message-ID")
		if i := bytes.Index(raw, []byte("\r\n\r\n")); i >= 0 {
			m.Headers = string(raw[:i+2])
		}
		m.HTML, m.Text = bodies(msg.Header.Get("Content-Type"), msg.Header.Get("Content-Transfer-Encoding"), msg.Body)
	}
	if err := c.store.SaveOutbox(ctx, m); err != nil {
		return Reply{}, &StoreError{Err: err}
	}
	return Reply{Code: 250, Enhanced: "2.0.0", Text: "captured in the outbox", MXHost: captureHost}, nil
}

// bodies extracts the HTML and text parts of a message body.
func bodies(ctype, cte string, body io.Reader) (htmlPart, textPart string) {
	mt, params, err := mime.ParseMediaType(ctype)
	if err != nil {
		mt = "text/plain"
	}
	if strings.HasPrefix(mt, "multipart/") {
		mr := multipart.NewReader(body, params["boundary"])
		for {
			p, err := mr.NextPart() // decodes quoted-printable
			if err != nil {
				return
			}
			h, t := bodies(p.Header.Get("Content-Type"), "", p)
			if htmlPart == "" {
				htmlPart = h
			}
			if textPart == "" {
				textPart = t
			}
		}
	}
	b, _ := io.ReadAll(body)
	if strings.EqualFold(cte, "quoted-printable") {
		b, _ = io.ReadAll(newQPReader(b))
	}
	switch mt {
	case "text/html":
		return string(b), ""
	case "text/plain":
		return "", string(b)
	}
	return "", ""
}

// stale reports whether conn is known to be closed by the other side
// (a Conn may tell, by having a Stale method), so that the next message
// goes out on a new connection instead of failing on this one.
func stale(conn Conn) bool {
	s, ok := conn.(interface{ Stale() bool })
	return ok && s.Stale()
}

func newQPReader(b []byte) io.Reader { return quotedprintable.NewReader(bytes.NewReader(b)) }
