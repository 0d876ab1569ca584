package bounce

import "testing"

func TestClassifyReply(t *testing.T) {
	tests := []struct {
		name     string
		code     int
		enhanced string
		text     string
		kind     Kind
		cat      Category
		status   string
		slowDown bool
	}{
		{"accepted", 250, "2.0.0", "OK queued as 12345", KindNotBounce, CategoryNone, "2.0.0", false},
		{"gmail no such user", 550, "5.1.1", "The email account that you tried to reach does not exist. Please try double-checking the recipient's email address", KindHard, CategoryUserUnknown, "5.1.1", false},
		{"status in text", 550, "", "5.1.1 <a@example.com>: Recipient address rejected: User unknown in local recipient table", KindHard, CategoryUserUnknown, "5.1.1", false},
		{"unknown words without a stage are not sure", 550, "", "Requested action not taken: mailbox unavailable", KindSoft, CategoryUserUnknown, "", false},
		{"null MX", 556, "5.1.10", "Recipient address has null MX", KindHard, CategoryDomainNotFound, "5.1.10", false},
		{"temporary user unknown stays soft", 450, "4.1.1", "<a@example.com>: Recipient address rejected: User unknown", KindSoft, CategoryUserUnknown, "4.1.1", false},
		{"mailbox full", 552, "5.2.2", "The email account that you tried to reach is over quota", KindSoft, CategoryMailboxFull, "5.2.2", false},
		{"message too big", 552, "5.3.4", "Message size exceeds fixed maximum message size", KindSoft, CategoryMessageTooBig, "5.3.4", false},
		{"dmarc", 550, "5.7.26", "Unauthenticated email from example.com is not accepted due to domain's DMARC policy", KindSoft, CategoryPolicyBlock, "5.7.26", false},
		{"spam content", 554, "5.7.1", "Message rejected as spam by Content Filtering", KindSoft, CategoryPolicyBlock, "5.7.1", false},
		{"blocklisted ip", 554, "5.7.1", "Service unavailable; Client host [192.0.2.1] blocked using zen.spamhaus.org", KindSoft, CategoryReputationBlock, "5.7.1", false},
		{"sender rejected is not the recipient's fault", 553, "5.1.8", "<bounce@example.org>: Sender address rejected: Domain not found", KindSoft, CategoryPolicyBlock, "5.1.8", false},
		{"connection dropped", 451, "4.4.2", "Connection timed out", KindSoft, CategoryNetwork, "4.4.2", false},
		{"421 alone", 421, "", "Service not available, closing transmission channel", KindSoft, CategoryRateLimited, "", true},
		{"gmail unusual rate", 421, "4.7.28", "Our system has detected an unusual rate of unsolicited mail originating from your IP address.", KindSoft, CategoryRateLimited, "4.7.28", true},
		{"gmail unusual rate as 550", 550, "5.7.28", "There is an unusual rate of unsolicited mail originating from your IP address", KindSoft, CategoryRateLimited, "5.7.28", true},
		{"yahoo TSS04", 421, "4.7.0", "[TSS04] Messages from 192.0.2.1 temporarily deferred due to unexpected volume or user complaints", KindSoft, CategoryRateLimited, "4.7.0", true},
		{"microsoft S3150", 451, "4.7.500", "Server busy. Please try again later from [192.0.2.1]. (S3150)", KindSoft, CategoryRateLimited, "4.7.500", true},
		{"microsoft throttled", 451, "4.7.650", "The mail server [192.0.2.1] has been temporarily rate limited due to IP reputation.", KindSoft, CategoryRateLimited, "4.7.650", true},
		{"generic try again later", 450, "4.7.1", "Too many connections from your IP, try again later", KindSoft, CategoryRateLimited, "4.7.1", true},
		{"greylisting is not a slow down", 451, "4.7.1", "Greylisted, see http://postgrey.schweikert.ch/help/example.com.html", KindSoft, CategoryPolicyBlock, "4.7.1", false},
		{"folded multi-line reply", 550, "5.1.1", "The email account that you tried to reach does\n not exist.", KindHard, CategoryUserUnknown, "5.1.1", false},
		{"nothing to go on", 550, "", "", KindSoft, CategoryOther, "", false},
		{"disabled mailbox exists", 550, "5.2.1", "The email account that you tried to reach is disabled.", KindSoft, CategoryMailboxDisabled, "5.2.1", false},
		{"X.2.1 outweighs generic words", 550, "5.2.1", "<a@example.jp>... User Unknown", KindSoft, CategoryMailboxDisabled, "5.2.1", false},
		{"disabled account phrase", 550, "", "This account has been disabled or discontinued", KindSoft, CategoryMailboxDisabled, "", false},
		{"user account disabled status", 525, "5.7.13", "Disabled recipient address", KindSoft, CategoryMailboxDisabled, "5.7.13", false},
		{"4.2.1 is used loosely", 421, "4.2.1", "Service refused, please try later", KindSoft, CategoryPolicyBlock, "4.2.1", true},
		{"recipient's filter under 5.1.1", 550, "5.1.1", "RCP-P2 Refused due to recipient preferences", KindSoft, CategoryPolicyBlock, "5.1.1", false},
		{"recipient's filter without status", 550, "", "Recipient is only accepting mail from specific email addresses", KindSoft, CategoryPolicyBlock, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := ClassifyReply(tt.code, tt.enhanced, tt.text)
			if v.Kind != tt.kind || v.Category != tt.cat {
				t.Errorf("ClassifyReply(%d, %q, %q) = %s/%s, want %s/%s", tt.code, tt.enhanced, tt.text, v.Kind, v.Category, tt.kind, tt.cat)
			}
			if v.Status != tt.status {
				t.Errorf("Status = %q, want %q", v.Status, tt.status)
			}
			if v.Code != tt.code {
				t.Errorf("Code = %d, want %d", v.Code, tt.code)
			}
			if got := v.SlowDown(); got != tt.slowDown {
				t.Errorf("SlowDown() = %v, want %v", got, tt.slowDown)
			}
		})
	}
}

func TestVerdictTemporary(t *testing.T) {
	for _, tt := range []struct {
		v    Verdict
		want bool
	}{
		{Verdict{Code: 450}, true},
		{Verdict{Code: 550}, false},
		{Verdict{Code: 550, Status: "4.2.2"}, true},
		{Verdict{Code: 451, Status: "5.0.0"}, false},
	} {
		if got := tt.v.Temporary(); got != tt.want {
			t.Errorf("%+v.Temporary() = %v, want %v", tt.v, got, tt.want)
		}
	}
}

// The synchronous classifier uses the same table as reports; the stage the
// mailer knows is recipient-stage evidence.
func TestClassifyReplyAt(t *testing.T) {
	tests := []struct {
		name     string
		stage    Stage
		code     int
		enhanced string
		text     string
		kind     Kind
		cat      Category
		rule     string
	}{
		{"unknown at RCPT TO", StageRcpt, 550, "", "Requested action not taken: mailbox unavailable", KindHard, CategoryUserUnknown, "R8"},
		{"same words, stage unknown", StageUnknown, 550, "", "Requested action not taken: mailbox unavailable", KindSoft, CategoryUserUnknown, "R11"},
		{"unknown after DATA is a filter", StageData, 550, "", "User unknown", KindSoft, CategoryPolicyBlock, "R5"},
		{"X.1.1 after DATA is a pipelined RCPT refusal", StageData, 550, "5.1.1", "<a@example.org>: User unknown", KindHard, CategoryUserUnknown, "R8"},
		{"any refusal of MAIL FROM is about us", StageMail, 550, "5.1.1", "User unknown", KindSoft, CategoryPolicyBlock, "R4"},
		{"temporary wording beats X.1.1", StageRcpt, 552, "5.1.1", "Mailbox over quota, temporarily unavailable", KindSoft, CategoryMailboxFull, "R2"},
		{"too many recipients this hour under X.1.1", StageRcpt, 550, "5.1.1", "You have sent to too many recipients this hour", KindSoft, CategoryRateLimited, "R2"},
		{"bare refusal of the address at RCPT TO", StageRcpt, 554, "5.7.1", "<a@example.org>: Recipient address rejected: Access denied", KindHard, CategoryUserUnknown, "R10"},
		{"bare refusal with a provider's tag and help link", StageRcpt, 550, "5.4.1", "Recipient address rejected: Access denied. AS(201806281) For more information see https://aka.ms/smtperr [host.example.net]", KindHard, CategoryUserUnknown, "R10"},
		{"a bare \"Address rejected\" alone is too little", StageUnknown, 550, "5.1.0", "Address rejected", KindSoft, CategoryPolicyBlock, "R12"},
		{"a refusal that gives a reason we do not know", StageRcpt, 550, "5.0.0", "<a@example.org>: Recipient address rejected: On hold", KindSoft, CategoryPolicyBlock, "R12"},
		{"directory lookup, not a blocklist", StageUnknown, 550, "", "User kato not listed in Domino Directory", KindHard, CategoryUserUnknown, "R8"},
		{"blocklist wording", StageRcpt, 554, "5.7.1", "Client host [192.0.2.1] listed in bl.example.org", KindSoft, CategoryReputationBlock, "R4"},
		{"sender address rejected at RCPT TO", StageRcpt, 553, "5.1.8", "<news@herald.test>: Sender address rejected: Domain not found", KindSoft, CategoryPolicyBlock, "R4"},
		{"null MX", StageRcpt, 556, "5.1.10", "Recipient address has null MX", KindHard, CategoryDomainNotFound, "R9"},
		{"no such domain", StageUnknown, 550, "", "Host or domain name not found", KindHard, CategoryDomainNotFound, "R9"},
		{"name server trouble is not a missing domain", StageUnknown, 550, "5.4.4", "Name service error: Malformed or unexpected name server reply", KindSoft, CategoryNetwork, "R12"},
		{"negated phrase does not count", StageRcpt, 550, "5.7.1", "Your host is not listed in our allow list", KindSoft, CategoryPolicyBlock, "R4"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := ClassifyReplyAt(tt.stage, tt.code, tt.enhanced, tt.text)
			if v.Kind != tt.kind || v.Category != tt.cat || v.Rule != tt.rule {
				t.Errorf("ClassifyReplyAt(%q, %d, %q, %q) = %s/%s by %s, want %s/%s by %s\nevidence: %s\nreason: %s",
					tt.stage, tt.code, tt.enhanced, tt.text, v.Kind, v.Category, v.Rule, tt.kind, tt.cat, tt.rule, v.Evidence, v.Reason)
			}
			if v.Reason == "" || v.Explain() == "" {
				t.Error("verdict without a reason")
			}
		})
	}
}
