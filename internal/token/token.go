// Package token makes and checks the short signed tokens that Herald puts in
// URLs and addresses: open pixels, click redirects, one-click unsubscribe,
// the preference centre, double opt-in confirmation and VERP return paths.
//
// A token is base64url (no padding) of
//
//	kind (1 byte) | ids (uvarints) | key id (1 byte) | HMAC-SHA256 tag (12 bytes)
//
// The tag covers everything before it. Keys rotate: the first key of a
// Keyring signs, every key verifies, so tokens in mail already sent keep
// working after a new secret is introduced.
//
// A token in the local part of an address (the VERP return path, the
// mailto unsubscribe address) is the same bytes in lowercase base32 instead
// (SignAddress, AddressForm): some MTAs lowercase the address a bounce is
// sent to, and base64url does not survive that. VerifyAddress reads either
// case of it, and base64url tokens of addresses handed out before, as long
// as their case is intact.
package token

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base32"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"hash"
	"sync"
)

// Kind says what a token grants; a token of one kind never verifies as
// another.
type Kind byte

const (
	Open  Kind = 'o' // ids: delivery
	Click Kind = 'c' // ids: delivery, link (older mail; still verifies)
	// CampaignClick is the click token the mailer signs now: it carries the
	// campaign too, so the redirect needs no database read.
	CampaignClick Kind = 'k' // ids: delivery, link, campaign
	Unsubscribe   Kind = 'u' // ids: delivery
	Preferences   Kind = 'p' // ids: subscriber
	Bounce        Kind = 'b' // ids: delivery (VERP return path)
	MessageID     Kind = 'm' // ids: delivery (stable Message-ID local part)
	Confirm       Kind = 'd' // ids: subscriber, list (double opt-in confirmation)
	Invite        Kind = 'i' // ids: invitation, nonce (a dashboard invitation)
	Reset         Kind = 'r' // ids: password reset, nonce (a password reset link)
)

const tagLen = 12

// Errors returned by Verify.
var (
	ErrMalformed = errors.New("token: malformed")
	ErrBadSig    = errors.New("token: bad signature")
	ErrWrongKind = errors.New("token: wrong kind")
)

type key struct {
	id   byte
	pool sync.Pool // of *mac
}

// mac is an HMAC under one key with room for its sum, pooled together so
// that a tag costs no allocation (a sum buffer passed through the
// hash.Hash interface escapes to the heap).
type mac struct {
	h   hash.Hash
	sum [sha256.Size]byte
	buf [64]byte // a token being signed or checked
}

// Keyring signs with its newest key and verifies with all of them. It is safe
// for concurrent use.
type Keyring struct {
	keys []*key
}

// NewKeyring derives keys from server secrets, newest first: secrets[0]
// signs, all verify. It panics when no secret is given, which is a
// programming error.
func NewKeyring(secrets ...string) *Keyring {
	if len(secrets) == 0 {
		panic("token: NewKeyring needs at least one secret")
	}
	kr := &Keyring{}
	for _, s := range secrets {
		// Domain-separate the token key from other uses of the secret.
		m := hmac.New(sha256.New, []byte(s))
		m.Write([]byte("herald token v1"))
		derived := m.Sum(nil)
		k := &key{id: derived[31]}
		k.pool.New = func() any { return &mac{h: hmac.New(sha256.New, derived[:])} }
		kr.keys = append(kr.keys, k)
	}
	return kr
}

// tag appends the tag of msg to dst.
func (m *mac) tag(dst, msg []byte) []byte {
	m.h.Reset()
	m.h.Write(msg)
	return append(dst, m.h.Sum(m.sum[:0])[:tagLen]...)
}

func (k *key) tag(dst, msg []byte) []byte {
	m := k.pool.Get().(*mac)
	dst = m.tag(dst, msg)
	k.pool.Put(m)
	return dst
}

// addressEncoding writes address tokens: lowercase base32, no padding.
// Decoding folds the token to lowercase first, so any case reads back.
var addressEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// Sign returns a token of kind for ids, for a URL.
func (kr *Keyring) Sign(kind Kind, ids ...int64) string {
	return kr.sign(base64.RawURLEncoding, kind, ids)
}

// SignAddress returns a token of kind for ids that survives a change of
// case, for the local part of an address.
func (kr *Keyring) SignAddress(kind Kind, ids ...int64) string {
	return kr.sign(addressEncoding, kind, ids)
}

func (kr *Keyring) sign(enc interface{ EncodeToString([]byte) string }, kind Kind, ids []int64) string {
	k := kr.keys[0]
	m := k.pool.Get().(*mac) // its buffer too: a local one would escape through the hash
	b := append(m.buf[:0], byte(kind))
	for _, id := range ids {
		b = binary.AppendUvarint(b, uint64(id))
	}
	b = append(b, k.id)
	b = m.tag(b, b)
	tok := enc.EncodeToString(b)
	k.pool.Put(m)
	return tok
}

// AddressForm returns the address form of a token made by Sign (the same
// signed bytes; nothing is signed again), or "" when tok is malformed.
func AddressForm(tok string) string {
	var buf [66]byte
	body, tag, err := split(tok, buf[:])
	if err != nil {
		return ""
	}
	return addressEncoding.EncodeToString(buf[:len(body)+len(tag)])
}

// Verify checks tok and returns its ids. want is the kind the caller
// accepts; n is how many ids it must carry.
func (kr *Keyring) Verify(tok string, want Kind, n int) ([]int64, error) {
	var buf [66]byte
	body, tag, err := split(tok, buf[:])
	if err != nil {
		return nil, err
	}
	return kr.check(body, tag, want, n)
}

// check verifies a decoded token's tag and returns its ids.
func (kr *Keyring) check(body, tag []byte, want Kind, n int) ([]int64, error) {
	kid := body[len(body)-1]
	ok := false
	for _, k := range kr.keys {
		if k.id != kid {
			continue
		}
		var exp [tagLen]byte
		if hmac.Equal(k.tag(exp[:0], body), tag) {
			ok = true
			break
		}
	}
	if !ok {
		return nil, ErrBadSig
	}
	return ids(body, want, n)
}

// VerifyAddress is Verify for a token taken from the local part of an
// address: an address token in any case (SignAddress, AddressForm), or a
// URL token with its case intact (addresses handed out before address
// tokens existed).
func (kr *Keyring) VerifyAddress(tok string, want Kind, n int) ([]int64, error) {
	var buf [66]byte
	body, tag, err := splitAddress(tok, buf[:])
	if err == nil {
		var ids []int64
		if ids, err = kr.check(body, tag, want, n); err == nil {
			return ids, nil
		}
	}
	// A base32 string is often valid base64url too: only a verified tag
	// tells which one was meant.
	ids, err64 := kr.Verify(tok, want, n)
	if err64 == nil || errors.Is(err, ErrMalformed) {
		return ids, err64
	}
	return nil, err
}

// AddressDelivery is Delivery for a token taken from an address (see
// VerifyAddress).
func (kr *Keyring) AddressDelivery(tok string, kind Kind) (int64, error) {
	ids, err := kr.VerifyAddress(tok, kind, 1)
	if err != nil {
		return 0, err
	}
	return ids[0], nil
}

// Peek returns the ids a token of kind want carries without checking its
// tag. The ids are a claim, not a proof: use them only to find a row that
// keeps its own copy of the token, and compare that copy (a Message-ID
// signed with a secret since retired still finds its delivery this way).
func Peek(tok string, want Kind, n int) ([]int64, error) {
	var buf [66]byte
	body, _, err := split(tok, buf[:])
	if err != nil {
		return nil, err
	}
	return ids(body, want, n)
}

// split decodes tok into buf and returns the signed body (kind, ids, key
// id) and the tag.
func split(tok string, buf []byte) (body, tag []byte, err error) {
	if len(tok) > 88 {
		return nil, nil, ErrMalformed
	}
	b := buf[:base64.RawURLEncoding.DecodedLen(len(tok))]
	m, err := base64.RawURLEncoding.Decode(b, []byte(tok))
	if err != nil || m < 2+tagLen {
		return nil, nil, ErrMalformed
	}
	return b[:m-tagLen], b[m-tagLen : m], nil
}

// splitAddress is split for an address token, in any case.
func splitAddress(tok string, buf []byte) (body, tag []byte, err error) {
	if len(tok) > 88 {
		return nil, nil, ErrMalformed
	}
	var lower [88]byte
	for i := 0; i < len(tok); i++ {
		c := tok[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		lower[i] = c
	}
	b := buf[:addressEncoding.DecodedLen(len(tok))]
	m, err := addressEncoding.Decode(b, lower[:len(tok)])
	if err != nil || m < 2+tagLen {
		return nil, nil, ErrMalformed
	}
	return b[:m-tagLen], b[m-tagLen : m], nil
}

// ids reads the n ids of a body of kind want.
func ids(body []byte, want Kind, n int) ([]int64, error) {
	if Kind(body[0]) != want {
		return nil, ErrWrongKind
	}
	rest := body[1 : len(body)-1]
	out := make([]int64, 0, n)
	for len(rest) > 0 {
		v, k := binary.Uvarint(rest)
		if k <= 0 {
			return nil, ErrMalformed
		}
		out = append(out, int64(v))
		rest = rest[k:]
	}
	if len(out) != n {
		return nil, ErrMalformed
	}
	return out, nil
}

// Delivery verifies a one-id token of kind (Open, Unsubscribe, Bounce) and
// returns the delivery id.
func (kr *Keyring) Delivery(tok string, kind Kind) (int64, error) {
	ids, err := kr.Verify(tok, kind, 1)
	if err != nil {
		return 0, err
	}
	return ids[0], nil
}

// ClickRef verifies a click token of either kind and returns its ids;
// campaignID is 0 for the older Click tokens, which do not carry it.
func (kr *Keyring) ClickRef(tok string) (deliveryID, linkID, campaignID int64, err error) {
	ids, err := kr.Verify(tok, CampaignClick, 3)
	if errors.Is(err, ErrWrongKind) {
		deliveryID, linkID, err = kr.ClickIDs(tok)
		return deliveryID, linkID, 0, err
	}
	if err != nil {
		return 0, 0, 0, err
	}
	return ids[0], ids[1], ids[2], nil
}

// ClickIDs verifies an older Click token and returns its delivery and link
// ids.
func (kr *Keyring) ClickIDs(tok string) (deliveryID, linkID int64, err error) {
	ids, err := kr.Verify(tok, Click, 2)
	if err != nil {
		return 0, 0, err
	}
	return ids[0], ids[1], nil
}
