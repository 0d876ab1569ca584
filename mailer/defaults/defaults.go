// Package defaults holds the templates Herald ships with.
package defaults

import _ "embed"

// NewsletterHTML is the HTML body of the default campaign template: a
// responsive single-column layout whose footer carries the unsubscribe
// link, the preference-centre link and the organisation's postal address.
//
//go:embed newsletter.html
var NewsletterHTML string

// NewsletterText is its plain-text part.
//
//go:embed newsletter.txt
var NewsletterText string

// NewsletterSubject is its subject line.
const NewsletterSubject = "News from {{.Org.Name}}"
