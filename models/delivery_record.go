package models

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"gorm.io/gorm"
)

// bounceNotice is the bounce a bounced outcome carries, if any.
func (o *Outcome) bounceNotice() (BounceNotice, bool) {
	if o.Status != DeliveryBounced || o.BounceKind == "" {
		return BounceNotice{}, false
	}
	return BounceNotice{DeliveryID: o.ID, Kind: o.BounceKind, Category: o.BounceCategory, Status: o.Enhanced,
		Diagnostic: strings.TrimSpace(strconv.Itoa(o.Code) + " " + o.Text), RemoteMTA: o.MXHost, DuringDelivery: true,
		Reason: o.BounceReason}, true
}

// record is RecordOutcomes.
func (w deliveryWriter) record(ctx context.Context, outs []Outcome) (int, error) {
	s := w.s
	if len(outs) == 0 {
		return 0, nil
	}
	if n, ok, err := w.sql.recordAlone(ctx, s.sql, outs); err != nil {
		return 0, fmt.Errorf("models: record outcomes: %w", err)
	} else if ok {
		return n, nil
	}
	tx, err := s.sql.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("models: record outcomes: %w", err)
	}
	defer tx.Rollback()
	delta := map[int64]*Counters{}
	n := 0
	// count books k rows of a campaign moved from sending to status.
	count := func(campaignID int64, status string, k int) {
		n += k
		if campaignID == 0 || k == 0 {
			return
		}
		c := delta[campaignID]
		if c == nil {
			c = &Counters{}
			delta[campaignID] = c
		}
		c.Sending -= int64(k)
		c.add(status, int64(k))
	}
	rest, bounces, err := w.sql.recordBatch(ctx, tx, outs, count)
	if err != nil {
		return 0, fmt.Errorf("models: record outcomes: %w", err)
	}
	if len(rest) > 0 {
		more, err := s.recordOneByOne(ctx, tx, rest, count)
		if err != nil {
			return 0, err
		}
		bounces = append(bounces, more...)
	}
	if err := s.applyCounters(ctx, tx, delta); err != nil {
		return 0, fmt.Errorf("models: record outcomes: %w", err)
	}
	if len(bounces) > 0 {
		// gorm over the same transaction, as Transaction does it.
		g := s.conn(ctx).Session(&gorm.Session{NewDB: true})
		g.Statement.ConnPool = tx
		if _, err := s.applyBounces(ctx, g, bounces); err != nil {
			return 0, fmt.Errorf("models: record outcomes: apply bounces: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("models: record outcomes: %w", err)
	}
	return n, nil
}

// recordOneByOne writes outcomes one UPDATE each: those recordBatch
// leaves (on SQLite releases and bounces that carry a bounce to apply) and
// a batch naming one delivery twice. It returns the bounces of the rows it
// changed.
func (s *Store) recordOneByOne(ctx context.Context, tx *sql.Tx, outs []Outcome, count func(int64, string, int)) ([]BounceNotice, error) {
	attempt, err := tx.PrepareContext(ctx, s.rebind(`UPDATE deliveries SET status = ?, attempts = attempts + 1, next_attempt_at = ?,
		lease_node = '', lease_until = NULL, last_code = ?, last_enhanced = ?, last_text = ?, message_id = ?, source_ip = ?,
		mx_host = ?, tls = ?, last_attempt_at = ?, sent_at = ? WHERE id = ? AND status = 'sending' AND lease_gen = ?`))
	if err != nil {
		return nil, fmt.Errorf("models: record outcomes: %w", err)
	}
	defer attempt.Close()
	release, err := tx.PrepareContext(ctx, s.rebind(`UPDATE deliveries SET status = ?, next_attempt_at = ?, lease_node = '', lease_until = NULL,
		last_text = CASE WHEN ? = '' THEN last_text ELSE ? END WHERE id = ? AND status = 'sending' AND lease_gen = ?`))
	if err != nil {
		return nil, fmt.Errorf("models: record outcomes: %w", err)
	}
	defer release.Close()
	var bounces []BounceNotice
	for _, o := range outs {
		next := o.NextAttempt
		if next.IsZero() {
			next = o.At
		}
		var res sql.Result
		if o.Attempted {
			var sentAt any
			if o.Status == DeliverySent {
				sentAt = dbTime(o.At)
			}
			res, err = attempt.ExecContext(ctx, o.Status, dbTime(next), o.Code, o.Enhanced, truncate(o.Text, 500), o.MessageID,
				o.SourceIP, o.MXHost, o.TLS, dbTime(o.At), sentAt, o.ID, o.LeaseGen)
		} else {
			res, err = release.ExecContext(ctx, o.Status, dbTime(next), o.Text, truncate(o.Text, 500), o.ID, o.LeaseGen)
		}
		if err != nil {
			return nil, fmt.Errorf("models: record outcome of delivery %d: %w", o.ID, err)
		}
		if k, _ := res.RowsAffected(); k > 0 {
			count(o.CampaignID, o.Status, 1)
			if n, ok := o.bounceNotice(); ok {
				bounces = append(bounces, n)
			}
		}
	}
	return bounces, nil
}

// attemptChunk is how many outcomes one UPDATE carries.
const attemptChunk = 512

// sqliteTimeLayout is how the SQLite driver writes a time.Time parameter;
// times passed inside JSON must read back the same.
const sqliteTimeLayout = "2006-01-02 15:04:05.999999999-07:00"

// recordAttemptsSQL applies a JSON array of attempts of one new status
// (the first two parameters), one array per row: [id, next_attempt_at,
// code×100 + tls, enhanced, text, message_id, source_ip, mx_host,
// last_attempt_at, lease_gen]. The TLS state (< 100, see TLSCode) rides in the reply
// code's field: integer arithmetic is nearly free where one more ->> is
// not.
// Its text never changes, so one parse serves a whole chunk (the SQLite
// driver parses a statement on every execution, prepared or not). An
// UPDATE with FROM keeps a statement journal even under OR FAIL; the
// queue connection keeps it in memory (see Open). jsonb_each hands each row's array over as
// JSONB, which ->> reads in place; json_each would print it as text for
// ->> to parse again, a third of the statement's cost. Each ->> costs
// about a third of a microsecond: what a chunk shares is a parameter.
const recordAttemptsSQL = `UPDATE OR FAIL deliveries SET status = ?, tls = v.code % 100, attempts = attempts + 1, next_attempt_at = v.next,
	lease_node = '', lease_until = NULL, last_code = v.code / 100, last_enhanced = v.enhanced, last_text = v.text,
	message_id = v.message_id, source_ip = v.source_ip, mx_host = v.mx_host, last_attempt_at = v.at,
	sent_at = CASE WHEN ? = 'sent' THEN v.at END
	FROM (SELECT value->>0 AS id, value->>1 AS next, value->>2 AS code, value->>3 AS enhanced, value->>4 AS text,
		value->>5 AS message_id, value->>6 AS source_ip, value->>7 AS mx_host, value->>8 AS at, value->>9 AS gen FROM jsonb_each(?)) AS v
	WHERE deliveries.id = v.id AND deliveries.status = 'sending' AND deliveries.lease_gen = v.gen`

// attemptsBuf holds recordAttempts' JSON between calls: a chunk's is
// about 150 KB.
var attemptsBuf = sync.Pool{New: func() any { return new([]byte) }}

// recordAttempts writes the attempted outcomes among outs (SQLite) and
// counts the rows it changed. Attempts go in groups of one campaign and
// one new status, so each UPDATE's count of changed rows is all the
// counters need (RETURNING a row at a time cost more than the UPDATE). It
// returns the outcomes left for the row-by-row path: releases, bounces
// that carry a bounce to apply (which must know whether their row
// changed), and every outcome when one delivery appears twice in outs (one
// UPDATE would apply only one of them).
func recordAttempts(ctx context.Context, tx *sql.Tx, outs []Outcome, count func(int64, string, int)) ([]Outcome, error) {
	type group struct {
		campaign int64
		status   string
	}
	seen := make(map[int64]bool, len(outs))
	groups := map[group][]int{}
	var order []group
	var rest []Outcome
	for i := range outs {
		if seen[outs[i].ID] {
			return outs, nil
		}
		seen[outs[i].ID] = true
		if _, ok := outs[i].bounceNotice(); !outs[i].Attempted || ok {
			// A bounce to apply needs to know its row changed: rare
			// enough to take the row-by-row path.
			rest = append(rest, outs[i])
			continue
		}
		g := group{outs[i].CampaignID, outs[i].Status}
		if groups[g] == nil {
			order = append(order, g)
		}
		groups[g] = append(groups[g], i)
	}
	pb := attemptsBuf.Get().(*[]byte)
	b := *pb
	defer func() { *pb = b[:0]; attemptsBuf.Put(pb) }()
	str := func(v string) {
		b = appendJSONString(b, strings.ToValidUTF8(v, "\uFFFD"))
		b = append(b, ',')
	}
	at := func(t time.Time) {
		b = append(b, '"')
		b = dbTime(t).AppendFormat(b, sqliteTimeLayout)
		b = append(b, '"', ',')
	}
	for _, g := range order {
		attempts := groups[g]
		for len(attempts) > 0 {
			k := min(len(attempts), attemptChunk)
			b = append(b[:0], '[')
			for j, i := range attempts[:k] {
				if j > 0 {
					b = append(b, ',')
				}
				o := &outs[i]
				next := o.NextAttempt
				if next.IsZero() {
					next = o.At
				}
				b = append(b, '[')
				b = strconv.AppendInt(b, o.ID, 10)
				b = append(b, ',')
				at(next)
				b = strconv.AppendInt(b, int64(o.Code)*100+int64(o.TLS), 10)
				b = append(b, ',')
				str(o.Enhanced)
				str(truncate(o.Text, 500))
				str(o.MessageID)
				str(o.SourceIP)
				str(o.MXHost)
				at(o.At)
				b = strconv.AppendInt(b, o.LeaseGen, 10)
				b = append(b, ']')
			}
			b = append(b, ']')
			res, err := tx.ExecContext(ctx, recordAttemptsSQL, g.status, g.status, string(b))
			if err != nil {
				return nil, err
			}
			changed, err := res.RowsAffected()
			if err != nil {
				return nil, err
			}
			count(g.campaign, g.status, int(changed))
			attempts = attempts[k:]
		}
	}
	return rest, nil
}

// recordSetUpdate writes a batch of outcomes, attempts and releases alike,
// in one statement: one array per column, one element per outcome. Each
// outcome's row changes only while its claim's generation is the row's.
// RETURNING names the rows that changed.
const recordSetUpdate = `UPDATE deliveries AS d SET status = v.status,
	attempts = d.attempts + CASE WHEN v.attempted THEN 1 ELSE 0 END, next_attempt_at = v.next, lease_node = '', lease_until = NULL,
	last_code = CASE WHEN v.attempted THEN v.code ELSE d.last_code END,
	last_enhanced = CASE WHEN v.attempted THEN v.enhanced ELSE d.last_enhanced END,
	last_text = CASE WHEN v.attempted OR v.text <> '' THEN v.text ELSE d.last_text END,
	message_id = CASE WHEN v.attempted THEN v.message_id ELSE d.message_id END,
	source_ip = CASE WHEN v.attempted THEN v.source_ip ELSE d.source_ip END,
	mx_host = CASE WHEN v.attempted THEN v.mx_host ELSE d.mx_host END,
	tls = CASE WHEN v.attempted THEN v.tls ELSE d.tls END,
	last_attempt_at = CASE WHEN v.attempted THEN v.at ELSE d.last_attempt_at END,
	sent_at = CASE WHEN NOT v.attempted THEN d.sent_at WHEN v.status = 'sent' THEN v.at END
	FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::bool[], $5::timestamptz[], $6::int[], $7::text[], $8::text[],
		$9::text[], $10::text[], $11::text[], $12::smallint[], $13::timestamptz[])
		AS v(id, gen, status, attempted, next, code, enhanced, text, message_id, source_ip, mx_host, tls, at)
	WHERE d.id = v.id AND d.status = 'sending' AND d.lease_gen = v.gen
	RETURNING d.id, COALESCE(d.campaign_id, 0) AS campaign_id, d.status`

// recordSetAlone is recordSetUpdate with the campaign counters moved in
// the same statement, which is then its own transaction: one round trip
// to the server for the whole batch. The server's latency, not its work,
// bounded the outcomes written per second while only a few are
// unrecorded at a time (the engine's bound).
const recordSetAlone = `WITH u AS (` + recordSetUpdate + `),
	k AS (SELECT campaign_id, count(*) AS n,
		count(*) FILTER (WHERE status = 'queued') AS queued, count(*) FILTER (WHERE status = 'sent') AS sent,
		count(*) FILTER (WHERE status = 'deferred') AS deferred, count(*) FILTER (WHERE status = 'bounced') AS bounced,
		count(*) FILTER (WHERE status = 'failed') AS failed, count(*) FILTER (WHERE status = 'suppressed') AS suppressed
		FROM u WHERE campaign_id <> 0 GROUP BY campaign_id),
	c AS (UPDATE campaigns SET sending = sending - k.n, queued = campaigns.queued + k.queued, sent = campaigns.sent + k.sent,
		deferred = campaigns.deferred + k.deferred, bounced = campaigns.bounced + k.bounced, failed = campaigns.failed + k.failed,
		suppressed = campaigns.suppressed + k.suppressed FROM k WHERE campaigns.id = k.campaign_id)
	SELECT count(*) FROM u`

// outcomeArrays is a batch of outcomes as recordSetUpdate's parameters,
// and where each delivery is in the batch; nil when one delivery appears
// twice (one UPDATE would apply only one of them).
func outcomeArrays(outs []Outcome) ([]any, map[int64]int) {
	n := len(outs)
	byID := make(map[int64]int, n)
	var (
		ids, gens                                  = make([]int64, n), make([]int64, n)
		statuses, enhanced, texts, msgIDs, ips, mx = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		attempted                                  = make([]bool, n)
		next, at                                   = make([]time.Time, n), make([]time.Time, n)
		codes                                      = make([]int32, n)
		tls                                        = make([]int16, n)
	)
	for i := range outs {
		o := &outs[i]
		if _, dup := byID[o.ID]; dup {
			return nil, nil
		}
		byID[o.ID] = i
		nx := o.NextAttempt
		if nx.IsZero() {
			nx = o.At
		}
		ids[i], gens[i], statuses[i], attempted[i] = o.ID, o.LeaseGen, o.Status, o.Attempted
		next[i], at[i], codes[i], tls[i] = dbTime(nx), dbTime(o.At), int32(o.Code), o.TLS
		enhanced[i], msgIDs[i], ips[i], mx[i] = validText(o.Enhanced), validText(o.MessageID), validText(o.SourceIP), validText(o.MXHost)
		texts[i] = validText(truncate(o.Text, 500))
	}
	return []any{ids, gens, statuses, attempted, next, codes, enhanced, texts, msgIDs, ips, mx, tls, at}, byID
}

// recordAlonePostgres writes outs with recordSetAlone, outside any
// transaction, when none carries a bounce to apply (applyBounces needs
// the changed rows in a transaction of its own) and no delivery appears
// twice; ok false leaves them to the transaction.
func recordAlonePostgres(ctx context.Context, db *sql.DB, outs []Outcome) (n int, ok bool, err error) {
	for i := range outs {
		if _, b := outs[i].bounceNotice(); b {
			return 0, false, nil
		}
	}
	args, _ := outcomeArrays(outs)
	if args == nil {
		return 0, false, nil
	}
	err = db.QueryRowContext(ctx, recordSetAlone, args...).Scan(&n)
	return n, true, err
}

// recordSetPostgres writes outs with recordSetUpdate in the transaction,
// counting the changed rows and returning their bounces, unless one
// delivery appears twice: then it leaves them all to the row-by-row path.
func recordSetPostgres(ctx context.Context, tx *sql.Tx, outs []Outcome, count func(int64, string, int)) ([]Outcome, []BounceNotice, error) {
	args, byID := outcomeArrays(outs)
	if args == nil {
		return outs, nil, nil
	}
	rows, err := tx.QueryContext(ctx, recordSetUpdate, args...)
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	var bounces []BounceNotice
	for rows.Next() {
		var (
			id, campaign int64
			status       string
		)
		if err := rows.Scan(&id, &campaign, &status); err != nil {
			return nil, nil, err
		}
		o := &outs[byID[id]]
		count(o.CampaignID, o.Status, 1)
		if b, ok := o.bounceNotice(); ok {
			bounces = append(bounces, b)
		}
	}
	return nil, bounces, rows.Err()
}

// validText replaces what is not UTF-8 (a reply cut mid-character), which
// PostgreSQL's text refuses.
func validText(s string) string { return strings.ToValidUTF8(s, "\uFFFD") }

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
