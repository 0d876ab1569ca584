package web

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/herald-mail/herald/models"
)

// Bad webhook forms are answered 422 with the reason beside the field,
// never saved; a good one shows its secret once.
func TestWebhookFormValidation(t *testing.T) {
	app := newTestApp(t, nil)
	admin := app.user(models.RoleAdmin)
	for _, tc := range []struct {
		url    string
		events []string
		want   string
	}{
		{"ftp://example.com/x", []string{"sent"}, "absolute http:// or https:// URL"},
		{"http://10.0.0.7/hook", []string{"sent"}, "10.0.0.7 is a private address"},
		{"http://localhost:8080/hook", []string{"sent"}, "localhost resolves to"},
		{"https://93.184.216.34/hook", nil, "Choose at least one event"},
		{"https://93.184.216.34/hook", []string{"sent", "exploded"}, `Unknown event "exploded"`},
	} {
		p := admin.postForm("/settings/webhooks", url.Values{"url": {tc.url}, "events": tc.events})
		if p.StatusCode != 422 || !strings.Contains(p.Doc.Find(`[data-testid="webhook-form"]`).Text(), tc.want) {
			t.Errorf("%s %v: %d; want 422 saying %q", tc.url, tc.events, p.StatusCode, tc.want)
		}
	}
	if hooks, _ := app.store.Webhooks(context.Background()); len(hooks) != 0 {
		t.Fatalf("refused forms saved %d webhooks", len(hooks))
	}
	p := admin.postForm("/settings/webhooks", url.Values{"url": {"https://93.184.216.34/hook"}, "events": {"opened", "sent"}})
	secret, _ := p.Doc.Find(`[data-testid="webhook-secret"]`).Attr("value")
	hooks, _ := app.store.Webhooks(context.Background())
	if p.StatusCode != 200 || len(hooks) != 1 || secret != hooks[0].Secret || strings.Join(hooks[0].Events, ",") != "sent,opened" {
		t.Fatalf("create: %d, hooks %+v, secret shown %q", p.StatusCode, hooks, secret)
	}
	if again := admin.get("/settings/webhooks"); strings.Contains(again.Body, secret) {
		t.Error("the secret is shown again on the list")
	}
	if p := admin.get(fmt.Sprintf("/settings/webhooks/%d", hooks[0].ID)); strings.Contains(p.Body, secret) {
		t.Error("the secret is shown on the webhook's page")
	}
	if p := admin.get("/settings/webhooks/999"); p.StatusCode != 404 {
		t.Errorf("missing webhook: %d, want 404", p.StatusCode)
	}
	// Disabled, it cannot be tested.
	path := fmt.Sprintf("/settings/webhooks/%d", hooks[0].ID)
	admin.postForm(path, url.Values{"url": {"https://93.184.216.34/hook"}, "events": {"sent"}})
	if h, err := app.store.Webhook(context.Background(), hooks[0].ID); err != nil || h.Enabled || strings.Join(h.Events, ",") != "sent" {
		t.Fatalf("after saving unticked: %+v, %v; want disabled, sent only", h, err)
	}
	if p := admin.postForm(path+"/test", nil); p.StatusCode != 422 || !strings.Contains(p.Body, "enable it first") {
		t.Errorf("test of a disabled webhook: %d", p.StatusCode)
	}
}

func TestWebhooksAPI(t *testing.T) {
	app := newTestApp(t, nil)
	ctx := context.Background()
	app.user(models.RoleAdmin)
	u, err := app.store.UserByEmail(ctx, "admin@example.com")
	if err != nil {
		t.Fatal(err)
	}
	token, _, err := app.store.CreateAPIToken(ctx, u.ID, "hooks")
	if err != nil {
		t.Fatal(err)
	}
	p := app.api("POST", "/api/v1/webhooks", token, `{"url":"http://192.168.1.5/hook","events":["sent"]}`)
	if p.StatusCode != 422 || !strings.Contains(p.Body, "192.168.1.5 is a private address") {
		t.Fatalf("private target: %d %s", p.StatusCode, p.Body)
	}
	p = app.api("POST", "/api/v1/webhooks", token, `{"url":"https://93.184.216.34/hook","events":["clicked","opened"]}`)
	var created struct {
		Data struct {
			ID     int64
			Secret string
			Events []string
		}
	}
	if err := json.Unmarshal([]byte(p.Body), &created); err != nil || p.StatusCode != 201 || !strings.HasPrefix(created.Data.Secret, "whsec_") ||
		strings.Join(created.Data.Events, ",") != "opened,clicked" {
		t.Fatalf("create: %d %s", p.StatusCode, p.Body)
	}
	if p := app.api("GET", "/api/v1/webhooks", token, ""); p.StatusCode != 200 || strings.Contains(p.Body, created.Data.Secret) {
		t.Errorf("list: %d %s; want the webhook without its secret", p.StatusCode, p.Body)
	}
	path := fmt.Sprintf("/api/v1/webhooks/%d", created.Data.ID)
	if p := app.api("PUT", path, token, `{"url":"https://93.184.216.34/other","events":["sent"],"enabled":false}`); p.StatusCode != 200 ||
		!strings.Contains(p.Body, `"enabled":false`) || !strings.Contains(p.Body, "/other") {
		t.Errorf("update: %d %s", p.StatusCode, p.Body)
	}
	if p := app.api("GET", path+"/deliveries", token, ""); p.StatusCode != 200 || !strings.Contains(p.Body, `"data":[]`) {
		t.Errorf("deliveries: %d %s", p.StatusCode, p.Body)
	}
	if p := app.api("DELETE", path, token, ""); p.StatusCode != 204 {
		t.Errorf("delete: %d %s", p.StatusCode, p.Body)
	}
	if p := app.api("GET", path, token, ""); p.StatusCode != 404 {
		t.Errorf("deleted: %d", p.StatusCode)
	}
}
