package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// DKIMPy has dkimpy (Debian's python3-dkim), a verifier independent of
// Herald's signer, verify each message, looking keys up in the DNS server
// at dnsAddr. It returns one verdict map per message: key "" for the
// message as received, and one key per field name in prepend for a copy
// with that field added on top (an oversigned field must break it).
func DKIMPy(t testing.TB, dnsAddr string, msgs [][]byte, prepend []string) []map[string]bool {
	t.Helper()
	dir := WriteMessages(t, msgs)
	host, port, _ := net.SplitHostPort(dnsAddr)
	names, _ := json.Marshal(prepend)
	out, err := exec.Command("/usr/bin/python3", "-c", dkimpyScript, dir, host, port, string(names)).CombinedOutput()
	if err != nil {
		t.Fatalf("e2e: dkimpy: %v\n%s", err, out)
	}
	var res []map[string]bool
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("e2e: dkimpy output %q: %v", out, err)
	}
	if len(res) != len(msgs) {
		t.Fatalf("e2e: dkimpy checked %d messages, want %d", len(res), len(msgs))
	}
	return res
}

// WriteMessages writes msgs into a new folder as 000.eml, 001.eml, … and
// returns the folder.
func WriteMessages(t testing.TB, msgs [][]byte) string {
	t.Helper()
	dir := t.TempDir()
	for i, m := range msgs {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%03d.eml", i)), m, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// dkimpyScript asks with EDNS0 so that a 2048-bit key's record fits one
// UDP answer.
const dkimpyScript = `
import dkim, dns.message, dns.query, json, os, sys
host, port, names = sys.argv[2], int(sys.argv[3]), json.loads(sys.argv[4])
def dnsfunc(name, timeout=5):
    n = name.decode() if isinstance(name, bytes) else name
    q = dns.message.make_query(n, 'TXT', use_edns=0, payload=4096)
    r = dns.query.udp(q, host, port=port, timeout=timeout)
    for rrset in r.answer:
        for rd in rrset:
            return b''.join(rd.strings)
    return None
out = []
for f in sorted(os.listdir(sys.argv[1])):
    with open(os.path.join(sys.argv[1], f), 'rb') as fh:
        m = fh.read()
    v = {"": dkim.verify(m, dnsfunc=dnsfunc)}
    for n in names:
        v[n] = dkim.verify(n.encode() + b': injected@example.net\r\n' + m, dnsfunc=dnsfunc)
    out.append(v)
print(json.dumps(out))
`
