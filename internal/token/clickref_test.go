package token_test

import (
	"errors"
	"testing"

	"github.com/herald-mail/herald/internal/token"
)

func TestClickRefReadsBothClickKinds(t *testing.T) {
	kr := token.NewKeyring("new-secret", "old-secret")
	old := token.NewKeyring("old-secret")
	d, l, c, err := kr.ClickRef(kr.Sign(token.CampaignClick, 1<<33, 7, 12))
	if err != nil || d != 1<<33 || l != 7 || c != 12 {
		t.Fatalf("ClickRef(campaign click) = %d, %d, %d, %v; want %d, 7, 12, nil", d, l, c, err, int64(1<<33))
	}
	// Mail sent before the campaign was carried keeps redirecting.
	d, l, c, err = kr.ClickRef(old.Sign(token.Click, 5, 6))
	if err != nil || d != 5 || l != 6 || c != 0 {
		t.Fatalf("ClickRef(old click) = %d, %d, %d, %v; want 5, 6, 0, nil", d, l, c, err)
	}
	if _, _, _, err := kr.ClickRef(kr.Sign(token.Open, 5)); !errors.Is(err, token.ErrWrongKind) {
		t.Errorf("ClickRef(open token) error = %v, want ErrWrongKind", err)
	}
	if _, _, _, err := kr.ClickRef(kr.Sign(token.CampaignClick, 5, 6)); !errors.Is(err, token.ErrMalformed) {
		t.Errorf("ClickRef(two ids) error = %v, want ErrMalformed", err)
	}
	if _, _, _, err := kr.ClickRef(token.NewKeyring("x").Sign(token.CampaignClick, 5, 6, 7)); !errors.Is(err, token.ErrBadSig) {
		t.Errorf("ClickRef(foreign key) error = %v, want ErrBadSig", err)
	}
	if _, err := kr.Verify(kr.Sign(token.CampaignClick, 5, 6, 7), token.Click, 3); !errors.Is(err, token.ErrWrongKind) {
		t.Errorf("a campaign click verified as an old click: %v", err)
	}
}
