package mailer

import (
	"bytes"
	"crypto"
	"fmt"

	"github.com/emersion/go-msgauth/dkim"

	"github.com/herald-mail/herald/models"
)

// SignedHeaders are the header fields Herald's DKIM signatures cover, each
// oversigned: named in h= once more than the message has it (once when it
// has none), so that a field of that name added on the way, whether above
// or below the others, breaks the signature (RFC 6376 5.4.2 and 8.15)
// instead of changing what a signed message says.
var SignedHeaders = []string{
	"From", "To", "Cc", "Subject", "Date", "Message-ID", "Reply-To",
	"List-Unsubscribe", "List-Unsubscribe-Post", "List-Id", "Feedback-ID",
	"MIME-Version", "Content-Type", "Content-Transfer-Encoding",
}

// dkimSigner signs messages for one sending domain: RSA-2048 always, and a
// second Ed25519 signature when the domain has that key.
type dkimSigner struct {
	opts []*dkim.SignOptions
}

func newDKIMSigner(k *models.DKIMKeys) *dkimSigner {
	s := &dkimSigner{}
	s.opts = append(s.opts, signOptions(k.Domain, k.Selector, k.RSA))
	if k.Ed25519 != nil {
		s.opts = append(s.opts, signOptions(k.Domain, k.Ed25519Selector, k.Ed25519))
	}
	return s
}

func signOptions(domain, selector string, key crypto.Signer) *dkim.SignOptions {
	return &dkim.SignOptions{
		Domain:                 domain,
		Selector:               selector,
		Signer:                 key,
		Hash:                   crypto.SHA256,
		HeaderCanonicalization: dkim.CanonicalizationRelaxed,
		BodyCanonicalization:   dkim.CanonicalizationRelaxed,
	}
}

// sign returns the DKIM-Signature header fields for msg, to be prepended,
// Ed25519 first so the RSA signature is the topmost.
func (s *dkimSigner) sign(msg []byte) ([]byte, error) {
	if s == nil {
		return nil, nil
	}
	keys := headerKeys(msg)
	var out []byte
	for i := len(s.opts) - 1; i >= 0; i-- {
		o := *s.opts[i]
		o.HeaderKeys = keys
		sg, err := dkim.NewSigner(&o)
		if err != nil {
			return nil, fmt.Errorf("dkim: %w", err)
		}
		if _, err := sg.Write(msg); err != nil {
			sg.Close()
			return nil, fmt.Errorf("dkim: %w", err)
		}
		if err := sg.Close(); err != nil {
			return nil, fmt.Errorf("dkim: %w", err)
		}
		out = append([]byte(sg.Signature()), out...)
	}
	return out, nil
}

// headerKeys returns the h= list for msg: each of SignedHeaders as many
// times as msg's header has it, plus one.
func headerKeys(msg []byte) []string {
	end := bytes.Index(msg, []byte("\r\n\r\n"))
	if end < 0 {
		end = len(msg)
	}
	count := make([]int, len(SignedHeaders))
	for head := msg[:end+2]; len(head) > 0; {
		line := head
		if i := bytes.Index(head, []byte("\r\n")); i >= 0 {
			line, head = head[:i], head[i+2:]
		} else {
			head = nil
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || line[0] == ' ' || line[0] == '\t' {
			continue // a continuation line, or no field
		}
		name := bytes.TrimRight(line[:colon], " \t")
		for i, h := range SignedHeaders {
			if equalFoldASCII(h, name) {
				count[i]++
				break
			}
		}
	}
	n := len(SignedHeaders)
	for i := range SignedHeaders {
		n += count[i]
	}
	keys := make([]string, 0, n)
	for i, h := range SignedHeaders {
		for range count[i] + 1 {
			keys = append(keys, h)
		}
	}
	return keys
}

// equalFoldASCII reports whether the field names a and b are equal
// ignoring ASCII case.
func equalFoldASCII(a string, b []byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}
