package models

import "strings"

// How a delivery's last attempt crossed the network, stored compactly in
// deliveries.tls: TLSUnknown, TLSPlain, or TLSOver + the minor version of
// TLS 1.x (TLSOver + 9 for a version this code does not name), plus
// TLSVerified when the server's certificate verified for its name. Reports
// count "over TLS" as tls >= TLSOver and "verified" as tls >= TLSOver +
// TLSVerified.
const (
	TLSUnknown  int16 = 0  // not recorded: no server answered, the message was captured, or sent before this was recorded
	TLSPlain    int16 = 1  // plain text
	TLSOver     int16 = 10 // TLS 1.0; 13 is TLS 1.3
	TLSVerified int16 = 10 // added to a TLS state whose certificate verified
)

// TLSCode encodes the mailer's description of a connection (mailer.Reply.TLS:
// "" or "plain text after a failed STARTTLS handshake (…)" for plain text,
// else "TLSv1.3 verified", "TLSv1.2 unverified", …) for the tls column.
func TLSCode(s string) int16 {
	if s == "" || strings.HasPrefix(s, "plain text") {
		return TLSPlain
	}
	code := TLSOver + 9
	if rest, ok := strings.CutPrefix(s, "TLSv1."); ok && rest != "" && '0' <= rest[0] && rest[0] <= '3' {
		code = TLSOver + int16(rest[0]-'0')
	}
	if strings.HasSuffix(s, " verified") {
		code += TLSVerified
	}
	return code
}

// TLSText describes a tls column value the way TLSCode reads it: "" when
// not recorded, "plain text", or e.g. "TLSv1.3 verified".
func TLSText(code int16) string {
	switch {
	case code <= TLSUnknown:
		return ""
	case code < TLSOver:
		return "plain text"
	}
	verified := code >= TLSOver+TLSVerified
	if verified {
		code -= TLSVerified
	}
	v := "TLS"
	if minor := code - TLSOver; minor <= 3 {
		v = "TLSv1." + string(rune('0'+minor))
	}
	if verified {
		return v + " verified"
	}
	return v + " unverified"
}
