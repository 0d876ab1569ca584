// Package spamdtest starts SpamAssassin's spamd (Debian's spamd package)
// for a test, on loopback and offline: local tests only, no DNS
// blocklists, no Bayes, and the rules Debian ships in
// /usr/share/spamassassin (not whatever sa-update fetched), so a score is
// the same on every machine.
//
// Tests skip when spamd is not installed, unless HERALD_REQUIRE_BROWSER or
// CI is set (as in CI, whose .ci/run installs it), where they fail.
package spamdtest

import (
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// RulesDir is where Debian's spamassassin package puts its default rules.
const RulesDir = "/usr/share/spamassassin"

// plugins are the ones Debian's /etc/spamassassin/*.pre load, less the
// ones that call out to other programs or networks (Pyzor, Razor2,
// SpamCop reporting, URI blocklists); the config is written afresh so a
// test does not depend on the machine's /etc.
var plugins = []string{"Check", "HTMLEval", "HeaderEval", "BodyEval", "MIMEEval", "MIMEHeader", "RelayEval",
	"URIEval", "WLBLEval", "ReplaceTags", "DKIM", "ImageInfo", "FreeMail", "HTTPSMismatch", "URIDetail",
	"VBounce", "WelcomeListSubject", "SPF", "DMARC"}

// localCF keeps spamd off the network and its scores independent of
// what it saw before.
const localCF = `skip_rbl_checks 1
use_bayes 0
bayes_auto_learn 0
dns_available no
`

// Start runs spamd for the test and returns its host:port. It is stopped
// when the test ends.
func Start(t testing.TB) string {
	t.Helper()
	bin, err := exec.LookPath("spamd")
	if err != nil {
		if os.Getenv("HERALD_REQUIRE_BROWSER") != "" || os.Getenv("CI") != "" {
			t.Fatal("spamd is required here but not installed (apt-get install spamd spamassassin)")
		}
		t.Skip("spamd not installed (apt-get install spamd spamassassin)")
	}
	if _, err := os.Stat(filepath.Join(RulesDir, "20_html_tests.cf")); err != nil {
		t.Fatalf("spamd is installed but its default rules are not in %s: %v", RulesDir, err)
	}
	// Not t.TempDir: spamd drops root for nobody before it reads its
	// config, and a test's temporary directory is open to its owner only.
	dir, err := os.MkdirTemp("", "herald-spamd-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	var pre strings.Builder
	for _, p := range plugins {
		pre.WriteString("loadplugin Mail::SpamAssassin::Plugin::" + p + "\n")
	}
	for name, text := range map[string]string{"init.pre": pre.String(), "local.cf": localCF} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_, port, _ := net.SplitHostPort(addr)
	l.Close()

	args := []string{"--listen", addr, "--local", "--nouser-config", "--configpath", RulesDir, "--siteconfigpath", dir,
		"--syslog", "stderr", "--pidfile", filepath.Join(dir, "spamd.pid"), "--max-children", "2", "--min-children", "1"}
	if u, err := user.Current(); err == nil && u.Uid == "0" {
		args = append(args, "--username", "nobody")
	}
	cmd := exec.Command(bin, args...)
	logf, err := os.Create(filepath.Join(dir, "spamd.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // its children go with it
	if err := cmd.Start(); err != nil {
		t.Fatalf("start spamd: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
		logf.Close()
		if t.Failed() {
			log, _ := os.ReadFile(filepath.Join(dir, "spamd.log"))
			t.Logf("spamd's log:\n%s", log)
		}
	})
	// Compiling the rules takes a few seconds, more on a busy machine.
	deadline := time.Now().Add(90 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", port), time.Second)
		if err == nil {
			c.Close()
			return addr
		}
		select {
		case <-exited:
			log, _ := os.ReadFile(filepath.Join(dir, "spamd.log"))
			t.Fatalf("spamd exited: %s", log)
		default:
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "spamd.log"))
			t.Fatalf("spamd did not listen on %s within 90s: %s", addr, log)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
