package token_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/herald-mail/herald/internal/token"
)

func TestSignVerify(t *testing.T) {
	kr := token.NewKeyring("new-secret", "old-secret")
	old := token.NewKeyring("old-secret")
	other := token.NewKeyring("someone-else")
	tests := []struct {
		name    string
		signer  *token.Keyring
		kind    token.Kind
		ids     []int64
		want    token.Kind
		n       int
		wantErr error
	}{
		{"open", kr, token.Open, []int64{42}, token.Open, 1, nil},
		{"click", kr, token.Click, []int64{1 << 40, 7}, token.Click, 2, nil},
		{"old key still verifies", old, token.Unsubscribe, []int64{9}, token.Unsubscribe, 1, nil},
		{"unknown key", other, token.Open, []int64{42}, token.Open, 1, token.ErrBadSig},
		{"wrong kind", kr, token.Open, []int64{42}, token.Click, 1, token.ErrWrongKind},
		{"wrong arity", kr, token.Click, []int64{1, 2}, token.Click, 1, token.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok := tt.signer.Sign(tt.kind, tt.ids...)
			got, err := kr.Verify(tok, tt.want, tt.n)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Verify(%q) error = %v, want %v", tok, err, tt.wantErr)
			}
			if err == nil && (len(got) != len(tt.ids) || got[0] != tt.ids[0]) {
				t.Errorf("Verify(%q) = %v, want %v", tok, got, tt.ids)
			}
		})
	}
}

func TestTamperedTokenFails(t *testing.T) {
	kr := token.NewKeyring("s")
	tok := []byte(kr.Sign(token.Click, 5, 6))
	for i := range tok {
		bad := append([]byte(nil), tok...)
		if bad[i] == 'A' {
			bad[i] = 'B'
		} else {
			bad[i] = 'A'
		}
		if _, err := kr.Verify(string(bad), token.Click, 2); err == nil {
			t.Errorf("Verify(%q) with byte %d changed = nil error, want failure", bad, i)
		}
	}
	if n := len(tok); n > 30 {
		t.Errorf("len(click token) = %d, want compact (<= 30)", n)
	}
}

func BenchmarkSign(b *testing.B) {
	kr := token.NewKeyring("s")
	for i := 0; b.Loop(); i++ {
		kr.Sign(token.Click, int64(i), 3)
	}
}

// TestKindsAreDistinct: a token of one kind must never verify as another,
// which two kinds sharing a letter would allow.
func TestKindsAreDistinct(t *testing.T) {
	seen := map[token.Kind]string{}
	for name, k := range map[string]token.Kind{"Open": token.Open, "Click": token.Click, "CampaignClick": token.CampaignClick,
		"Unsubscribe": token.Unsubscribe, "Preferences": token.Preferences, "Bounce": token.Bounce, "MessageID": token.MessageID, "Confirm": token.Confirm} {
		if other, ok := seen[k]; ok {
			t.Errorf("kinds %s and %s share the letter %q", name, other, k)
		}
		seen[k] = name
	}
}

// TestAddressTokenIgnoresCase: an address token verifies whatever the case
// an MTA hands it back in; URL tokens of addresses handed out before
// address tokens existed still verify with their case intact.
func TestAddressTokenIgnoresCase(t *testing.T) {
	kr := token.NewKeyring("new-secret", "old-secret")
	old := token.NewKeyring("old-secret")
	const id = 1<<40 + 12345
	addr := kr.SignAddress(token.Bounce, id)
	legacy := kr.Sign(token.Bounce, id)
	tests := []struct {
		name    string
		tok     string
		wantErr error
	}{
		{"as signed", addr, nil},
		{"lowercased", strings.ToLower(addr), nil},
		{"uppercased", strings.ToUpper(addr), nil},
		{"mixed case", mixCase(addr), nil},
		{"old key", old.SignAddress(token.Bounce, id), nil},
		{"address form of a URL token", token.AddressForm(legacy), nil},
		{"URL token, case intact", legacy, nil},
		{"unknown key", token.NewKeyring("x").SignAddress(token.Bounce, id), token.ErrBadSig},
		{"wrong kind", kr.SignAddress(token.Open, id), token.ErrWrongKind},
		{"garbage", "not-a-token!", token.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := kr.AddressDelivery(tt.tok, token.Bounce)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("AddressDelivery(%q) error = %v, want %v", tt.tok, err, tt.wantErr)
			}
			if err == nil && got != id {
				t.Errorf("AddressDelivery(%q) = %d, want %d", tt.tok, got, id)
			}
		})
	}
	if s := strings.ToLower(addr); s != addr {
		t.Errorf("SignAddress() = %q, want lowercase", addr)
	}
	if got := token.AddressForm(legacy); got != addr {
		t.Errorf("AddressForm(Sign()) = %q, want SignAddress() = %q", got, addr)
	}
	// The local part of an address holds at most 64 octets.
	if n := len("b-" + kr.SignAddress(token.Bounce, 1<<62)); n > 64 {
		t.Errorf("len(b- + address token) = %d, want <= 64", n)
	}
	// A URL token lowercased is lost (that is why address tokens exist);
	// it must fail, not verify as something else.
	if _, err := kr.AddressDelivery(strings.ToLower(legacy), token.Bounce); err == nil && strings.ToLower(legacy) != legacy {
		t.Errorf("AddressDelivery(lowercased URL token) = nil error, want failure")
	}
}

func TestTamperedAddressTokenFails(t *testing.T) {
	kr := token.NewKeyring("s")
	tok := []byte(kr.SignAddress(token.Bounce, 77))
	for i := range tok {
		bad := append([]byte(nil), tok...)
		if bad[i] == 'a' {
			bad[i] = 'b'
		} else {
			bad[i] = 'a'
		}
		if _, err := kr.AddressDelivery(string(bad), token.Bounce); err == nil {
			t.Errorf("AddressDelivery(%q) with byte %d changed = nil error, want failure", bad, i)
		}
	}
}

// mixCase upper-cases every other letter.
func mixCase(s string) string {
	b := []byte(s)
	for i := 0; i < len(b); i += 2 {
		b[i] = strings.ToUpper(string(b[i]))[0]
	}
	return string(b)
}
