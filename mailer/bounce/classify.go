package bounce

import (
	"regexp"
	"strconv"
	"strings"
)

// ClassifyReply classifies a synchronous SMTP reply from a remote server.
// enhanced may be empty; when it is, the code is looked for at the start of
// text, where most servers put it.
func ClassifyReply(code int, enhanced string, text string) Verdict {
	text = oneLine(text)
	if enhanced == "" {
		enhanced = findStatus(text)
	} else {
		enhanced = normStatus(enhanced)
	}
	v := Verdict{Code: code, Status: enhanced, Diagnostic: text}
	v.Kind, v.Category = classify(code, enhanced, text)
	return v
}

// classify is shared by every input: enhanced code first, then the reply
// code, then well-known phrasings. Phrasings win over a status that carries
// no detail (x.0.0, 5.7.1 and the like) because servers use those for
// everything.
func classify(code int, status, text string) (Kind, Category) {
	class := statusClass(status, code)
	if class == 2 {
		return KindNotBounce, CategoryNone
	}
	lower := strings.ToLower(text)

	cat, specific := statusCategory(status)
	if !specific || cat == CategoryOther {
		if c := phraseCategory(lower); c != CategoryNone {
			cat = c
		} else if cat == CategoryNone {
			cat = codeCategory(code)
		}
	} else if c := phraseCategory(lower); c == CategoryRateLimited || c == CategoryReputationBlock {
		// Providers send rate limits and blocklistings under all sorts of
		// codes (4.2.x, 5.1.x, 5.7.x); the text is more precise then.
		cat = c
	} else if recipientFilter(lower) {
		// The same goes for a recipient's own filter, often sent as 5.1.1:
		// the address exists and chose not to take our mail.
		cat = CategoryPolicyBlock
	}
	if cat == CategoryNone {
		cat = CategoryOther
	}
	return kindOf(class, cat), cat
}

// kindOf decides hard or soft. Only a permanent failure of the address itself
// is hard; a temporary one, or one caused by the message, our reputation or
// the network, leaves the address usable.
func kindOf(class int, cat Category) Kind {
	if class == 4 {
		return KindSoft
	}
	switch cat {
	case CategoryUserUnknown, CategoryDomainNotFound:
		return KindHard
	}
	return KindSoft
}

// statusClass returns 2, 4 or 5 from the enhanced status, falling back to
// the reply code; 0 when neither says.
func statusClass(status string, code int) int {
	if status != "" {
		switch status[0] {
		case '2':
			return 2
		case '4':
			return 4
		case '5':
			return 5
		}
	}
	switch {
	case code >= 200 && code < 400:
		return 2
	case code >= 400 && code < 500:
		return 4
	case code >= 500 && code < 600:
		return 5
	}
	return 0
}

// statusCategory maps an enhanced status code to a category. specific is
// false for codes servers use as a catch-all, so the text decides.
func statusCategory(status string) (cat Category, specific bool) {
	if status == "" {
		return CategoryNone, false
	}
	sub, det, ok := splitStatus(status)
	if !ok {
		return CategoryNone, false
	}
	switch sub {
	case 1:
		switch det {
		case 1, 3, 6:
			return CategoryUserUnknown, true
		case 2, 10:
			return CategoryDomainNotFound, true
		case 0:
			return CategoryUserUnknown, false
		case 7, 8:
			// Bad sender address or domain: ours, not the recipient's.
			return CategoryPolicyBlock, true
		}
	case 2:
		switch det {
		case 2:
			return CategoryMailboxFull, true
		case 3:
			return CategoryMessageTooBig, true
		case 1:
			// "Mailbox disabled, not accepting messages": the mailbox
			// exists. Servers pair it with any words, "User Unknown"
			// included, when a filter refuses us; the code is the verdict.
			// As a temporary failure it is used loosely (busy, try later).
			return CategoryMailboxDisabled, status[0] == '5'
		case 0:
			return CategoryOther, false
		}
	case 3:
		switch det {
		case 1:
			return CategoryMailboxFull, true
		case 4:
			return CategoryMessageTooBig, true
		}
		return CategoryOther, false
	case 4:
		switch det {
		case 7:
			return CategoryExpired, true
		case 4:
			return CategoryDomainNotFound, false
		case 1, 2, 3, 5, 6:
			return CategoryNetwork, false
		}
		return CategoryNetwork, false
	case 5:
		return CategoryOther, false
	case 6:
		return CategoryPolicyBlock, false
	case 7:
		switch det {
		case 28:
			return CategoryRateLimited, true
		case 13:
			// "User account disabled" (RFC 3463 as updated): like X.2.1,
			// the account exists.
			return CategoryMailboxDisabled, true
		case 23, 24, 25, 26:
			return CategoryPolicyBlock, true
		}
		return CategoryPolicyBlock, false
	}
	return CategoryNone, false
}

// codeCategory is the last resort when neither status nor text say more.
func codeCategory(code int) Category {
	switch code {
	case 421:
		return CategoryRateLimited
	case 552:
		return CategoryMailboxFull
	case 550, 551, 553:
		return CategoryOther
	case 554:
		return CategoryPolicyBlock
	}
	return CategoryNone
}

// phrase is a fragment of diagnostic text, lowercase, and what it means.
type phrase struct {
	text string
	cat  Category
}

// phrases are tried in order; earlier entries win, so the more specific
// meanings come first (a rate-limit text often also says "try again later").
var phrases = []phrase{
	// Rate limits and throttling.
	{"unusual rate", CategoryRateLimited},
	{"rate limit", CategoryRateLimited},
	{"ratelimit", CategoryRateLimited},
	{"rate-limit", CategoryRateLimited},
	{"throttl", CategoryRateLimited},
	{"tss04", CategoryRateLimited},
	{"s3150", CategoryRateLimited},
	{"too many connections", CategoryRateLimited},
	{"too many concurrent", CategoryRateLimited},
	{"too many messages", CategoryRateLimited},
	{"too many emails", CategoryRateLimited},
	{"too many mails", CategoryRateLimited},
	{"too many errors", CategoryRateLimited},
	{"too many sessions", CategoryRateLimited},
	{"connection rate", CategoryRateLimited},
	{"sending rate", CategoryRateLimited},
	{"message rate", CategoryRateLimited},
	{"exceeded the rate", CategoryRateLimited},
	{"slow down", CategoryRateLimited},
	{"temporarily deferred", CategoryRateLimited},
	{"temporarily rate", CategoryRateLimited},

	// Message size.
	{"message too big", CategoryMessageTooBig},
	{"message too large", CategoryMessageTooBig},
	{"message is too large", CategoryMessageTooBig},
	{"message size exceeds", CategoryMessageTooBig},
	{"exceeds size limit", CategoryMessageTooBig},
	{"size exceeds", CategoryMessageTooBig},
	{"message length exceeds", CategoryMessageTooBig},
	{"message file too big", CategoryMessageTooBig},
	{"mail too large", CategoryMessageTooBig},
	{"exceeded maximum message size", CategoryMessageTooBig},

	// Full mailbox.
	{"mailbox full", CategoryMailboxFull},
	{"mailbox is full", CategoryMailboxFull},
	{"mailbox has exceeded", CategoryMailboxFull},
	{"over quota", CategoryMailboxFull},
	{"overquota", CategoryMailboxFull},
	{"over the quota", CategoryMailboxFull},
	{"quota exceeded", CategoryMailboxFull},
	{"exceeded storage", CategoryMailboxFull},
	{"exceeded quota", CategoryMailboxFull},
	{"exceed quota", CategoryMailboxFull},
	{"exceeds quota", CategoryMailboxFull},
	{"quota full", CategoryMailboxFull},
	{"disk quota", CategoryMailboxFull},
	{"insufficient disk space", CategoryMailboxFull},
	{"insufficient system storage", CategoryMailboxFull},
	{"out of storage", CategoryMailboxFull},
	{"mailbox size limit", CategoryMailboxFull},
	{"user has exhausted allowed storage", CategoryMailboxFull},
	{"is over its storage", CategoryMailboxFull},
	{"inbox is out of storage", CategoryMailboxFull},
	{"account is full", CategoryMailboxFull},
	{"mail box full", CategoryMailboxFull},
	{"mailfolder is full", CategoryMailboxFull},
	{"maildir over quota", CategoryMailboxFull},
	{"not enough storage", CategoryMailboxFull},
	{"too much mail data", CategoryMailboxFull},

	// Problems with our sender address, and phrasings that would otherwise
	// be mistaken for a later group.
	{"sender address rejected", CategoryPolicyBlock},
	{"domain of sender address", CategoryPolicyBlock},
	{"sender domain", CategoryPolicyBlock},
	{"sender verify failed", CategoryPolicyBlock},
	{"not listed in public name", CategoryUserUnknown},
	{"recipient address rejected: access denied", CategoryUserUnknown}, // Microsoft's directory check
	{"group you tried to contact", CategoryPolicyBlock},                // Google Groups: missing or closed to us
	{"malformed or unexpected name server reply", CategoryNetwork},
	{"ディレクトリのリストにありません", CategoryUserUnknown},

	// Reputation: blocklists and the sending IP's standing.
	{"blacklist", CategoryReputationBlock},
	{"open relay", CategoryReputationBlock},
	{"blocklist", CategoryReputationBlock},
	{"black list", CategoryReputationBlock},
	{"block list", CategoryReputationBlock},
	{"spamhaus", CategoryReputationBlock},
	{"spamcop", CategoryReputationBlock},
	{"sorbs", CategoryReputationBlock},
	{"barracuda", CategoryReputationBlock},
	{"dnsbl", CategoryReputationBlock},
	{"rbl", CategoryReputationBlock},
	{"reputation", CategoryReputationBlock},
	{"poor reputation", CategoryReputationBlock},
	{"listed in", CategoryReputationBlock},
	{"client host rejected", CategoryReputationBlock},
	{"ip address has been blocked", CategoryReputationBlock},
	{"blocked using", CategoryReputationBlock},
	{"your ip", CategoryReputationBlock},
	{"your network", CategoryReputationBlock},
	{"dynamic ip", CategoryReputationBlock},
	{"dial-up", CategoryReputationBlock},
	{"reverse dns", CategoryReputationBlock},
	{"reverse lookup", CategoryReputationBlock},
	{"ptr record", CategoryReputationBlock},
	{"no ptr", CategoryReputationBlock},

	// Unknown domain.
	{"host not found", CategoryDomainNotFound},
	{"host unknown", CategoryDomainNotFound},
	{"unknown host", CategoryDomainNotFound},
	{"domain not found", CategoryDomainNotFound},
	{"no such domain", CategoryDomainNotFound},
	{"domain does not exist", CategoryDomainNotFound},
	{"name or service not known", CategoryDomainNotFound},
	{"nxdomain", CategoryDomainNotFound},
	{"no mx", CategoryDomainNotFound},
	{"mx record", CategoryDomainNotFound},
	{"unrouteable mail domain", CategoryDomainNotFound},
	{"domain name not found", CategoryDomainNotFound},
	{"unknown domain", CategoryDomainNotFound},
	{"illegal host/domain", CategoryDomainNotFound},
	{"host or domain name not found", CategoryDomainNotFound},
	{"null mx", CategoryDomainNotFound},
	{"does not accept mail", CategoryDomainNotFound},
	{"no smtp service", CategoryDomainNotFound},
	{"domain is not reachable", CategoryDomainNotFound},
	{"host does not accept mail", CategoryDomainNotFound},

	// Unknown recipient.
	{"user unknown", CategoryUserUnknown},
	{"unknown user", CategoryUserUnknown},
	{"unknown recipient", CategoryUserUnknown},
	{"recipient unknown", CategoryUserUnknown},
	{"no such user", CategoryUserUnknown},
	{"no such mailbox", CategoryUserUnknown},
	{"no such recipient", CategoryUserUnknown},
	{"no such address", CategoryUserUnknown},
	{"no such account", CategoryUserUnknown},
	{"no mailbox", CategoryUserUnknown},
	{"mailbox unavailable", CategoryUserUnknown},
	{"mailbox not found", CategoryUserUnknown},
	{"mailbox does not exist", CategoryUserUnknown},
	{"mailbox doesn't exist", CategoryUserUnknown},
	{"user doesn't exist", CategoryUserUnknown},
	{"user does not exist", CategoryUserUnknown},
	{"does not exist", CategoryUserUnknown},
	{"not exist", CategoryUserUnknown},
	{"invalid final delivery", CategoryUserUnknown},
	{"address couldn't be found", CategoryUserUnknown},
	{"address could not be found", CategoryUserUnknown},
	{"recipient name is not recognized", CategoryUserUnknown},
	{"check if address is correct", CategoryUserUnknown},
	{"doesn't exist", CategoryUserUnknown},
	{"doesn't have a", CategoryUserUnknown},
	{"invalid recipient", CategoryUserUnknown},
	{"invalid mailbox", CategoryUserUnknown},
	{"invalid address", CategoryUserUnknown},
	{"recipient not found", CategoryUserUnknown},
	{"not a valid mailbox", CategoryUserUnknown},
	{"unknown local part", CategoryUserUnknown},
	{"unknown address", CategoryUserUnknown},
	{"unrouteable address", CategoryUserUnknown},
	{"unroutable address", CategoryUserUnknown},
	{"address unknown", CategoryUserUnknown},
	{"no valid recipients", CategoryUserUnknown},
	{"user not found", CategoryUserUnknown},
	{"account does not exist", CategoryUserUnknown},
	{"not our customer", CategoryUserUnknown},
	{"is not a known user", CategoryUserUnknown},
	{"no longer available", CategoryUserUnknown},
	{"has been disabled", CategoryMailboxDisabled},
	{"account disabled", CategoryMailboxDisabled},
	{"account has been disabled", CategoryMailboxDisabled},
	{"bad destination mailbox", CategoryUserUnknown},
	{"undeliverable address", CategoryUserUnknown},
	{"said: 550 5.1.1", CategoryUserUnknown},

	// Policy and content.
	{"spam", CategoryPolicyBlock},
	{"junk", CategoryPolicyBlock},
	{"virus", CategoryPolicyBlock},
	{"malware", CategoryPolicyBlock},
	{"content", CategoryPolicyBlock},
	{"policy", CategoryPolicyBlock},
	{"relay", CategoryPolicyBlock},
	{"not permitted", CategoryPolicyBlock},
	{"not allowed", CategoryPolicyBlock},
	{"not authorized", CategoryPolicyBlock},
	{"access denied", CategoryPolicyBlock},
	{"rejected", CategoryPolicyBlock},
	{"refused", CategoryPolicyBlock},
	{"blocked", CategoryPolicyBlock},
	{"dmarc", CategoryPolicyBlock},
	{"spf", CategoryPolicyBlock},
	{"dkim", CategoryPolicyBlock},
	{"authentication", CategoryPolicyBlock},
	{"unauthenticated", CategoryPolicyBlock},

	// Time-outs and the network.
	{"retry timeout exceeded", CategoryExpired},
	{"delivery time expired", CategoryExpired},
	{"could not be delivered for", CategoryExpired},
	{"message expired", CategoryExpired},
	{"too long in the queue", CategoryExpired},
	{"has been delayed", CategoryExpired},
	{"giving up", CategoryExpired},
	{"connection refused", CategoryNetwork},
	{"connection timed out", CategoryNetwork},
	{"connection reset", CategoryNetwork},
	{"timed out", CategoryNetwork},
	{"timeout", CategoryNetwork},
	{"network is unreachable", CategoryNetwork},
	{"no route to host", CategoryNetwork},
	{"lost connection", CategoryNetwork},
	{"conversation with", CategoryNetwork},
	{"tls", CategoryNetwork},
	{"try again later", CategoryRateLimited},
}

// recipientFilterPhrases say the recipient's own settings refused the
// message: the mailbox exists.
var recipientFilterPhrases = []string{
	"recipient preferences",
	"refuses to receive",
	"refuse to receive",
	"only accepting mail from",
	"has restricted sms e-mail",
	"blocked by the recipient",
	"rejected due to user rules",
	"message filtered",
}

func recipientFilter(lower string) bool {
	for _, p := range recipientFilterPhrases {
		if strings.Contains(lower, p) {
			return true
		}
	}
	return false
}

// phraseCategory looks for a well-known phrasing in lowercase text; a
// recipient's filter comes first, as its wording often mentions the user.
func phraseCategory(lower string) Category {
	if lower == "" {
		return CategoryNone
	}
	if recipientFilter(lower) {
		return CategoryPolicyBlock
	}
	for _, p := range phrases {
		if strings.Contains(lower, p.text) {
			return p.cat
		}
	}
	return CategoryNone
}

var statusRe = regexp.MustCompile(`\b([245])\.(\d{1,3})\.(\d{1,3})\b`)

// findStatus returns the first enhanced status code in text.
func findStatus(text string) string {
	m := statusRe.FindStringSubmatch(text)
	if m == nil {
		return ""
	}
	return m[1] + "." + m[2] + "." + m[3]
}

// normStatus trims decoration such as a trailing comment from a status
// field; it returns "" when the value is not a status code.
func normStatus(s string) string {
	return findStatus(s)
}

// splitStatus returns the subject and detail of "c.s.d".
func splitStatus(status string) (sub, det int, ok bool) {
	parts := strings.Split(status, ".")
	if len(parts) != 3 {
		return 0, 0, false
	}
	s, err1 := strconv.Atoi(parts[1])
	d, err2 := strconv.Atoi(parts[2])
	return s, d, err1 == nil && err2 == nil
}

// oneLine unfolds multi-line diagnostic text and squeezes its whitespace.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
