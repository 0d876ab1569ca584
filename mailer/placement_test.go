package mailer_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/url"
	"testing"

	"github.com/emersion/go-imap/v2"

	"github.com/herald-mail/herald/mailer"
	"github.com/herald-mail/herald/models"
)

func placementCopy(token, authResults string) []byte {
	return []byte(fmt.Sprintf("Authentication-Results: %s\r\nFrom: news@example.com\r\nTo: seed@example.net\r\nSubject: Hi\r\n%s: %s\r\n\r\nHello\r\n",
		authResults, models.PlacementHeader, token))
}

// A copy is found by its token wherever it landed, the folder sorted by
// name where the server has no SPECIAL-USE, and the receiver's verdicts
// read from its Authentication-Results.
func TestFindPlacement(t *testing.T) {
	addr, roots := startIMAP(t, "seed", "pw")
	c := imapClient(t, addr, roots, "seed", "pw")
	for _, f := range []string{"Junk", "Promotions"} {
		if err := c.Create(f, nil).Wait(); err != nil {
			t.Fatal(err)
		}
	}
	appendMsg(t, c, "INBOX", placementCopy("tok-other", "mx.example.net; spf=pass"))
	appendMsg(t, c, "Junk", placementCopy("tok-junk", "mx.example.net; spf=softfail smtp.mailfrom=b@example.com; dkim=pass header.d=example.com; dkim=fail header.d=other.example; dmarc=fail header.from=example.com"))
	appendMsg(t, c, "Promotions", placementCopy("tok-promo", "mx.example.net; dkim=none"))
	u := "imaps://seed:pw@" + addr
	tlsConf := &tls.Config{RootCAs: roots, ServerName: "imap.test"}
	for _, w := range []struct {
		token, placement, folder, spf, dkim, dmarc string
		found                                      bool
	}{
		{"tok-junk", models.PlacementSpam, "Junk", "softfail", "pass", "fail", true},
		{"tok-promo", models.PlacementOther, "Promotions", "", "none", "", true},
		{"tok-other", models.PlacementInbox, "INBOX", "pass", "", "", true},
		{"tok-absent", "", "", "", "", "", false},
	} {
		f, err := mailer.FindPlacement(context.Background(), mailer.PlacementLookup{URL: u, Token: w.token, TLSConfig: tlsConf})
		if err != nil {
			t.Fatalf("FindPlacement(%s): %v", w.token, err)
		}
		if f.Found != w.found || f.Placement != w.placement || f.Folder != w.folder || f.SPF != w.spf || f.DKIM != w.dkim || f.DMARC != w.dmarc {
			t.Errorf("FindPlacement(%s) = %+v, want %+v", w.token, f, w)
		}
		if f.Found && f.Arrived.IsZero() {
			t.Errorf("FindPlacement(%s): no arrival time", w.token)
		}
	}
	if _, err := mailer.FindPlacement(context.Background(), mailer.PlacementLookup{URL: "imaps://seed:wrong@" + addr, Token: "x", TLSConfig: tlsConf}); err == nil {
		t.Error("FindPlacement with a wrong password succeeded")
	}
	if _, err := mailer.FindPlacement(context.Background(), mailer.PlacementLookup{URL: "http://" + url.PathEscape(addr), Token: "x"}); err == nil {
		t.Error("FindPlacement with an http URL succeeded")
	}
}

func TestFolderPlacement(t *testing.T) {
	for _, c := range []struct {
		name  string
		attrs []imap.MailboxAttr
		want  string
	}{
		{"INBOX", nil, models.PlacementInbox},
		{"inbox", nil, models.PlacementInbox},
		{"[Gmail]/Spam", nil, models.PlacementSpam},
		{"Courrier indésirable", []imap.MailboxAttr{imap.MailboxAttrJunk}, models.PlacementSpam},
		{"Bulk Mail", nil, models.PlacementSpam},
		{"Junk E-mail", nil, models.PlacementSpam},
		{"Archive/Spammy newsletters", nil, models.PlacementOther},
		{"[Gmail]/All Mail", []imap.MailboxAttr{imap.MailboxAttrAll}, models.PlacementOther},
	} {
		if got := mailer.FolderPlacement(c.name, '/', c.attrs); got != c.want {
			t.Errorf("FolderPlacement(%q, %v) = %q, want %q", c.name, c.attrs, got, c.want)
		}
	}
}

func TestAuthVerdicts(t *testing.T) {
	for _, c := range []struct{ field, spf, dkim, dmarc string }{
		{"mx.google.com; dkim=pass header.i=@example.com header.s=s1 header.b=abc; spf=pass (google.com: domain of b@example.com designates 1.2.3.4 as permitted sender) smtp.mailfrom=b@example.com; dmarc=pass (p=REJECT sp=REJECT dis=NONE) header.from=example.com", "pass", "pass", "pass"},
		{"mx.example.net; spf=fail smtp.mailfrom=a@b.example; dkim=none; dmarc=fail header.from=b.example", "fail", "none", "fail"},
		{"mx.example.net; none", "", "", ""},
		{"", "", "", ""},
	} {
		spf, dkim, dmarc := mailer.AuthVerdicts(c.field)
		if spf != c.spf || dkim != c.dkim || dmarc != c.dmarc {
			t.Errorf("AuthVerdicts(%q) = %s, %s, %s; want %s, %s, %s", c.field, spf, dkim, dmarc, c.spf, c.dkim, c.dmarc)
		}
	}
}
