package bounce

import (
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"
)

// Stage is the point of the SMTP conversation at which a remote server
// refused, as far as the signal tells.
type Stage string

const (
	// StageUnknown: nothing in the signal shows the stage.
	StageUnknown Stage = ""
	// StageConnect: the greeting, HELO/EHLO or TLS, before any address.
	StageConnect Stage = "connect"
	// StageMail: the MAIL FROM command, i.e. our sender address.
	StageMail Stage = "mail"
	// StageRcpt: the RCPT TO command, i.e. the recipient address itself.
	StageRcpt Stage = "rcpt"
	// StageData: the DATA command or the end of the message data, after
	// the recipient was accepted: the message, not the address.
	StageData Stage = "data"
)

// Concern is whom or what the reason of a failure is about.
type Concern string

const (
	ConcernUnknown Concern = ""
	// ConcernRecipient: the recipient's address or mailbox.
	ConcernRecipient Concern = "recipient"
	// ConcernSender: our side: the sender address or domain, its
	// authentication, the sending host, its IP reputation or its rate.
	ConcernSender Concern = "sender"
	// ConcernMessage: this message: its content, size or format.
	ConcernMessage Concern = "message"
)

// Evidence is everything one failure signal says about one recipient,
// gathered before anything is decided. The precedence table (see the
// package documentation) turns it into a Verdict.
type Evidence struct {
	// Source names the input: "smtp reply", "dsn", "notice", "ses", "fml".
	Source string
	// Stage is the SMTP stage the refusal answered; StageHint says which
	// words or fields showed it.
	Stage     Stage
	StageHint string
	// Code is the SMTP reply code (0: none); Status the enhanced status
	// code ("": none).
	Code   int
	Status string
	// Action is the DSN Action field, lowercase ("failed", "delayed", …);
	// empty outside a DSN.
	Action string
	// StatusCategory is what the enhanced status means; StatusSpecific is
	// false for catch-all codes (X.0.0, X.7.1 and the like).
	StatusCategory Category
	StatusSpecific bool
	// Phrase is the class of the words, and PhraseText the words that set
	// it. Generic is true when the only words were a bare refusal
	// ("rejected", "access denied"), which names no reason.
	Phrase     Category
	PhraseText string
	Generic    bool
	// Temporary holds explicit wording that the failure is temporary
	// ("temporarily", "try again later", "this hour"), if any.
	Temporary string
	// Concerns says whom the reason is about; ConcernHint why we think so.
	Concerns    Concern
	ConcernHint string
	// NamesRecipient is true when the remote's reply names the recipient's
	// address, or calls it "the recipient".
	NamesRecipient bool
	// ReportingMTA and RemoteMTA are the hosts that wrote the report and
	// that refused, when the signal says.
	ReportingMTA string
	RemoteMTA    string
	// Diagnostic is the remote server's text, on one line.
	Diagnostic string

	// localLookup: a notice with no SMTP reply code anywhere, so the
	// reporting system decided by itself (a lookup in its own directory).
	localLookup bool
}

// String renders the evidence on one line, for --explain and logs.
func (e Evidence) String() string {
	var parts []string
	add := func(k, v string) {
		if v != "" {
			parts = append(parts, k+"="+v)
		}
	}
	add("source", e.Source)
	stage := string(e.Stage)
	if stage == "" {
		stage = "unknown"
	}
	if e.StageHint != "" {
		stage += fmt.Sprintf(" (%q)", e.StageHint)
	}
	add("stage", stage)
	if e.Code != 0 {
		add("code", fmt.Sprint(e.Code))
	}
	add("status", e.Status)
	if e.Status != "" && e.StatusCategory != "" {
		s := string(e.StatusCategory)
		if !e.StatusSpecific {
			s += " (catch-all)"
		}
		add("status-means", s)
	}
	add("action", e.Action)
	if e.Phrase != CategoryNone {
		p := fmt.Sprintf("%s (%q)", e.Phrase, e.PhraseText)
		if e.Generic {
			p = fmt.Sprintf("bare refusal (%q)", e.PhraseText)
		}
		add("words", p)
	}
	if e.Temporary != "" {
		add("temporary-wording", fmt.Sprintf("%q", e.Temporary))
	}
	concern := string(e.Concerns)
	if concern == "" {
		concern = "unknown"
	}
	if e.ConcernHint != "" {
		concern += " (" + e.ConcernHint + ")"
	}
	add("concerns", concern)
	if e.NamesRecipient {
		add("names-recipient", "yes")
	}
	add("reporting-mta", e.ReportingMTA)
	add("remote-mta", e.RemoteMTA)
	return strings.Join(parts, " ")
}

// signal is the raw material of one recipient's evidence.
type signal struct {
	source       string
	rcpt         string
	code         int
	status       string
	action       string
	diag         string // the remote's words
	near         string // the notice's lines about the recipient
	whole        string // the whole notice, when it reports on this recipient only
	notice       string // the whole notice, for transcripts and labelled commands
	stage        Stage  // a stage the caller knows (a synchronous reply)
	ours         map[string]bool
	mtaCategory  Category // a classification by the reporting MTA itself (PowerMTA)
	reportingMTA string
	remoteMTA    string
}

// gather collects the evidence of one signal.
func gather(s signal) Evidence {
	e := Evidence{
		Source: s.source, Code: s.code, Status: s.status, Action: s.action,
		ReportingMTA: s.reportingMTA, RemoteMTA: s.remoteMTA, Diagnostic: oneLine(s.diag),
	}
	e.StatusCategory, e.StatusSpecific = statusCategory(s.status)

	// The words: the remote's reply first; the notice's lines about the
	// recipient when the reply names no reason; the whole notice last.
	own := clipText(strings.ToLower(oneLine(s.diag)))
	near := clipText(strings.ToLower(oneLine(s.near)))
	// around is the reply with the notice's lines about it, once.
	around := own
	if near != "" && !strings.Contains(near, own) {
		around = own + " " + near
	} else if near != "" {
		around = near
	}
	for i := 0; i < 3; i++ {
		t := own
		switch i {
		case 1:
			t = near
		case 2:
			t = clipText(strings.ToLower(oneLine(s.whole)))
		}
		if c, p, generic := phraseClass(t); c != CategoryNone && (e.Phrase == CategoryNone || e.Generic && !generic) {
			e.Phrase, e.PhraseText, e.Generic = c, p, generic
		}
		if e.Phrase != CategoryNone && !e.Generic {
			break
		}
	}
	if s.mtaCategory != CategoryNone && (e.Phrase == CategoryNone || e.Generic) {
		e.Phrase, e.PhraseText, e.Generic = s.mtaCategory, "reporting MTA's bounce category", false
	}
	// Temporary wording counts in the same reply as the code, not in a
	// later reply about something else; in the notice's lines only when
	// the reply has no code of its own.
	reply := firstReply(own)
	if replyCode(own) == 0 && findStatus(own) == "" {
		reply += " " + near
	}
	e.Temporary = temporaryWording(reply)
	if e.Temporary == "" {
		if anyOf(around, "queue", "expired", "retry timeout", "could not be delivered for") {
			e.Temporary = expiryRe.FindString(around)
		}
	}

	e.Stage, e.StageHint = s.stage, ""
	if e.Stage == StageUnknown {
		e.Stage, e.StageHint = failedStage(around, s.notice)
	}
	// The reply names the recipient when the address follows its code; a
	// notice's prose that starts with the address names it as a matter of
	// layout, not as the server's answer.
	if loc := codeRe.FindStringIndex(own); s.rcpt != "" && loc != nil {
		e.NamesRecipient = strings.Contains(own[loc[0]:], s.rcpt)
	} else if s.rcpt != "" && findStatus(own) != "" {
		e.NamesRecipient = strings.Contains(own[strings.Index(own, findStatus(own)):], s.rcpt)
	}
	e.localLookup = s.source != "smtp reply" && s.remoteMTA == "" && s.code == 0 && replyCode(s.near) == 0 && replyCode(s.whole) == 0
	e.Concerns, e.ConcernHint = concernOf(&e, own, s)
	return e
}

// maxText bounds the text the rules read about one recipient: a reason is
// stated near its code, and the regular expressions cost time per byte.
const maxText = 2000

func clipText(s string) string {
	if len(s) <= maxText {
		return s
	}
	n := maxText
	for n > 0 && !utf8.RuneStart(s[n]) {
		n-- // do not cut a character in two
	}
	return s[:n]
}

// temporaryRe matches explicit wording that a failure is temporary. It
// outweighs any code: servers put X.1.1 or 5xx on "over quota,
// temporarily" or "too many recipients this hour".
var temporaryRe = regexp.MustCompile(`\btemporar(?:y|ily)\b|try (?:again )?later|[,;]\s*try again\b|retry later|please retry|will be retried|\b(?:this|per|an|each) hour\b|greylist|graylist|grey-list|gray-list|\bbusy\b|\bdeferred\b`)

// expiryRe matches an MTA's word that it gave up because the message was
// too long in its queue: every attempt until then failed temporarily.
var expiryRe = regexp.MustCompile(`too long in the queue|in the queue too long|retry timeout exceeded|delivery time expired|message expired|could not be delivered for \d+`)

// firstReply returns lower up to the start of a reply with another code:
// "550 <a>... User unknown 421 host... Deferred" is two replies.
func firstReply(lower string) string {
	locs := codeRe.FindAllStringSubmatchIndex(lower, -1)
	if len(locs) < 2 {
		return lower
	}
	first := lower[locs[0][2]:locs[0][3]]
	for _, l := range locs[1:] {
		if lower[l[2]:l[3]] != first {
			return lower[:l[2]]
		}
	}
	return lower
}

func temporaryWording(lower string) string {
	if !anyOf(lower, "tempor", "try", "retri", "hour", "grey", "gray", "busy", "deferred") {
		return ""
	}
	return temporaryRe.FindString(lower)
}

// Wording that shows the refusal is about our side: the sender address or
// domain, its authentication, or the sending host.
var senderRe = regexp.MustCompile(`sender address|sender domain|domain of sender|sender verif|sender (?:is )?(?:rejected|refused|denied|blocked|not allowed|unknown|invalid)|(?:invalid|unknown|bad|rejected) sender|envelope sender|your (?:ip|domain|server|host|network|mail server|account)\b|client host|helo|ehlo|relay access|relaying|unable to relay|relay not permitted|not (?:permitted|allowed) to relay|sending ip|\bip address\b|\bbanned\b|(?:host|network|\bip|client|connection)s?\b[^.]{0,30}(?:not allowed|rejected|refused|denied|blocked)|sending quota|sending limit|\bspf\b|\bdkim\b|dmarc|reverse dns|reverse lookup|\bptr\b|authenticat`)

// Wording that shows the refusal is about the message itself.
var messageRe = regexp.MustCompile(`\bspam\b|spamming|\bjunk\b|virus|malware|phish|\bcontent\b(?:[^-]|$)|attachments? (?:not allowed|rejected|blocked)|(?:message|mail) (?:rejected|refused|blocked|not accepted)|(?:message|mail) (?:size|too (?:big|large)|is too large)|size limit`)

// The words without which senderRe and messageRe cannot match: a cheap
// test that spares most replies the regular expression.
var (
	senderWords  = []string{"sender", "envelope", "your", "client", "helo", "ehlo", "relay", "ip", "banned", "host", "network", "connection", "sending", "spf", "dkim", "dmarc", "reverse", "ptr", "authenticat"}
	messageWords = []string{"spam", "junk", "virus", "malware", "phish", "content", "attachment", "rejected", "refused", "blocked", "accepted", "size", "too "}
)

// findIf is re.FindString(s), run only when s contains one of words.
func findIf(re *regexp.Regexp, s string, words []string) string {
	if !anyOf(s, words...) {
		return ""
	}
	return re.FindString(s)
}

// anyOf reports whether s contains any of words.
func anyOf(s string, words ...string) bool {
	for _, w := range words {
		if strings.Contains(s, w) {
			return true
		}
	}
	return false
}

// concernOf decides whom the reason is about: our side, the message, or
// the recipient, in that order, because a reply that mentions the
// recipient while refusing our sender or our content is still about us.
func concernOf(e *Evidence, own string, s signal) (Concern, string) {
	sub, det, _ := splitStatus(e.Status)
	switch {
	case e.Stage == StageMail:
		return ConcernSender, "refused at MAIL FROM"
	case e.Stage == StageConnect:
		return ConcernSender, "refused before any address was sent"
	case sub == 1 && (det == 7 || det == 8):
		return ConcernSender, "status X.1." + fmt.Sprint(det) + " is the sender's address"
	case sub == 7 && det >= 23 && det <= 27:
		return ConcernSender, "status X.7." + fmt.Sprint(det) + " is the sender's authentication"
	case e.Phrase == CategoryRateLimited || e.Phrase == CategoryReputationBlock:
		return ConcernSender, "the words are about our sending rate or reputation"
	}
	// Addresses are names, not words: "privaterelay" in the recipient's
	// domain says nothing about relaying.
	bare := own
	if strings.Contains(own, "@") {
		bare = addrRe.ReplaceAllString(own, "<address>")
	}
	if m := findIf(senderRe, bare, senderWords); m != "" {
		return ConcernSender, fmt.Sprintf("the reply speaks of %q", m)
	}
	// A notice's own prose names our address as a matter of course
	// ("Message from <us> could not be delivered"); only a reply with a
	// code of its own that names it is about us.
	if a := namesOurs(own, s); a != "" && (replyCode(own) != 0 || findStatus(own) != "") {
		return ConcernSender, "the reply names our own " + a + ", not the recipient"
	}
	switch {
	case e.Stage == StageData && !recipientStatus(e.Status):
		return ConcernMessage, "refused after the recipient was accepted"
	case sub == 6 || (sub == 3 && det == 4) || (sub == 2 && det == 3):
		return ConcernMessage, "status X." + fmt.Sprint(sub) + "." + fmt.Sprint(det) + " is about the message"
	case e.Phrase == CategoryMessageTooBig:
		return ConcernMessage, "the words are about the message size"
	}
	if m := findIf(messageRe, bare, messageWords); m != "" {
		return ConcernMessage, fmt.Sprintf("the reply speaks of %q", m)
	}
	switch {
	case e.Stage == StageRcpt:
		return ConcernRecipient, "refused at RCPT TO"
	case recipientStatus(e.Status) || sub == 2:
		return ConcernRecipient, "status " + e.Status + " is about the recipient's address or mailbox"
	case e.NamesRecipient:
		return ConcernRecipient, "the reply names the recipient"
	}
	switch e.Phrase {
	case CategoryUserUnknown, CategoryDomainNotFound, CategoryMailboxFull, CategoryMailboxDisabled:
		return ConcernRecipient, "the words are about the recipient's mailbox"
	case CategoryPolicyBlock:
		if !e.Generic {
			return ConcernMessage, fmt.Sprintf("the words are about policy or content (%q)", e.PhraseText)
		}
	}
	return ConcernUnknown, ""
}

// recipientStatus reports whether status is about the recipient's address:
// the X.1.x addressing statuses (X.1.1 no such mailbox, X.1.2 no such
// system, X.1.3 bad syntax, X.1.6 moved, X.1.10 null MX, and the
// providers' own X.1.nnn) except the sender's X.1.7 and X.1.8 and the
// catch-all X.1.0.
func recipientStatus(status string) bool {
	sub, det, ok := splitStatus(status)
	return ok && sub == 1 && det != 0 && det != 7 && det != 8
}

// namesOurs returns a description of one of our own addresses or domains
// that the reply names, when it does not name the recipient: a refusal
// that quotes our sender is about the sender.
func namesOurs(own string, s signal) string {
	if s.rcpt != "" && strings.Contains(own, s.rcpt) {
		return ""
	}
	_, rdom, _ := strings.Cut(s.rcpt, "@")
	for a := range s.ours {
		if a == "" || a == s.rcpt {
			continue
		}
		if strings.Contains(own, a) {
			return "address " + a
		}
		_, dom, _ := strings.Cut(a, "@")
		if dom != "" && dom != rdom && containsWord(own, dom) {
			return "domain " + dom
		}
	}
	return ""
}

// containsWord reports whether host appears in s as a whole name, not as
// the tail of a longer host or an address.
func containsWord(s, host string) bool {
	for i := 0; ; {
		k := strings.Index(s[i:], host)
		if k < 0 {
			return false
		}
		k += i
		end := k + len(host)
		before := k == 0 || strings.ContainsRune(" <([\"':;,", rune(s[k-1]))
		after := end == len(s) || strings.ContainsRune(" >)]\"':;,", rune(s[end])) || (s[end] == '.' && (end+1 == len(s) || s[end+1] == ' '))
		if before && after {
			return true
		}
		i = end
	}
}
