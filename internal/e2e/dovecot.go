package e2e

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// Dovecot is a private Dovecot IMAP server for one test: its own
// configuration and maildirs in a temporary directory, an unprivileged
// port, passwd-file users, and a Spam folder marked \Junk in every
// mailbox. Mail reaches it by Deliver, the test's stand-in for the
// receiving MTA's local delivery.
type Dovecot struct {
	// Addr is 127.0.0.1:port, offering IMAP with STARTTLS (required).
	Addr string
	// CAFile holds the CA that signed the server's certificate, for
	// SSL_CERT_FILE.
	CAFile string

	dir      string
	uid, gid int
	seq      atomic.Int64
}

// StartDovecot starts Dovecot with users (name → password) until the test
// ends. The test is skipped when Dovecot is not installed, except in CI
// (CI=true), where it fails: .ci/run installs dovecot-imapd.
func StartDovecot(t testing.TB, users map[string]string) *Dovecot {
	t.Helper()
	bin, err := exec.LookPath("dovecot")
	if err != nil {
		if bin, err = exec.LookPath("/usr/sbin/dovecot"); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("e2e: dovecot is required in CI: %v", err)
			}
			t.Skipf("dovecot unavailable (%v): apt-get install dovecot-imapd", err)
		}
	}
	// Not t.TempDir: Dovecot's mail processes run as another user when
	// the test runs as root, and must reach the maildirs; and its sockets
	// need a short path.
	dir, err := os.MkdirTemp("", "herald-dovecot-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	d := &Dovecot{dir: dir, uid: os.Getuid(), gid: os.Getgid()}
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	loginUser, internalUser := me.Username, me.Username
	if d.uid == 0 {
		// Dovecot refuses to run its login and mail processes as root.
		loginUser, internalUser = "dovenull", "dovecot"
		nobody, err := user.Lookup("nobody")
		if err != nil {
			t.Fatalf("e2e: dovecot as root needs the user nobody for the mailboxes: %v", err)
		}
		d.uid, _ = strconv.Atoi(nobody.Uid)
		d.gid, _ = strconv.Atoi(nobody.Gid)
	}
	tlsConf, caFile := ThrowawayCA(t, "127.0.0.1")
	d.CAFile = caFile
	cert := tlsConf.Certificates[0]
	keyDER, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, data []byte, mode os.FileMode) {
		if err := os.WriteFile(filepath.Join(dir, name), data, mode); err != nil {
			t.Fatal(err)
		}
	}
	write("cert.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}), 0o644)
	write("key.pem", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600)
	var passwd strings.Builder
	for name, pass := range users {
		home := filepath.Join(dir, "mail", name)
		fmt.Fprintf(&passwd, "%s:{PLAIN}%s:%d:%d::%s\n", name, pass, d.uid, d.gid, home)
		for _, f := range []string{"", ".Spam"} {
			for _, sub := range []string{"cur", "new", "tmp"} {
				if err := os.MkdirAll(filepath.Join(home, "Maildir", f, sub), 0o700); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	write("passwd", []byte(passwd.String()), 0o644)
	if err := os.MkdirAll(filepath.Join(dir, "run"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := chownTree(filepath.Join(dir, "mail"), d.uid, d.gid); err != nil {
		t.Fatal(err)
	}
	port := FreePort(t)
	d.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	conf := fmt.Sprintf(`base_dir = %[1]s/run
state_dir = %[1]s/run
log_path = %[1]s/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = required
ssl_cert = <%[1]s/cert.pem
ssl_key = <%[1]s/key.pem
default_login_user = %[2]s
default_internal_user = %[3]s
first_valid_uid = 1
auth_mechanisms = plain
passdb {
  driver = passwd-file
  args = %[1]s/passwd
}
userdb {
  driver = passwd-file
  args = %[1]s/passwd
}
mail_location = maildir:~/Maildir
namespace inbox {
  inbox = yes
  separator = /
  mailbox Spam {
    special_use = \Junk
    auto = subscribe
  }
}
service imap-login {
  chroot =
  inet_listener imap {
    port = %[4]d
  }
  inet_listener imaps {
    port = 0
  }
}
service anvil {
  chroot =
}
`, dir, loginUser, internalUser, port)
	if os.Getuid() != 0 {
		// Unprivileged, every process runs as this user: the sockets
		// Dovecot hands to its own group cannot change group.
		for _, l := range [][2]string{{"stats", "stats-writer"}, {"imap-hibernate", "imap-hibernate"}, {"dict", "dict"}, {"dict-async", "dict-async"}} {
			conf += fmt.Sprintf("service %s {\n  unix_listener %s {\n    group =\n    mode = 0600\n  }\n}\n", l[0], l[1])
		}
	}
	write("dovecot.conf", []byte(conf), 0o644)
	cmd := exec.Command(bin, "-F", "-c", filepath.Join(dir, "dovecot.conf"))
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("e2e: start dovecot: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			log, _ := os.ReadFile(filepath.Join(dir, "dovecot.log"))
			t.Logf("dovecot output:\n%s\nlog:\n%s", out.String(), tail(string(log), 40))
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", d.Addr, time.Second)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "dovecot.log"))
			t.Fatalf("e2e: dovecot did not listen on %s: %v\n%s\n%s", d.Addr, err, out.String(), log)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return d
}

// Deliver files raw into user's folder ("" or "INBOX" for the inbox,
// "Spam" for the junk folder) as a local delivery agent does: written in
// tmp, then renamed into new.
func (d *Dovecot) Deliver(t testing.TB, user, folder string, raw []byte) {
	t.Helper()
	box := filepath.Join(d.dir, "mail", user, "Maildir")
	if folder != "" && !strings.EqualFold(folder, "INBOX") {
		box = filepath.Join(box, "."+folder)
	}
	name := fmt.Sprintf("%d.%d_%d.herald-e2e", time.Now().Unix(), os.Getpid(), d.seq.Add(1))
	tmp := filepath.Join(box, "tmp", name)
	if err := os.WriteFile(tmp, raw, 0o600); err != nil {
		t.Errorf("e2e: deliver to %s/%s: %v", user, folder, err)
		return
	}
	if err := os.Chown(tmp, d.uid, d.gid); err != nil {
		t.Errorf("e2e: deliver to %s/%s: %v", user, folder, err)
		return
	}
	if err := os.Rename(tmp, filepath.Join(box, "new", name)); err != nil {
		t.Errorf("e2e: deliver to %s/%s: %v", user, folder, err)
	}
}

func chownTree(root string, uid, gid int) error {
	if uid == os.Getuid() && gid == os.Getgid() {
		return nil
	}
	return filepath.Walk(root, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Chown(p, uid, gid)
	})
}
