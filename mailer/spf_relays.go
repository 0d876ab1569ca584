package mailer

import "strings"

// relayIncludes are the SPF includes relay providers document for their
// sending servers, by the suffix of their SMTP host.
var relayIncludes = []struct{ suffix, include string }{
	{"smtp.sendgrid.net", "sendgrid.net"},
	{".amazonaws.com", "amazonses.com"}, // email-smtp.<region>.amazonaws.com
	{"smtp.mailgun.org", "mailgun.org"},
	{"smtp.eu.mailgun.org", "mailgun.org"},
	{"smtp.postmarkapp.com", "spf.mtasv.net"},
	{"smtp-broadcasts.postmarkapp.com", "spf.mtasv.net"},
	{"smtp.gmail.com", "_spf.google.com"},
	{"smtp-relay.gmail.com", "_spf.google.com"},
	{"smtp.office365.com", "spf.protection.outlook.com"},
	{".mail.protection.outlook.com", "spf.protection.outlook.com"},
	{"smtp.sparkpostmail.com", "sparkpostmail.com"},
	{"in-v3.mailjet.com", "spf.mailjet.com"},
	{"smtp.mandrillapp.com", "spf.mandrillapp.com"},
	{"smtp.zoho.com", "zoho.com"},
	{"smtp.zoho.eu", "zoho.eu"},
	{"smtp.fastmail.com", "spf.messagingengine.com"},
	{"smtp-relay.brevo.com", "spf.brevo.com"},
	{"smtp-relay.sendinblue.com", "spf.brevo.com"},
}

// RelaySPFInclude returns the SPF include a relay provider documents for
// the servers behind SMTP host, "" when Herald does not know the host.
func RelaySPFInclude(host string) string {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	for _, r := range relayIncludes {
		if host == r.suffix || strings.HasPrefix(r.suffix, ".") && strings.HasSuffix(host, r.suffix) {
			return r.include
		}
	}
	return ""
}
