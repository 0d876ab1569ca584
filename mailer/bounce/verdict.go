package bounce

// Kind is what a signal means for the recipient address.
type Kind string

const (
	// KindHard means the address is permanently undeliverable: suppress it.
	KindHard Kind = "hard"
	// KindSoft means this delivery failed but the address may still work.
	KindSoft Kind = "soft"
	// KindComplaint means the recipient reported the message as spam (ARF).
	KindComplaint Kind = "complaint"
	// KindAutoReply is a vacation or out-of-office answer.
	KindAutoReply Kind = "auto-reply"
	// KindNotBounce is anything else: a success reply, a delivery
	// notification, or a message that is not a bounce at all.
	KindNotBounce Kind = "not-bounce"
)

// Category says why a delivery failed.
type Category string

const (
	CategoryNone        Category = ""
	CategoryUserUnknown Category = "user_unknown"
	CategoryMailboxFull Category = "mailbox_full"
	// CategoryMailboxDisabled: the mailbox exists but does not take mail
	// now (RFC 3463 X.2.1); it may be enabled again.
	CategoryMailboxDisabled Category = "mailbox_disabled"
	CategoryDomainNotFound  Category = "domain_not_found"
	CategoryPolicyBlock     Category = "policy_block" // policy or spam content
	CategoryReputationBlock Category = "reputation_block"
	CategoryRateLimited     Category = "rate_limited"
	CategoryMessageTooBig   Category = "message_too_big"
	CategoryExpired         Category = "expired"
	CategoryNetwork         Category = "network"
	CategoryOther           Category = "other"
)

// Verdict is the classification of one failure signal for one recipient.
type Verdict struct {
	Kind     Kind
	Category Category
	// Status is the enhanced status code (RFC 3463), e.g. "5.1.1"; empty
	// when the signal carried none and none could be inferred.
	Status string
	// Code is the SMTP reply code, e.g. 550; zero when unknown.
	Code int
	// Diagnostic is the remote server's text, unfolded to one line.
	Diagnostic string
	// Recipient is the failed address; empty for a synchronous reply.
	Recipient string
	// Rule is the ID of the precedence table's row that decided ("R8"),
	// and Reason says why in words, for the user who wonders why an
	// address was suppressed. Both are empty for complaints and
	// auto-replies, which no table decides.
	Rule   string
	Reason string
	// Evidence is what the decision was made from.
	Evidence Evidence
}

// Explain is the verdict's rule and reason on one line, as stored with a
// bounce and shown on the bounces page.
func (v Verdict) Explain() string {
	if v.Rule == "" {
		return v.Reason
	}
	return v.Rule + " " + ruleName(v.Rule) + ": " + v.Reason
}

// SlowDown reports whether the remote side asked us to send more slowly: the
// mailer should suspend the whole destination rather than defer one message.
func (v Verdict) SlowDown() bool {
	if v.Category == CategoryRateLimited {
		return true
	}
	return v.Code == 421
}

// Temporary reports whether the failure was transient (a 4xx reply or a
// 4.x.x status), i.e. the same message may be retried later.
func (v Verdict) Temporary() bool {
	if v.Status != "" {
		return v.Status[0] == '4'
	}
	return v.Code >= 400 && v.Code < 500
}
