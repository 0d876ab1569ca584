package models

import (
	"context"
	"fmt"
)

// The built-in transactional templates of account mail. EnsureAccountTemplate
// creates one on first use; an admin may edit it like any other template.
const (
	// InvitationTemplate sees .Data.invite_url, .Data.role,
	// .Data.invited_by and .Data.expires (a date and time, UTC).
	InvitationTemplate = "user-invitation"
	// PasswordResetTemplate sees .Data.reset_url, .Data.expires and
	// .Data.forgot_url (to ask for a new link).
	PasswordResetTemplate = "password-reset"
	// BlocklistTemplate tells an admin of a new blocklist listing; it sees
	// .Data.target, .Data.source (what Herald uses it for), .Data.list,
	// .Data.zone, .Data.meaning, .Data.delist_url, .Data.page_url and
	// .Data.paused (the pool the rule paused, "" when none).
	BlocklistTemplate = "blocklist-listing"
)

type builtinTemplate struct{ subject, html, text string }

var accountTemplates = map[string]builtinTemplate{
	BlocklistTemplate: {
		subject: `Blocklisted: {{.Data.target}} on {{.Data.list}}`,
		html: `<!DOCTYPE html>
<html><body style="font-family:sans-serif;line-height:1.5">
<p>Hello,</p>
<p>{{.Data.target}} ({{.Data.source}}) is now listed on {{.Data.list}} ({{.Data.zone}}): {{.Data.meaning}}.</p>
{{with .Data.paused}}<p>The IP pool {{.}} is paused: it sends nothing until the listing is gone.</p>{{end}}
<p>Find the cause (a compromised form, a bought list, a sudden volume) before asking for removal{{with .Data.delist_url}}: <a href="{{.}}">{{.}}</a>{{end}}.</p>
<p><a href="{{.Data.page_url}}">Open Deliverability → Reputation</a></p>
</body></html>`,
		text: `Hello,

{{.Data.target}} ({{.Data.source}}) is now listed on {{.Data.list}} ({{.Data.zone}}): {{.Data.meaning}}.
{{with .Data.paused}}
The IP pool {{.}} is paused: it sends nothing until the listing is gone.
{{end}}
Find the cause (a compromised form, a bought list, a sudden volume) before asking for removal{{with .Data.delist_url}}: {{.}}{{end}}.

Deliverability → Reputation: {{.Data.page_url}}
`,
	},
	InvitationTemplate: {
		subject: `You are invited to Herald{{with .Org.Name}} at {{.}}{{end}}`,
		html: `<!DOCTYPE html>
<html><body style="font-family:sans-serif;line-height:1.5">
<p>Hello,</p>
<p>{{.Data.invited_by}} invited you ({{.Subscriber.Email}}) to Herald{{with .Org.Name}} at {{.}}{{end}}, as {{.Data.role}}.</p>
<p><a href="{{.Data.invite_url}}" style="display:inline-block;padding:.6em 1.2em;background:#4f46e5;color:#fff;text-decoration:none;border-radius:.3em">Accept the invitation</a></p>
<p>The link works once, until {{.Data.expires}}. If you did not expect it, ignore this message.</p>
</body></html>`,
		text: `Hello,

{{.Data.invited_by}} invited you ({{.Subscriber.Email}}) to Herald{{with .Org.Name}} at {{.}}{{end}}, as {{.Data.role}}.

To accept, open this link, choose your name and password:

{{.Data.invite_url}}

The link works once, until {{.Data.expires}}. If you did not expect it, ignore this message.
`,
	},
	PasswordResetTemplate: {
		subject: `Reset your Herald password`,
		html: `<!DOCTYPE html>
<html><body style="font-family:sans-serif;line-height:1.5">
<p>Hello,</p>
<p>Someone, we hope you, asked to reset the password of the Herald account {{.Subscriber.Email}}.</p>
<p><a href="{{.Data.reset_url}}" style="display:inline-block;padding:.6em 1.2em;background:#4f46e5;color:#fff;text-decoration:none;border-radius:.3em">Choose a new password</a></p>
<p>The link works once, until {{.Data.expires}}. If it has expired, ask for a new one: {{.Data.forgot_url}}</p>
<p>If you did not ask for this, ignore this message: your password stays as it is.</p>
</body></html>`,
		text: `Hello,

Someone, we hope you, asked to reset the password of the Herald account {{.Subscriber.Email}}.

To choose a new password, open this link:

{{.Data.reset_url}}

The link works once, until {{.Data.expires}}. If it has expired, ask for a new one: {{.Data.forgot_url}}

If you did not ask for this, ignore this message: your password stays as it is.
`,
	},
}

// EnsureAccountTemplate returns the built-in account template name
// (InvitationTemplate, PasswordResetTemplate or BlocklistTemplate), creating it when it does
// not exist yet. Concurrent first uses agree on one row.
func (s *Store) EnsureAccountTemplate(ctx context.Context, name string) (*Template, error) {
	b, ok := accountTemplates[name]
	if !ok {
		return nil, fmt.Errorf("models: no built-in template %q: %w", name, ErrNotFound)
	}
	t := dbNow()
	err := s.conn(ctx).Exec(`INSERT INTO templates (kind, name, subject, html, text, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (kind, name) DO NOTHING`,
		TemplateTransactional, name, b.subject, b.html, b.text, t, t).Error
	if err != nil {
		return nil, fmt.Errorf("models: ensure template %s: %w", name, err)
	}
	return s.TemplateByName(ctx, TemplateTransactional, name)
}
