package e2e

import (
	"context"
	"encoding/csv"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/herald-mail/herald/models"
)

// importFile is a CSV of n rows, every 997th one not an address and every
// 1,999th one repeating line 3's address, with the error report it must
// produce: line number → address as written.
func importFile(n int, tag string) (data []byte, bad map[int]string) {
	var b strings.Builder
	b.WriteString("email,name,city\n")
	bad = map[int]string{}
	for i := range n {
		line := i + 2
		switch {
		case i > 0 && i%997 == 0:
			fmt.Fprintf(&b, "not-an-address-%d,Bad,Lyon\n", i)
			bad[line] = fmt.Sprintf("not-an-address-%d", i)
		case i > 0 && i%1999 == 0:
			email := fmt.Sprintf("%s%07d@example.com", tag, 1) // line 3's
			fmt.Fprintf(&b, "%s,Again,Lyon\n", email)
			bad[line] = email
		default:
			fmt.Fprintf(&b, "%s%07d@example.com,Reader %d,Lyon\n", tag, i, i)
		}
	}
	return []byte(b.String()), bad
}

var startPath = regexp.MustCompile(`/imports/(\d+)/start`)

// uploadTo uploads file through d's node and returns the new import's id.
func uploadTo(t *testing.T, d *Dashboard, list int64, name string, file []byte) int64 {
	t.Helper()
	code, body := d.Upload(t, "/imports", url.Values{"list": {strconv.FormatInt(list, 10)}}, name, file)
	m := startPath.FindStringSubmatch(body)
	if code != http.StatusOK || m == nil {
		t.Fatalf("upload %s = %d: %s", name, code, tail(body, 20))
	}
	id, _ := strconv.ParseInt(m[1], 10, 64)
	return id
}

// startImportOn submits the column mapping through d's node.
func startImportOn(t *testing.T, d *Dashboard, id int64) {
	t.Helper()
	form := url.Values{"email_column": {"0"}, "name_column": {"1"}, "attr": {"2"}, "lawful_basis": {models.BasisConsent},
		"source": {"e2e cluster import"}, "status": {models.SubConfirmed}, "mode": {models.ImportUpdate}}
	if code, body := d.Post(t, fmt.Sprintf("/imports/%d/start", id), form); code != http.StatusSeeOther {
		t.Fatalf("start import %d = %d: %s", id, code, tail(body, 20))
	}
}

// checkImport waits for the import to finish and checks its counts, its
// list and its error report (downloaded through d) against the file's.
func checkImport(t *testing.T, s *models.Store, d *Dashboard, id, list int64, rows int, bad map[int]string, timeout time.Duration) {
	t.Helper()
	ctx := context.Background()
	var im *models.Import
	Eventually(t, timeout, fmt.Sprintf("import %d finished", id), func() bool {
		var err error
		im, err = s.Import(ctx, id)
		return err == nil && im.Done()
	})
	good := int64(rows - len(bad))
	if im.Status != models.ImportFinished || im.RowsRead != int64(rows) || im.Inserted != good || im.Failed != int64(len(bad)) {
		t.Fatalf("import %d: %s %q, %d rows read, %d inserted, %d failed; want finished, %d, %d, %d",
			id, im.Status, im.Message, im.RowsRead, im.Inserted, im.Failed, rows, good, len(bad))
	}
	var members int64
	s.DB().Raw("SELECT count(*) FROM subscriptions WHERE list_id = ? AND status = 'confirmed'", list).Scan(&members)
	if members != good {
		t.Errorf("list %d has %d confirmed members, want %d", list, members, good)
	}
	code, body := d.Get(t, fmt.Sprintf("/imports/%d/errors.csv", id))
	recs, err := csv.NewReader(strings.NewReader(body)).ReadAll()
	if code != 200 || err != nil || len(recs) == 0 {
		t.Fatalf("error report = %d, %v: %.300s", code, err, body)
	}
	recs = recs[1:]
	if len(recs) != len(bad) {
		t.Errorf("error report has %d lines, want %d", len(recs), len(bad))
	}
	for _, r := range recs {
		line, _ := strconv.Atoi(r[0])
		want, ok := bad[line]
		if !ok || r[1] != want || r[2] == "" {
			t.Errorf("error report line %v; want line %d to be %q with a reason", r, line, want)
		}
		if strings.Contains(want, "@") && !strings.Contains(r[2], "Duplicate") {
			t.Errorf("error report line %v: want the reason to say it is a duplicate", r)
		}
	}
}

// An import is any node's, not the node's that received the upload. Two
// `herald serve` on one PostgreSQL:
//   - a file uploaded to node A, which is killed right after the upload,
//     is started from node B's dashboard and imported by node B;
//   - an import running on node A when A is killed (SIGKILL) is resumed
//     by node B once A's lease runs out, after the batches A committed.
//
// Every row is imported once, and the error report is the file's, line
// for line, each downloaded from the node that finished it.
func TestImportSurvivesItsNode(t *testing.T) {
	a := Start(t, Options{DatabaseURL: PostgresURL(t)})
	b := a.Node(t)
	s := a.Store(t)
	da, db := a.Dashboard(t), b.Dashboard(t)

	// Killed right after the upload: the file is in the database, not on A.
	list1 := a.List(t, "Uploaded to A")
	file1, bad1 := importFile(20_000, "first")
	id1 := uploadTo(t, da, list1, "first.csv", file1)
	a.Kill()
	startImportOn(t, db, id1)
	checkImport(t, s, db, id1, list1, 20_000, bad1, 2*time.Minute)

	// Killed mid-import: B resumes it.
	a.Restart()
	da = a.Dashboard(t)
	list2 := a.List(t, "Running on A")
	const rows = 300_000
	file2, bad2 := importFile(rows, "second")
	id2 := uploadTo(t, da, list2, "second.csv", file2)
	startImportOn(t, da, id2)
	var at int64
	Eventually(t, 2*time.Minute, "node A commits a batch of the import", func() bool {
		im, err := s.Import(context.Background(), id2)
		if err == nil && im.Done() {
			t.Fatalf("import %d finished on node A before it could be killed (%s)", id2, im.Status)
		}
		at = im.RowsRead
		return err == nil && im.RowsRead > 0
	})
	a.Kill()
	killed := time.Now()
	t.Logf("node A killed with %d of %d rows committed", at, rows)
	Eventually(t, time.Minute, "node B claims the import", func() bool {
		return strings.Contains(b.Logs(), fmt.Sprintf(`msg="import claimed" import=%d `, id2))
	})
	t.Logf("node B claimed it %.1fs after the kill", time.Since(killed).Seconds())
	checkImport(t, s, db, id2, list2, rows, bad2, 3*time.Minute)
	if strings.Contains(a.Logs(), fmt.Sprintf("import ended import=%d", id2)) {
		t.Errorf("node A's log says it ended import %d", id2)
	}
}
