package token_test

import (
	"errors"
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
