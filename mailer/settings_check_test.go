package mailer_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/url"
	"strings"
	"testing"

	"github.com/herald-mail/herald/mailer"
)

// TestCheckMailbox: the bounce mailbox test logs in to a real IMAP server
// (go-imap's, over TLS) and counts the folder's messages; a wrong
// password, a missing folder and a closed port each come back in plain
// words naming what to check.
func TestCheckMailbox(t *testing.T) {
	ctx := context.Background()
	const user, pass = "bounces@example.com", "p@ss word"
	addr, roots := startIMAP(t, user, pass)
	look := imapClient(t, addr, roots, user, pass)
	appendMsg(t, look, "INBOX", []byte("From: a@example.org\r\nSubject: x\r\n\r\nx\r\n"))
	tlsc := &tls.Config{RootCAs: roots, ServerName: "imap.test"}
	mbox := func(pw, folder string) string {
		return "imaps://" + url.UserPassword(user, pw).String() + "@" + addr + "/" + folder
	}
	n, err := mailer.CheckMailbox(ctx, mbox(pass, "INBOX"), tlsc)
	if err != nil || n != 1 {
		t.Errorf("right password: %d, %v; want 1 message, nil", n, err)
	}
	if _, err := mailer.CheckMailbox(ctx, mbox("wrong", "INBOX"), tlsc); err == nil || !strings.Contains(err.Error(), "refused to log in bounces@example.com") ||
		!strings.Contains(err.Error(), "Check the user name and password") {
		t.Errorf("wrong password: %v", err)
	}
	if _, err := mailer.CheckMailbox(ctx, mbox(pass, "Nope"), tlsc); err == nil || !strings.Contains(err.Error(), `the folder "Nope" cannot be opened`) {
		t.Errorf("missing folder: %v", err)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := ln.Addr().String()
	ln.Close()
	if _, err := mailer.CheckMailbox(ctx, "imaps://u:p@"+closed+"/INBOX", tlsc); err == nil || !strings.Contains(err.Error(), "Nothing accepts connections at "+closed) {
		t.Errorf("closed port: %v", err)
	}
}

// TestKeepPasswords: a URL whose password is the mask (xxxxx) takes the
// stored password of the same scheme, user and host; a new password or
// no password stays as typed; a masked one with no match is reported.
func TestKeepPasswords(t *testing.T) {
	stored := []string{"smtp://ann:s3cret@a.test:587", "smtps://bob:other@b.test:465?rate=2"}
	got, bad := mailer.KeepPasswords([]string{"smtp://ann:xxxxx@a.test:587?rate=5", "smtps://bob:new@b.test:465", "smtp://c.test"}, stored)
	if bad != -1 || got[0] != "smtp://ann:s3cret@a.test:587?rate=5" || got[1] != "smtps://bob:new@b.test:465" || got[2] != "smtp://c.test" {
		t.Errorf("got %q, %d", got, bad)
	}
	for _, masked := range []string{"smtp://ann:xxxxx@a.test:2525", "smtps://ann:xxxxx@a.test:587", "smtp://eve:xxxxx@a.test:587"} {
		if _, bad := mailer.KeepPasswords([]string{"smtp://c.test", masked}, stored); bad != 1 {
			t.Errorf("%s: bad = %d, want 1 (no stored password for it)", masked, bad)
		}
	}
	if r := mailer.RedactURLs(stored); fmt.Sprint(r) != "[smtp://ann:xxxxx@a.test:587 smtps://bob:xxxxx@b.test:465?rate=2]" {
		t.Errorf("RedactURLs = %v", r)
	}
}
