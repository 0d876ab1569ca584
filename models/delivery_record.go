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

// RecordOutcomes writes outcomes and adjusts the campaign counters in one
// transaction. A row whose lease node is no longer node (it expired and
// another node took it) is left alone. The bounces that bounced outcomes
// carry (BounceKind) are applied in the same transaction, by applyBounces
// as for a DSN, for the rows that changed. It returns how many rows it
// updated.
func (s *Store) RecordOutcomes(ctx context.Context, node string, outs []Outcome) (int, error) {
	s = s.hot()
	if len(outs) == 0 {
		return 0, nil
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
	var bounces []BounceNotice
	rest := outs
	if s.dialect == SQLite {
		// The SQLite driver parses a statement again on every execution,
		// prepared or not: attempts go in multi-row UPDATEs instead, the
		// same condition for each row.
		if rest, err = s.recordAttempts(ctx, tx, node, outs, count); err != nil {
			return 0, fmt.Errorf("models: record outcomes: %w", err)
		}
	}
	if len(rest) > 0 {
		if bounces, err = s.recordOneByOne(ctx, tx, node, rest, count); err != nil {
			return 0, err
		}
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

// recordOneByOne writes outcomes one UPDATE each: releases, every outcome
// on PostgreSQL, and on SQLite bounces that carry a bounce to apply and a
// batch naming one delivery twice. It returns the bounces of the rows it
// changed.
func (s *Store) recordOneByOne(ctx context.Context, tx *sql.Tx, node string, outs []Outcome, count func(int64, string, int)) ([]BounceNotice, error) {
	attempt, err := tx.PrepareContext(ctx, s.rebind(`UPDATE deliveries SET status = ?, attempts = attempts + 1, next_attempt_at = ?,
		lease_node = '', lease_until = NULL, last_code = ?, last_enhanced = ?, last_text = ?, message_id = ?, source_ip = ?,
		mx_host = ?, tls = ?, last_attempt_at = ?, sent_at = ? WHERE id = ? AND status = 'sending' AND lease_node = ?`))
	if err != nil {
		return nil, fmt.Errorf("models: record outcomes: %w", err)
	}
	defer attempt.Close()
	release, err := tx.PrepareContext(ctx, s.rebind(`UPDATE deliveries SET status = ?, next_attempt_at = ?, lease_node = '', lease_until = NULL,
		last_text = CASE WHEN ? = '' THEN last_text ELSE ? END WHERE id = ? AND status = 'sending' AND lease_node = ?`))
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
				o.SourceIP, o.MXHost, o.TLS, dbTime(o.At), sentAt, o.ID, node)
		} else {
			res, err = release.ExecContext(ctx, o.Status, dbTime(next), o.Text, truncate(o.Text, 500), o.ID, node)
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
// last_attempt_at]. The TLS state (< 100, see TLSCode) rides in the reply
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
		value->>5 AS message_id, value->>6 AS source_ip, value->>7 AS mx_host, value->>8 AS at FROM jsonb_each(?)) AS v
	WHERE deliveries.id = v.id AND deliveries.status = 'sending' AND deliveries.lease_node = ?`

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
func (s *Store) recordAttempts(ctx context.Context, tx *sql.Tx, node string, outs []Outcome, count func(int64, string, int)) ([]Outcome, error) {
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
				b[len(b)-1] = ']'
			}
			b = append(b, ']')
			res, err := tx.ExecContext(ctx, recordAttemptsSQL, g.status, g.status, string(b), node)
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

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
