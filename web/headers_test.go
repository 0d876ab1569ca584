package web

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/herald-mail/herald/models"
)

// A reply_to carrying "\r\nBcc: …" once produced a separate Bcc field in
// the sent (and DKIM-signed) message through POST /api/v1/tx. It is now
// refused with a 422 saying what is wrong, by the transactional API, the
// campaign API and the campaign form alike (one check, HeaderAddress), and
// no message ever carries the injected field.
func TestReplyToHeaderInjectionRefused(t *testing.T) {
	app := newTestApp(t, nil)
	ctx := context.Background()
	u, _ := app.store.CreateUser(ctx, "api@example.com", "", "correct horse battery", models.RoleMarketer)
	tok, _, _ := app.store.CreateAPIToken(ctx, u.ID, "test")
	list, tmpl := composeFixture(t, app.store, 1)
	if err := app.store.CreateTemplate(ctx, &models.Template{Kind: models.TemplateTransactional, Name: "reset", Subject: "Reset", Text: "Code 42"}); err != nil {
		t.Fatal(err)
	}
	const injected = "ok@example.com\r\nBcc: victim@example.net"
	const reason = "contains a line break"
	replyTo, _ := json.Marshal(injected)

	type apiError struct {
		Error struct {
			Message string
			Fields  map[string]string
		}
	}
	p := app.api("POST", "/api/v1/tx", tok, `{"template":"reset","to":"solo@example.org","from":"no-reply@acme.test","reply_to":`+string(replyTo)+`}`)
	var txErr apiError
	json.Unmarshal([]byte(p.Body), &txErr)
	if p.StatusCode != 422 || !strings.Contains(txErr.Error.Message, "reply_to") || !strings.Contains(txErr.Error.Message, reason) {
		t.Errorf("POST /api/v1/tx with reply_to %q: %d %s; want 422 saying reply_to %s", injected, p.StatusCode, p.Body, reason)
	}

	p = app.api("POST", "/api/v1/campaigns", tok, fmt.Sprintf(`{"name":"Inject","template_id":%d,"from_email":"news@acme.test","reply_to":%s,"lists":[%d]}`,
		tmpl, replyTo, list))
	var cpErr apiError
	json.Unmarshal([]byte(p.Body), &cpErr)
	if p.StatusCode != 422 || !strings.Contains(cpErr.Error.Fields["reply_to"], reason) {
		t.Errorf("POST /api/v1/campaigns with reply_to %q: %d %s; want 422 with fields.reply_to saying it %s", injected, p.StatusCode, p.Body, reason)
	}
	if !strings.HasSuffix(txErr.Error.Message, cpErr.Error.Fields["reply_to"]) {
		t.Errorf("the two paths explain differently:\n tx:       %q\n campaign: %q", txErr.Error.Message, cpErr.Error.Fields["reply_to"])
	}

	m := app.user(models.RoleMarketer)
	p = m.postForm("/campaigns", url.Values{"name": {"Inject"}, "template_id": {fmt.Sprint(tmpl)}, "from_email": {"news@acme.test"},
		"reply_to": {injected}, "lists": {fmt.Sprint(list)}})
	if got := p.Doc.Find(`[data-testid="err-reply_to"]`).Text(); p.StatusCode != 422 || !strings.Contains(got, reason) {
		t.Errorf("campaign form with reply_to %q: %d, message %q; want 422 saying it %s", injected, p.StatusCode, got, reason)
	}

	// A good request afterwards is sent; nothing in the outbox carries the
	// injected field.
	p = app.api("POST", "/api/v1/tx", tok, `{"template":"reset","to":"solo@example.org","from":"no-reply@acme.test","reply_to":"help@acme.test"}`)
	if p.StatusCode != 202 {
		t.Fatalf("good tx: %d %s", p.StatusCode, p.Body)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		msgs, err := app.store.Outbox(ctx, models.OutboxQuery{})
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) > 0 {
			for _, row := range msgs {
				o, err := app.store.OutboxMessage(ctx, row.ID)
				if err != nil {
					t.Fatal(err)
				}
				if strings.Contains(strings.ToLower(o.Raw), "\nbcc:") {
					t.Errorf("outbox message to %s carries a Bcc field:\n%s", o.RcptTo, o.Headers)
				}
				if !strings.Contains(o.Headers, "Reply-To: <help@acme.test>\r\n") {
					t.Errorf("outbox message headers lack the good Reply-To:\n%s", o.Headers)
				}
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the good transactional message never reached the outbox")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
