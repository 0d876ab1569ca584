package mailer

import (
	"bytes"
	"crypto"
	"fmt"
	"strings"

	"github.com/emersion/go-msgauth/dkim"

	"github.com/herald-mail/herald/models"
)

// SignedHeaders are the header fields covered by Herald's DKIM signatures
// when present in the message.
var SignedHeaders = []string{
	"From", "To", "Subject", "Date", "Message-ID", "Reply-To",
	"List-Unsubscribe", "List-Unsubscribe-Post", "List-Id", "Feedback-ID",
	"MIME-Version", "Content-Type",
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
	keys := presentHeaders(msg)
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

// presentHeaders returns the SignedHeaders found in msg's header.
func presentHeaders(msg []byte) []string {
	end := bytes.Index(msg, []byte("\r\n\r\n"))
	if end < 0 {
		end = len(msg)
	}
	head := msg[:end]
	keys := make([]string, 0, len(SignedHeaders))
	for _, h := range SignedHeaders {
		if hasHeader(head, h) {
			keys = append(keys, h)
		}
	}
	return keys
}

func hasHeader(head []byte, name string) bool {
	for len(head) > 0 {
		if len(head) > len(name) && head[len(name)] == ':' && strings.EqualFold(string(head[:len(name)]), name) {
			return true
		}
		i := bytes.Index(head, []byte("\r\n"))
		if i < 0 {
			return false
		}
		head = head[i+2:]
	}
	return false
}
