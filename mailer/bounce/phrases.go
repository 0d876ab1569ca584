package bounce

import (
	"regexp"
	"strings"
)

// phrase is a fragment of diagnostic text, lowercase, and the class of
// reason it names. The classes are general wordings, each found in the
// replies of many servers; a provider's one-off wording does not belong
// here (the precedence table decides from stage, codes and whom the
// reason concerns instead).
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
	{"too many connections", CategoryRateLimited},
	{"too many concurrent", CategoryRateLimited},
	{"too many messages", CategoryRateLimited},
	{"too many emails", CategoryRateLimited},
	{"too many mails", CategoryRateLimited},
	{"too many recipients", CategoryRateLimited},
	{"too many errors", CategoryRateLimited},
	{"too many sessions", CategoryRateLimited},
	{"connection rate", CategoryRateLimited},
	{"sending rate", CategoryRateLimited},
	{"message rate", CategoryRateLimited},
	{"sending quota", CategoryRateLimited},
	{"sending limit", CategoryRateLimited},
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
	{"over its quota", CategoryMailboxFull},
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
	{"exhausted allowed storage", CategoryMailboxFull},
	{"over its storage", CategoryMailboxFull},
	{"account is full", CategoryMailboxFull},
	{"mail box full", CategoryMailboxFull},
	{"mailfolder is full", CategoryMailboxFull},
	{"not enough storage", CategoryMailboxFull},
	{"too much mail data", CategoryMailboxFull},

	// Our sender address: before the unknown-domain and unknown-user
	// groups, whose words ("domain not found") it often uses.
	{"sender address rejected", CategoryPolicyBlock},
	{"domain of sender address", CategoryPolicyBlock},
	{"sender domain", CategoryPolicyBlock},
	{"sender verify failed", CategoryPolicyBlock},

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
	{"listed in", CategoryReputationBlock}, // "not listed in" a directory is hedged away
	{"listed on", CategoryReputationBlock},
	{"listed at", CategoryReputationBlock},
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
	{"invalid domain", CategoryDomainNotFound},
	{"couldn't find a mail exchanger", CategoryDomainNotFound}, // qmail
	{"couldn't find any host named", CategoryDomainNotFound},   // qmail
	{"illegal host/domain", CategoryDomainNotFound},
	{"host or domain name not found", CategoryDomainNotFound},
	{"null mx", CategoryDomainNotFound},
	{"does not accept mail", CategoryDomainNotFound},
	{"no smtp service", CategoryDomainNotFound},
	{"domain is not reachable", CategoryDomainNotFound},

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
	{"not exist", CategoryUserUnknown},
	{"n't exist", CategoryUserUnknown},
	{"invalid final delivery", CategoryUserUnknown},
	{"address couldn't be found", CategoryUserUnknown},
	{"address could not be found", CategoryUserUnknown},
	{"address not found", CategoryUserUnknown},
	{"recipient name is not recognized", CategoryUserUnknown},
	{"check if address is correct", CategoryUserUnknown},
	{"doesn't have a", CategoryUserUnknown},
	{"invalid recipient", CategoryUserUnknown},
	{"invalid mailbox", CategoryUserUnknown},
	{"invalid address", CategoryUserUnknown},
	{"recipient not found", CategoryUserUnknown},
	{"recipientnotfound", CategoryUserUnknown}, // Exchange's RESOLVER.ADR.RecipientNotFound
	{"not a valid mailbox", CategoryUserUnknown},
	{"unknown local part", CategoryUserUnknown},
	{"unknown address", CategoryUserUnknown},
	{"unrouteable address", CategoryUserUnknown},
	{"unroutable address", CategoryUserUnknown},
	{"address unknown", CategoryUserUnknown},
	{"no valid recipients", CategoryUserUnknown},
	{"user not found", CategoryUserUnknown},
	{"not our customer", CategoryUserUnknown},
	{"is not a known user", CategoryUserUnknown},
	{"no longer available", CategoryUserUnknown},
	{"bad destination mailbox", CategoryUserUnknown},
	{"undeliverable address", CategoryUserUnknown},
	{"not listed in", CategoryUserUnknown}, // a directory or address book (Domino)
	{"のリストにありません", CategoryUserUnknown},    // the same, in Japanese
	{"has been disabled", CategoryMailboxDisabled},
	{"account disabled", CategoryMailboxDisabled},
	{"is disabled", CategoryMailboxDisabled},
	{"frozen", CategoryMailboxDisabled},
	{"suspended", CategoryMailboxDisabled},

	// Policy and content.
	{"spam", CategoryPolicyBlock},
	{"junk", CategoryPolicyBlock},
	{"virus", CategoryPolicyBlock},
	{"malware", CategoryPolicyBlock},
	{"content", CategoryPolicyBlock},
	{"policy", CategoryPolicyBlock},
	{"relay", CategoryPolicyBlock},
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
	{"name server", CategoryNetwork},
	{"name service", CategoryNetwork},
	{"tls", CategoryNetwork},
	{"try again later", CategoryRateLimited},
}

// genericRefusals are words by which a server refuses without saying why.
// They set a class only when nothing more specific is said, and the
// precedence table treats them as no reason at all.
var genericRefusals = []string{
	"access denied", "rejected", "refused", "denied", "not permitted", "not allowed",
	"not authorized", "blocked", "unavailable",
}

// categoryFilter is the phrase class of a recipient's own filter; a
// verdict reports it as CategoryPolicyBlock.
const categoryFilter Category = "recipient_filter"

// recipientFilterPhrases say the recipient's own settings refused the
// message: the mailbox exists.
var recipientFilterPhrases = []string{
	"recipient preferences",
	"refuses to receive",
	"refuse to receive",
	"only accepting mail from",
	"restricted sms e-mail",
	"blocked by the recipient",
	"rejected due to user rules",
	"message filtered",
}

func recipientFilter(lower string) bool {
	for _, p := range recipientFilterPhrases {
		if containsAsserted(lower, p) {
			return true
		}
	}
	return false
}

// phraseCategory is phraseClass without the detail.
func phraseCategory(lower string) Category {
	c, _, _ := phraseClass(lower)
	return c
}

// phraseClass returns the class of the first well-known phrasing in
// lowercase text, the phrase, and whether it was only a generic refusal.
// A recipient's filter comes first, as its wording often mentions the user.
func phraseClass(lower string) (Category, string, bool) {
	if lower == "" {
		return CategoryNone, "", false
	}
	if recipientFilter(lower) {
		for _, p := range recipientFilterPhrases {
			if strings.Contains(lower, p) {
				return categoryFilter, p, false
			}
		}
	}
	for _, p := range phrases {
		if containsAsserted(lower, p.text) {
			return p.cat, p.text, false
		}
	}
	for _, g := range genericRefusals {
		if containsAsserted(lower, g) {
			return CategoryPolicyBlock, g, true
		}
	}
	return CategoryNone, "", false
}

// hedgeRe matches what, just before a phrase, denies or hedges it: "not
// listed in a blocklist", "the group may not exist".
var hedgeRe = regexp.MustCompile(`(?:\bnot|n't|\bnever|\bno longer|\bmay|\bmight|\bcould|\bif)\s*$`)

// containsAsserted reports whether lower contains p in an occurrence that
// is not negated or hedged by the words just before it.
func containsAsserted(lower, p string) bool {
	for i := 0; ; {
		k := strings.Index(lower[i:], p)
		if k < 0 {
			return false
		}
		k += i
		before := lower[max(0, k-12):k]
		if !hedgeRe.MatchString(before) {
			return true
		}
		i = k + len(p)
	}
}

// lookupRe matches wording that reports a lookup of the recipient's
// address in the receiving system's own directory or tables: that is a
// statement about the address, as good as a refusal at RCPT TO.
var lookupRe = regexp.MustCompile(`not listed in .{0,40}(?:directory|address book)|in (?:the )?(?:local recipient|virtual (?:alias|mailbox)|relay recipient|recipient) table|ディレクトリのリストにありません`)
