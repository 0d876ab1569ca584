// Package bounce classifies delivery failures: synchronous SMTP replies from
// our own mailer, delivery status notifications (RFC 3464 and the
// non-standard formats of the big providers and MTAs), auto-replies and ARF
// complaint reports (RFC 5965).
//
// Every signal ends as a Verdict. Kind answers "what do we do with this
// address?": only a permanent failure of the address itself (no such user,
// no such domain) is hard and suppresses it; a failure caused by the
// message, our sender or reputation, a full mailbox or the network is
// soft, because the address is still good. A false hard verdict suppresses
// a live subscriber, a false soft one costs a retry, so hard is given only
// when the evidence is sure; mixed evidence gives soft and says why.
//
// # Decoding
//
// Parse first makes the message readable: any line-ending convention (CRLF,
// LF, classic Mac CR) is read alike; quoted-printable and base64 parts are
// decoded; every charset go-message's charset package knows (ISO-2022-JP,
// Shift_JIS, EUC-JP, EUC-KR, GB18030, Big5, windows-125x, ISO-8859-x, …)
// is turned into UTF-8, in parts and in encoded header words, and so is a
// delivery-status part or a text part whose ISO-2022-JP text carries no
// charset label. A file that is not a message (binary data, a header cut
// off before its end, nothing but blank lines) is an error, not an empty
// report.
//
// # Recipients
//
// The failed addresses come, in order of trust, from the DSN's
// Final-Recipient (or Original-Recipient) fields, then from the addresses
// the failure text names (the MTA's list of failed addresses, or the
// addresses mentioned in the notice), then from the X-Failed-Recipients
// header. The notice's own To: and From: (our return path and the
// reporting daemon) and the quoted original's sender are never taken as
// recipients.
//
// # Evidence
//
// For each recipient the parser gathers Evidence: the SMTP stage the
// remote refused at (connection, MAIL, RCPT, DATA; from "in reply to RCPT
// TO", "after end of data", qmail's "does not like recipient", Postfix's
// "Recipient address rejected", a session transcript, …); the reply code;
// the enhanced status code and what it means; the DSN Action; the class of
// the words (unknown user, full mailbox, rate limit, blocklist, …, or a
// bare refusal such as "rejected" that names no reason); explicit
// temporary wording; whom the reason concerns (the recipient, our sender
// side, or the message); and the reporting and remote MTAs.
//
// # Precedence table
//
// One table decides every verdict, from reports and synchronous replies
// alike (ClassifyReply, ClassifyReplyAt). The rows are tried in order; the
// first that matches decides, and the verdict carries its ID (Rule) and the
// reason in words (Reason).
//
//	Row  Name                                            When                                                           Verdict
//	R1   delivered                                       DSN Action delivered/relayed/expanded, or a 2xx/2.x.x reply     not-bounce
//	R2   temporary wording                               the reply says the failure is temporary ("temporarily",        soft
//	                                                     "try again later", "this hour", greylisting), whatever code
//	                                                     it carries: explicit temporary wording beats a permanent code
//	R3   temporary code                                  4xx reply, 4.x.x status or Action: delayed                     soft
//	R4   about the sender                                the reason concerns our side: refused at MAIL FROM or at       soft
//	                                                     connection, X.1.7/X.1.8, X.7.23-27, sender/SPF/DKIM/DMARC/
//	                                                     relay/IP wording, rate limits, blocklists, or the reply names
//	                                                     our own address or domain rather than the recipient
//	R5   about the message                               refused at DATA (without an X.1.x address status), X.6.x,      soft
//	                                                     X.3.4, X.2.3, spam/virus/content/size wording
//	R6   recipient's filter                              the recipient's own settings refused us ("recipient            soft
//	                                                     preferences", "only accepting mail from"): the address exists
//	R7   mailbox full or disabled                        X.2.2, X.2.1, X.7.13 or such words, also when other words      soft
//	                                                     call the user unknown (mixed evidence); only X.2.1 with "User
//	                                                     Unknown" refused at RCPT TO goes on to R8 (sendmail-style
//	                                                     servers put X.2.1 on any refusal)
//	R8   unknown recipient, recipient-stage evidence     "user unknown" words or an X.1.1 status, and recipient-stage    hard
//	                                                     evidence: refused at RCPT TO; a 5.1.x address status (in the
//	                                                     reply or as a DSN Action: failed status); a directory or
//	                                                     recipient-table lookup ("not listed in … Directory"); a reply
//	                                                     that names the address it refuses ("550 <rcpt>... No such
//	                                                     user", as servers answer RCPT TO); or a notice with no remote
//	                                                     reply at all, where the recipient's own system looked it up.
//	                                                     A 4.1.1 counts only once the MTA gave up (Action: failed)
//	R9   unknown domain                                  X.1.2/X.1.10, or "host not found", "no such domain", null MX   hard
//	                                                     and no contrary status
//	R10  bare refusal of the recipient at RCPT TO        5xx to RCPT TO naming the recipient with no reason at all      hard
//	                                                     ("<rcpt>: Recipient address rejected: Access denied"); any
//	                                                     other word ("On hold", "Mail rejected by …") is a reason we
//	                                                     do not know, and R12 decides
//	R11  unknown recipient, no recipient-stage evidence  "user unknown" words with no stage, no X.1.1, no lookup         soft
//	                                                     (mobile carriers' filters answer "550 : User unknown")
//	R12  other failure                                   anything else: a permanent failure that names no reason about  soft
//	                                                     the address, or a notice with no code and no reason
//
// The words are matched only in a recipient's own part of a notice, after
// decoding, and a phrase that is negated or hedged ("not listed in",
// "may not exist") does not count. Temporary wording counts only in the
// same reply as the code ("550 … User unknown 421 … Deferred" is two
// replies). A reply that names one of our own addresses (the notice's To,
// the original's From) and not the recipient concerns the sender.
//
// A soft verdict is not forgotten: the list-hygiene rule in models
// suppresses an address after repeated soft bounces.
package bounce
