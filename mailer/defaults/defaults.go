// Package defaults holds the templates Herald ships with.
package defaults

import _ "embed"

// NewsletterHTML is the HTML body of the default campaign template: a
// responsive single-column layout whose footer carries the unsubscribe
// link, the preference-centre link and the organisation's postal address.
// It has no text part of its own: Herald derives it from the HTML, so the
// two never disagree after the HTML is edited.
//
//go:embed newsletter.html
var NewsletterHTML string

// NewsletterSubject is its subject line.
const NewsletterSubject = "News from {{.Org.Name}}"

// Placeholder is the default template's stand-in for the message, which
// must be replaced before a campaign goes out (the checklist blocks on it).
const Placeholder = "Write your message here."

// LayoutHTML is the layout a Markdown body is rendered into: the default
// template's header and footer around ContentSlot.
//
//go:embed layout.html
var LayoutHTML string

// ContentSlot marks where LayoutHTML takes the body. It is replaced before
// the layout is parsed, so it never reaches the template engine.
const ContentSlot = "{{ .Content }}"
