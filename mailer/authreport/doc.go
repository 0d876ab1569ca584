// Package authreport reads the reports receivers send about a domain's
// mail: DMARC aggregate reports (RFC 7489 §7.2, XML, usually gzip or zip
// compressed) and SMTP TLS reports (RFC 8460, JSON, usually gzip
// compressed), found as attachments of a message.
//
// Reports come from anyone who can send mail, so every read is bounded:
// the decompressed size (Limits.MaxBytes, counted while reading, never
// trusted from a header), the number of zip entries and their declared
// sizes before one is opened, the number of rows, and XML that declares a
// DOCTYPE or ENTITY is refused outright (encoding/xml never fetches
// external entities or expands custom ones, but there is no reason to
// read further). Records are decoded one at a time, so memory follows the
// limits, not the input.
package authreport
