package web

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/herald-mail/herald/models"
)

// TestListEditShowsEmbedCode: a public list's edit page offers the
// subscribe form to paste into a website; a private list's does not.
func TestListEditShowsEmbedCode(t *testing.T) {
	app := newTestApp(t, nil)
	m := app.user(models.RoleMarketer)
	ctx := context.Background()
	pub := &models.List{Name: "Public news", Optin: models.OptinDouble, Visibility: models.ListPublic}
	priv := &models.List{Name: "Staff", Optin: models.OptinSingle, Visibility: models.ListPrivate}
	for _, l := range []*models.List{pub, priv} {
		if err := app.store.CreateList(ctx, l); err != nil {
			t.Fatal(err)
		}
	}
	p := m.get(fmt.Sprintf("/lists/%d/edit", pub.ID))
	code := p.Doc.Find(`[data-testid="embed-code"]`).Text()
	if p.StatusCode != 200 || !strings.Contains(code, fmt.Sprintf("http://herald.test/subscribe/%d", pub.ID)) {
		t.Errorf("public list edit page: status %d, embed code %q", p.StatusCode, code)
	}
	if p := m.get(fmt.Sprintf("/lists/%d/edit", priv.ID)); p.Doc.Find(`[data-testid="embed-code"]`).Length() != 0 {
		t.Error("a private list offers a public subscribe form")
	}
}
