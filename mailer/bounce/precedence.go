package bounce

import (
	"fmt"
	"regexp"
	"strings"
)

// Rule is one row of the precedence table (see the package
// documentation). Rows are tried in order; the first that matches decides.
type Rule struct {
	ID   string // "R1" …
	Name string // short name, as in the package documentation
	Kind Kind   // the verdict the row gives (R1 gives not-bounce)
}

// Rules is the precedence table, in order. The package documentation
// describes each row; TestPrecedenceTableDocumented keeps them in step.
var Rules = []Rule{
	{"R1", "delivered", KindNotBounce},
	{"R2", "temporary wording", KindSoft},
	{"R3", "temporary code", KindSoft},
	{"R4", "about the sender", KindSoft},
	{"R5", "about the message", KindSoft},
	{"R6", "recipient's filter", KindSoft},
	{"R7", "mailbox full or disabled", KindSoft},
	{"R8", "unknown recipient, recipient-stage evidence", KindHard},
	{"R9", "unknown domain", KindHard},
	{"R10", "bare refusal of the recipient at RCPT TO", KindHard},
	{"R11", "unknown recipient, no recipient-stage evidence", KindSoft},
	{"R12", "other failure", KindSoft},
}

func ruleName(id string) string {
	for _, r := range Rules {
		if r.ID == id {
			return r.Name
		}
	}
	return ""
}

// decide applies the precedence table to the evidence. It returns the
// verdict's kind and category, the row that decided, and the reason in
// words.
func decide(e Evidence) (Kind, Category, string, string) {
	class := statusClass(e.Status, e.Code)
	switch e.Action {
	case "delivered", "relayed", "expanded", "deliverable":
		return KindNotBounce, CategoryNone, "R1", "the report says the message was " + e.Action
	}
	if class == 2 {
		return KindNotBounce, CategoryNone, "R1", "the reply is a success"
	}
	cat := e.category()
	if e.Temporary != "" {
		return KindSoft, cat, "R2", fmt.Sprintf("the reply says the failure is temporary (%q), which outweighs %s", e.Temporary, codeWords(e))
	}
	unknown := e.Phrase == CategoryUserUnknown || e.StatusCategory == CategoryUserUnknown && e.StatusSpecific
	if e.Action == "failed" && class == 4 && unknown && e.Concerns != ConcernSender && e.Concerns != ConcernMessage {
		// The MTA gave up on an address the remote kept calling unknown
		// with a temporary code (Postfix's 450 4.1.1 for a user missing
		// from its tables): after the whole retry period that is final.
		if why := recipientStageEvidence(e); why != "" {
			return KindHard, CategoryUserUnknown, "R8", "the recipient is unknown and " + why + "; the reporting MTA gave up (Action: failed) after retrying " + e.Status
		}
	}
	if class == 4 || e.Action == "delayed" {
		return KindSoft, cat, "R3", "temporary failure (" + codeWords(e) + "); the address may still work"
	}
	switch e.Concerns {
	case ConcernSender:
		c := CategoryPolicyBlock
		if e.Phrase == CategoryRateLimited || e.Phrase == CategoryReputationBlock {
			c = e.Phrase
		}
		return KindSoft, c, "R4", "the reason concerns our side, not the recipient: " + e.ConcernHint
	case ConcernMessage:
		c := CategoryPolicyBlock
		if e.Phrase == CategoryMessageTooBig || e.StatusCategory == CategoryMessageTooBig {
			c = CategoryMessageTooBig
		}
		return KindSoft, c, "R5", "the reason concerns the message, not the address: " + e.ConcernHint
	}
	if e.Phrase == categoryFilter {
		return KindSoft, CategoryPolicyBlock, "R6", fmt.Sprintf("the recipient's own filter refused the message (%q); the address exists", e.PhraseText)
	}
	for _, c := range []Category{CategoryMailboxFull, CategoryMailboxDisabled} {
		// X.2.1 is what sendmail-style servers put on every refusal;
		// words that call the user unknown are more precise than it.
		// X.2.1 is what sendmail-style servers put on many refusals, and
		// filters answer "User Unknown" to mail they refuse; only the
		// two together with a refusal at RCPT TO make the address unknown.
		byStatus := e.StatusCategory == c && e.StatusSpecific &&
			!(c == CategoryMailboxDisabled && e.Phrase == CategoryUserUnknown && e.Stage == StageRcpt)
		if e.Phrase == c || byStatus {
			return KindSoft, c, "R7", "the mailbox exists but " + map[Category]string{
				CategoryMailboxFull: "is full", CategoryMailboxDisabled: "does not take mail now"}[c] + mixedWith(e, c)
		}
	}
	if unknown && class != 4 {
		if why := recipientStageEvidence(e); why != "" {
			return KindHard, CategoryUserUnknown, "R8", "the recipient is unknown and " + why
		}
	}
	if class != 4 && (e.StatusCategory == CategoryDomainNotFound && e.StatusSpecific ||
		e.Phrase == CategoryDomainNotFound && (e.StatusCategory == CategoryNone || e.StatusCategory == CategoryDomainNotFound || !e.StatusSpecific)) {
		return KindHard, CategoryDomainNotFound, "R9", "the recipient's domain does not exist or takes no mail (" + codeWords(e) + ")"
	}
	// A bare "Address rejected" shows the RCPT stage only by its own
	// wording; on its own it is too little to suppress anyone.
	rcptStage := e.Stage == StageRcpt && e.StageHint != "address rejected"
	if class == 5 && (rcptStage || e.NamesRecipient) && e.Concerns == ConcernRecipient &&
		(e.NamesRecipient || strings.Contains(strings.ToLower(e.Diagnostic), "address rejected")) && e.Generic && bareRefusal(e.Diagnostic) {
		return KindHard, CategoryUserUnknown, "R10", "the server refused the recipient's address at RCPT TO and gave no other reason (" + codeWords(e) + ")"
	}
	if unknown {
		return KindSoft, CategoryUserUnknown, "R11", "the reply calls the recipient unknown, but nothing shows it answered the recipient's address " +
			"(no RCPT TO stage, no X.1.1 status, no directory lookup): not sure enough to suppress"
	}
	if cat == CategoryNone || cat == CategoryUserUnknown {
		cat = CategoryOther
	}
	if class == 0 && e.Phrase == CategoryNone {
		return KindSoft, cat, "R12", "the notice gives no code and no reason"
	}
	return KindSoft, cat, "R12", "failure with no reason about the address (" + codeWords(e) + "): soft until it repeats"
}

// recipientStageEvidence says why the failure answered the recipient's
// address itself, or "" when nothing shows it.
func recipientStageEvidence(e Evidence) string {
	switch {
	case e.Stage == StageRcpt:
		return fmt.Sprintf("the server refused it at RCPT TO (%q)", e.StageHint)
	case recipientStatus(e.Status) && statusClass(e.Status, 0) == 5 && e.Action == "failed":
		return "the DSN reports Action: failed with the recipient's address status " + e.Status
	case recipientStatus(e.Status) && statusClass(e.Status, 0) == 5:
		return "the status " + e.Status + " is about the recipient's address"
	}
	if m := lookupRe.FindString(strings.ToLower(e.Diagnostic + " " + e.PhraseText)); m != "" {
		return fmt.Sprintf("the receiving system looked the address up (%q)", m)
	}
	switch {
	case e.NamesRecipient:
		return "the reply names the address it refuses, as servers do at RCPT TO"
	case e.localLookup:
		return "the reporting system decided by itself, with no remote SMTP reply (its own directory)"
	}
	return ""
}

// category is the best single category of the evidence: a specific status
// first unless the words name a class the status cannot (a rate limit, a
// blocklist, a recipient's filter), then the words, then the code.
func (e Evidence) category() Category {
	c := CategoryNone
	switch {
	case e.Phrase == categoryFilter:
		c = CategoryPolicyBlock
	case e.StatusSpecific && e.StatusCategory != CategoryOther &&
		e.Phrase != CategoryRateLimited && e.Phrase != CategoryReputationBlock && e.Phrase != CategoryMailboxFull:
		c = e.StatusCategory
	case e.Phrase != CategoryNone && !e.Generic:
		c = e.Phrase
	case e.StatusCategory != CategoryNone && e.StatusCategory != CategoryOther && e.StatusSpecific:
		c = e.StatusCategory
	case e.Phrase != CategoryNone:
		c = e.Phrase
	case e.StatusCategory != CategoryNone && e.StatusCategory != CategoryOther:
		c = e.StatusCategory
	default:
		c = codeCategory(e.Code)
	}
	if c == CategoryNone {
		c = CategoryOther
	}
	return c
}

func mixedWith(e Evidence, c Category) string {
	if e.Phrase == CategoryUserUnknown || e.StatusCategory == CategoryUserUnknown {
		return fmt.Sprintf("; other words or codes call the user unknown, so the evidence is mixed (%s)", codeWords(e))
	}
	return ""
}

// codeWords names the codes of the evidence for a reason text.
func codeWords(e Evidence) string {
	var p []string
	if e.Code != 0 {
		p = append(p, fmt.Sprint(e.Code))
	}
	if e.Status != "" {
		p = append(p, e.Status)
	}
	if e.Action != "" {
		p = append(p, "Action: "+e.Action)
	}
	if len(p) == 0 {
		return "no code"
	}
	return strings.Join(p, " ")
}

// bareWords are the only words a bare refusal of an address has.
var bareWords = map[string]bool{
	"recipient": true, "address": true, "rejected": true, "refused": true, "denied": true, "access": true,
	"rcpt": true, "to": true, "user": true, "the": true, "is": true, "was": true, "has": true, "been": true,
	"smtp": true, "error": true, "reply": true, "in": true, "command": true,
	// the trailers providers append ("for more information see <url>")
	"for": true, "more": true, "information": true, "info": true, "see": true, "please": true, "visit": true, "details": true,
}

var (
	urlRe     = regexp.MustCompile(`\bhttps?://\S+`)
	bracketRe = regexp.MustCompile(`\[[^\]]*\]|[a-z]*\([^)]*\)`)
)

// bareRefusal reports whether a reply, once its codes, addresses, host
// names and bracketed remarks are taken out, has no words but a refusal:
// "550 <a@b>: Recipient address rejected: Access denied", "542 a@b
// Rejected". Any other word ("On hold", "Mailer error", "Mail rejected by
// destination domain") is a reason we do not know, which is no ground for
// a hard verdict.
func bareRefusal(diag string) bool {
	s := strings.ToLower(diag)
	s = addrRe.ReplaceAllString(s, " ")
	s = urlRe.ReplaceAllString(s, " ")
	s = bracketRe.ReplaceAllString(s, " ")
	for _, f := range strings.Fields(s) {
		f = strings.Trim(f, "<>:;,.!'\"-")
		if f == "" || codesRe.MatchString(f) || strings.Count(f, ".") >= 1 || strings.ContainsAny(f, "0123456789") {
			// codes, host names, and providers' reference tags such
			// as "AS(201806281)"
			continue
		}
		if !bareWords[f] {
			return false
		}
	}
	return true
}

var codesRe = regexp.MustCompile(`^[245](?:\.\d{1,3}\.\d{1,3}|\d\d)$`)
