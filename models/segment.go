package models

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"gorm.io/gorm"
)

// Segment is a saved audience: the active subscribers its conditions match.
type Segment struct {
	ID         int64
	Name       string
	Conditions Conditions `gorm:"serializer:json;type:text"`
	CreatedAt  time.Time
	UpdatedAt  time.Time
}

// Conditions is a segment's definition: groups of conditions, the groups
// combined by Match ("all": every group holds; "any": one does), and the
// conditions of a group by the group's own Match. No group matches every
// active subscriber.
//
//	{"match": "all", "groups": [
//	  {"match": "any", "conditions": [
//	    {"field": "attribute", "key": "city", "op": "equals", "value": "Paris"},
//	    {"field": "clicked", "op": "in_last_days", "days": 30}]}]}
type Conditions struct {
	Match  string           `json:"match"`
	Groups []ConditionGroup `json:"groups"`
}

// ConditionGroup is conditions combined by Match, "all" or "any".
type ConditionGroup struct {
	Match      string      `json:"match"`
	Conditions []Condition `json:"conditions"`
}

// Condition is one test of a subscriber. Field says what is tested, Op
// how; the other members are the operands the pair needs (SegmentFields
// lists them).
type Condition struct {
	Field  string `json:"field"`
	Op     string `json:"op"`
	Key    string `json:"key,omitempty"`     // attribute: its name
	Value  string `json:"value,omitempty"`   // text, number or date (YYYY-MM-DD)
	Value2 string `json:"value2,omitempty"`  // the upper bound of between
	ListID int64  `json:"list_id,omitempty"` // list; lawful_basis (optional)
	Status string `json:"status,omitempty"`  // list: "" (subscribed), confirmed, unconfirmed, unsubscribed
	Days   int    `json:"days,omitempty"`    // in_last_days, not_in_last_days
	Count  int    `json:"count,omitempty"`   // received: at_least, fewer_than
}

// Condition fields.
const (
	FieldList         = "list"
	FieldAttribute    = "attribute"
	FieldEmailDomain  = "email_domain"
	FieldProvider     = "provider"
	FieldSignupDate   = "signup_date"
	FieldSignupSource = "signup_source"
	FieldLawfulBasis  = "lawful_basis"
	FieldOpened       = "opened"
	FieldClicked      = "clicked"
	FieldReceived     = "received"
	FieldBounced      = "bounced"
	FieldComplained   = "complained"
)

// SegmentField describes one field for the builder and the API's errors:
// the operators it takes, in the order offered.
type SegmentField struct {
	Field string
	Label string
	Ops   []string
}

// SegmentFields lists every field and its operators.
var SegmentFields = []SegmentField{
	{FieldList, "List", []string{"in", "not_in"}},
	{FieldAttribute, "Attribute", []string{"equals", "not_equals", "contains", "starts_with", "greater_than", "less_than", "between",
		"before", "after", "between_dates", "is_set", "not_set"}},
	{FieldEmailDomain, "Email domain", []string{"equals", "not_equals"}},
	{FieldProvider, "Receiving provider", []string{"equals", "not_equals"}},
	{FieldSignupDate, "Signup date", []string{"before", "after", "between_dates", "in_last_days"}},
	{FieldSignupSource, "Signup source", []string{"equals", "not_equals"}},
	{FieldLawfulBasis, "Lawful basis and evidence", []string{"has", "lacks", "is"}},
	{FieldOpened, "Opened (by a person)", []string{"in_last_days", "not_in_last_days", "ever", "never"}},
	{FieldClicked, "Clicked (by a person)", []string{"in_last_days", "not_in_last_days", "ever", "never"}},
	{FieldReceived, "Campaigns received", []string{"at_least", "fewer_than"}},
	{FieldBounced, "Bounced", []string{"ever", "never", "in_last_days"}},
	{FieldComplained, "Complained", []string{"ever", "never", "in_last_days"}},
}

// SegmentOpLabels names every operator for people.
var SegmentOpLabels = map[string]string{
	"in": "is on", "not_in": "is not on", "equals": "equals", "not_equals": "does not equal", "contains": "contains",
	"starts_with": "starts with", "greater_than": "is more than", "less_than": "is less than", "between": "is between (numbers)",
	"before": "is before", "after": "is after", "between_dates": "is between (dates)", "is_set": "is set", "not_set": "is not set",
	"in_last_days": "in the last N days", "not_in_last_days": "not in the last N days", "ever": "ever", "never": "never",
	"at_least": "at least", "fewer_than": "fewer than", "has": "has a valid basis", "lacks": "lacks a valid basis", "is": "is",
}

// SignupSources are the values signup_source compares with.
var SignupSources = []string{SourceForm, SourceImport, SourceAPI, SourceAdmin, SourcePreference}

func segmentField(f string) *SegmentField {
	for i := range SegmentFields {
		if SegmentFields[i].Field == f {
			return &SegmentFields[i]
		}
	}
	return nil
}

// Limits of a segment's definition.
const (
	MaxSegmentConditions = 50
	maxAttributeKey      = 100
	maxConditionValue    = 500
	maxConditionDays     = 36600
)

// Validate checks the conditions' shape and operands (not that their lists
// and providers exist: the store does that when it compiles them). The
// error names the group and condition and says what to do.
func (c *Conditions) Validate() error {
	if c.Match == "" {
		c.Match = "all"
	}
	if c.Match != "all" && c.Match != "any" {
		return conditionError(0, 0, `match must be "all" or "any"`)
	}
	n := 0
	for gi := range c.Groups {
		g := &c.Groups[gi]
		if g.Match == "" {
			g.Match = "all"
		}
		if g.Match != "all" && g.Match != "any" {
			return conditionError(gi+1, 0, `match must be "all" or "any"`)
		}
		if len(g.Conditions) == 0 {
			return conditionError(gi+1, 0, "the group has no condition: add one or remove the group")
		}
		for ci := range g.Conditions {
			if n++; n > MaxSegmentConditions {
				return conditionError(0, 0, fmt.Sprintf("keep to %d conditions", MaxSegmentConditions))
			}
			if msg := g.Conditions[ci].validate(); msg != "" {
				return conditionError(gi+1, ci+1, msg)
			}
		}
	}
	return nil
}

// Count is the number of conditions.
func (c Conditions) Count() int {
	n := 0
	for _, g := range c.Groups {
		n += len(g.Conditions)
	}
	return n
}

func conditionError(group, cond int, msg string) error {
	where := "Conditions"
	switch {
	case cond > 0:
		where = fmt.Sprintf("Group %d, condition %d", group, cond)
	case group > 0:
		where = fmt.Sprintf("Group %d", group)
	}
	return invalid(map[string]string{"conditions": where + ": " + msg + "."})
}

func validDate(v string) bool {
	_, err := time.Parse("2006-01-02", v)
	return err == nil
}

func (c *Condition) validate() string {
	c.Key, c.Value, c.Value2 = strings.TrimSpace(c.Key), strings.TrimSpace(c.Value), strings.TrimSpace(c.Value2)
	f := segmentField(c.Field)
	if f == nil {
		names := make([]string, len(SegmentFields))
		for i, x := range SegmentFields {
			names[i] = x.Field
		}
		return fmt.Sprintf("field %q is unknown; use one of %s", c.Field, strings.Join(names, ", "))
	}
	if !slices.Contains(f.Ops, c.Op) {
		return fmt.Sprintf("%s takes the operators %s, not %q", c.Field, strings.Join(f.Ops, ", "), c.Op)
	}
	if utf8.RuneCountInString(c.Value) > maxConditionValue || utf8.RuneCountInString(c.Value2) > maxConditionValue {
		return fmt.Sprintf("keep values under %d characters", maxConditionValue)
	}
	switch c.Op {
	case "in_last_days", "not_in_last_days":
		if c.Days < 1 || c.Days > maxConditionDays {
			return fmt.Sprintf("give a number of days from 1 to %d", maxConditionDays)
		}
	case "at_least", "fewer_than":
		if c.Count < 0 || c.Count > 1000000 {
			return "give a number of campaigns from 0 to 1000000"
		}
	}
	switch c.Field {
	case FieldList:
		if c.ListID <= 0 {
			return "choose a list"
		}
		if c.Status != "" && c.Status != SubConfirmed && c.Status != SubUnconfirmed && c.Status != SubUnsubscribed {
			return `status must be empty (subscribed), "confirmed", "unconfirmed" or "unsubscribed"`
		}
	case FieldAttribute:
		if c.Key == "" {
			return "name the attribute"
		}
		if len(c.Key) > maxAttributeKey || strings.ContainsAny(c.Key, "\"\\") || strings.IndexFunc(c.Key, func(r rune) bool { return r < 0x20 }) >= 0 {
			return fmt.Sprintf("an attribute name has at most %d characters and no quote, backslash or control character", maxAttributeKey)
		}
		switch c.Op {
		case "equals", "not_equals", "contains", "starts_with":
			if c.Value == "" {
				return "give a value (to test for an empty attribute, use \"is not set\")"
			}
		case "greater_than", "less_than", "between":
			if _, err := strconv.ParseFloat(c.Value, 64); err != nil {
				return fmt.Sprintf("%q is not a number", c.Value)
			}
			if c.Op == "between" {
				if _, err := strconv.ParseFloat(c.Value2, 64); err != nil {
					return fmt.Sprintf("%q is not a number: give the upper bound too", c.Value2)
				}
			}
		case "before", "after", "between_dates":
			if msg := checkDates(c); msg != "" {
				return msg
			}
		}
	case FieldEmailDomain:
		c.Value = strings.ToLower(strings.TrimPrefix(c.Value, "@"))
		if c.Value == "" || strings.ContainsAny(c.Value, "@ ") {
			return "give a domain such as example.com"
		}
	case FieldProvider:
		if c.Value == "" {
			return "choose a provider"
		}
	case FieldSignupDate:
		if c.Op != "in_last_days" {
			if msg := checkDates(c); msg != "" {
				return msg
			}
		}
	case FieldSignupSource:
		if !slices.Contains(SignupSources, c.Value) {
			return fmt.Sprintf("source must be one of %s", strings.Join(SignupSources, ", "))
		}
	case FieldLawfulBasis:
		if c.Op == "is" && !ValidLawfulBasis(c.Value) {
			return fmt.Sprintf("basis must be one of %s", strings.Join(LawfulBases, ", "))
		}
		if c.ListID < 0 {
			return "choose a list or none"
		}
	case FieldBounced:
		if c.Value != "" && c.Value != "hard" && c.Value != "soft" {
			return `value must be empty (any bounce), "hard" or "soft"`
		}
	}
	return ""
}

func checkDates(c *Condition) string {
	if !validDate(c.Value) {
		return fmt.Sprintf("%q is not a date: write it as YYYY-MM-DD", c.Value)
	}
	if c.Op == "between_dates" {
		if !validDate(c.Value2) {
			return fmt.Sprintf("%q is not a date: give the last day too, as YYYY-MM-DD", c.Value2)
		}
		if c.Value2 < c.Value {
			return "the last day comes before the first"
		}
	}
	return ""
}

// ParseConditions reads conditions from JSON and validates them.
func ParseConditions(b []byte) (Conditions, error) {
	var c Conditions
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return c, invalid(map[string]string{"conditions": "Conditions must be JSON such as {\"match\":\"all\",\"groups\":[{\"match\":\"all\",\"conditions\":[{\"field\":\"attribute\",\"key\":\"city\",\"op\":\"equals\",\"value\":\"Paris\"}]}]}: " + err.Error()})
	}
	return c, c.Validate()
}

// segmentSQL compiles conditions into a predicate over subscribers s with
// its parameters. Values are always parameters; only the validated field
// and operator choose the SQL text.
type segmentSQL struct {
	s     *Store
	ctx   context.Context
	d     dialectSQL
	now   time.Time
	args  []any
	rules []DomainRule // loaded for the first provider condition
	after int64        // only subscribers above this id are asked about
	upto  int64        // and, when not 0, up to this one
	// driver is the list whose subscription sp of the subscriber the
	// predicate is evaluated beside (materialisation's driven path), 0
	// when there is none: then "on the list" conditions read sp.
	driver int64
}

func (s *Store) compileConditions(ctx context.Context, c Conditions, now time.Time) (string, []any, error) {
	return s.compileAfter(ctx, c, now, 0)
}

// compileAfter is compileConditions for subscribers whose id is above
// after only (materialisation's cursor; 0: everyone): the sets of events
// are cut there too, before any subscriber is looked up.
func (s *Store) compileAfter(ctx context.Context, c Conditions, now time.Time, after int64) (string, []any, error) {
	return s.compileDriven(ctx, c, now, after, 0, 0)
}

// compileDriven is compileAfter evaluated beside a live subscription sp
// of the subscriber on list driver (0: none). The conditions' "on the
// list" tests for that list then read sp instead of looking it up again:
// sound only where the tests are positive (an included segment, never an
// excluded one) and the person has a single such sp, so that "some row
// of the person passes" and "the person passes" are the same.
//
// upto, when not 0, cuts the sets of events above it as after does below.
func (s *Store) compileDriven(ctx context.Context, c Conditions, now time.Time, after, upto, driver int64) (string, []any, error) {
	if err := c.Validate(); err != nil {
		return "", nil, err
	}
	q := &segmentSQL{s: s, ctx: ctx, d: s.sqlDialect(), now: now, after: after, upto: upto, driver: driver}
	sql, err := q.conditions(c)
	return sql, q.args, err
}

func (q *segmentSQL) conditions(c Conditions) (string, error) {
	if len(c.Groups) == 0 {
		return "1 = 1", nil
	}
	parts := make([]string, 0, len(c.Groups))
	for gi, g := range c.Groups {
		cs := make([]string, 0, len(g.Conditions))
		// Conditions read through an index come before attribute tests,
		// which parse each row's JSON: in an AND group the later terms
		// are then evaluated for fewer rows. (The order of terms changes
		// no result.) Their parameters follow the same order.
		order := make([]int, 0, len(g.Conditions))
		for ci, x := range g.Conditions {
			if x.Field != FieldAttribute {
				order = append(order, ci)
			}
		}
		for ci, x := range g.Conditions {
			if x.Field == FieldAttribute {
				order = append(order, ci)
			}
		}
		var attrs []string
		for _, ci := range order {
			x := g.Conditions[ci]
			sql, err := q.condition(x)
			if err != nil {
				var ve *ValidationError
				if errors.As(err, &ve) {
					return "", conditionError(gi+1, ci+1, ve.Fields["conditions"])
				}
				return "", err
			}
			if x.Field == FieldAttribute {
				attrs = append(attrs, "("+sql+")")
			} else {
				cs = append(cs, "("+sql+")")
			}
		}
		// The group's attribute tests read the attributes parsed once
		// (attrScope). They are never NULL (notFalse), so that taking
		// them together changes no result.
		if len(attrs) > 0 {
			cs = append(cs, "("+q.d.attrScope(strings.Join(attrs, joiner(g.Match)))+")")
		}
		parts = append(parts, "("+strings.Join(cs, joiner(g.Match))+")")
	}
	return strings.Join(parts, joiner(c.Match)), nil
}

// requiresLive reports whether a list condition holds only for people
// with a live subscription on its list.
func requiresLive(c Condition) bool {
	return c.Field == FieldList && c.Op == "in" && (c.Status == "" || c.Status == SubConfirmed || c.Status == SubUnconfirmed)
}

// requiredLists returns lists on each of which everyone the conditions
// match has a live subscription: the lists of an all-of group's "on the
// list" conditions, and of an any-of group those all of its members
// require. Materialisation can walk the people of one of them, through
// the lists' index, rather than every subscriber.
func (c Conditions) requiredLists() []int64 {
	if len(c.Groups) == 0 {
		return nil
	}
	group := func(g ConditionGroup) []int64 {
		var out []int64
		for i, x := range g.Conditions {
			var mine []int64
			if requiresLive(x) {
				mine = []int64{x.ListID}
			}
			out = combineRequired(out, mine, g.Match, i == 0)
		}
		return out
	}
	var out []int64
	for i, g := range c.Groups {
		out = combineRequired(out, group(g), c.Match, i == 0)
	}
	return out
}

// combineRequired adds one term's required lists to those of the terms
// before it: all of the terms require each list any of them requires;
// any of them, only the lists every one requires.
func combineRequired(acc, term []int64, match string, first bool) []int64 {
	if first {
		return slices.Clone(term)
	}
	if match != "any" {
		for _, l := range term {
			if !slices.Contains(acc, l) {
				acc = append(acc, l)
			}
		}
		return acc
	}
	return slices.DeleteFunc(acc, func(l int64) bool { return !slices.Contains(term, l) })
}

func joiner(match string) string {
	if match == "any" {
		return " OR "
	}
	return " AND "
}

// arg appends parameters and returns sql unchanged, for inline use.
func (q *segmentSQL) arg(sql string, args ...any) string {
	q.args = append(q.args, args...)
	return sql
}

// attr repeats the attribute's path once per placeholder of expr.
func (q *segmentSQL) attr(expr, key string) string {
	p := q.d.attrPath(key)
	for range strings.Count(expr, "?") {
		q.args = append(q.args, p)
	}
	return expr
}

func (q *segmentSQL) since(days int) time.Time {
	return dbTime(q.now.Add(-time.Duration(days) * 24 * time.Hour))
}

func day(v string) time.Time {
	t, _ := time.Parse("2006-01-02", v)
	return t
}

// notFalse is expr with NULL read as false, so that NOT of it is sound.
func notFalse(expr string) string { return "COALESCE(" + expr + ", FALSE)" }

// liveStatus is a subscription m that is not unsubscribed
// (dialectSQL.liveStatus).
func (q *segmentSQL) liveStatus() string { return q.d.liveStatus("m.status") }

func (q *segmentSQL) condition(c Condition) (string, error) {
	switch c.Field {
	case FieldList:
		var l []int64
		if err := q.s.conn(q.ctx).Raw("SELECT id FROM lists WHERE id = ?", c.ListID).Scan(&l).Error; err != nil {
			return "", err
		}
		if len(l) == 0 {
			return "", invalid(map[string]string{"conditions": fmt.Sprintf("list %d does not exist: choose another", c.ListID)})
		}
		if c.Op == "in" && c.ListID == q.driver && requiresLive(c) {
			// The driver's sp is this subscription, and it is live.
			if c.Status != "" {
				return q.arg("sp.status = ?", c.Status), nil
			}
			return "1 = 1", nil
		}
		in := q.arg("EXISTS (SELECT 1 FROM subscriptions m WHERE m.subscriber_id = s.id AND m.list_id = ?", c.ListID) + " AND "
		if c.Status != "" {
			in += q.arg("m.status = ?)", c.Status)
		} else {
			in += q.liveStatus() + ")"
		}
		if c.Op == "not_in" {
			return "NOT " + in, nil
		}
		return in, nil
	case FieldAttribute:
		return q.attribute(c), nil
	case FieldEmailDomain:
		eq := q.arg(q.d.emailDomain("s.email")+" = ?", c.Value)
		if c.Op == "not_equals" {
			return "NOT (" + eq + ")", nil
		}
		return eq, nil
	case FieldProvider:
		return q.provider(c)
	case FieldSignupDate:
		switch c.Op {
		case "before":
			return q.arg("s.created_at < ?", day(c.Value)), nil
		case "after":
			return q.arg("s.created_at >= ?", day(c.Value).AddDate(0, 0, 1)), nil
		case "between_dates":
			return q.arg("s.created_at >= ? AND s.created_at < ?", day(c.Value), day(c.Value2).AddDate(0, 0, 1)), nil
		default:
			return q.arg("s.created_at >= ?", q.since(c.Days)), nil
		}
	case FieldSignupSource:
		ex := q.arg("EXISTS (SELECT 1 FROM consents c WHERE c.subscriber_id = s.id AND c.action IN ('granted', 'imported') AND c.source = ?)", c.Value)
		if c.Op == "not_equals" {
			return "NOT " + ex, nil
		}
		return ex, nil
	case FieldLawfulBasis:
		if c.Op == "is" {
			return q.arg("EXISTS (SELECT 1 FROM consents c WHERE c.subscriber_id = s.id AND c.action IN ('granted', 'imported') AND c.lawful_basis = ?)", c.Value), nil
		}
		onList := func() string {
			if c.ListID > 0 {
				return q.arg(" AND m.list_id = ?", c.ListID)
			}
			return ""
		}
		lacks := "EXISTS (SELECT 1 FROM subscriptions m WHERE m.subscriber_id = s.id AND " + q.liveStatus() + onList() + " AND NOT " + basisCond + ")"
		if c.Op == "lacks" {
			return lacks, nil
		}
		live := "EXISTS (SELECT 1 FROM subscriptions m WHERE m.subscriber_id = s.id AND " + q.liveStatus() + onList() + ")"
		// Both placeholders (when on a list) take the same list id.
		return live + " AND NOT " + lacks, nil
	case FieldOpened, FieldClicked:
		kind := "open"
		if c.Field == FieldClicked {
			kind = "click"
		}
		// People's events of the kind (machine opens and scanner clicks
		// left out), through events_engagement_idx, or events_people_idx
		// when cut to a batch's ids. As an IN over s.id the planner may
		// start from them when they are few; driven, the IN is over sp's
		// subscriber, so that it can start from them and look each one's
		// subscription to the driver up, rather than walk the list.
		who := "s.id"
		if q.driver != 0 {
			who = "sp.subscriber_id"
		}
		ev := who + " IN (SELECT e.subscriber_id FROM events e WHERE e.kind = '" + kind + "' AND e.machine = FALSE"
		if q.after > 0 {
			ev = q.arg(ev+" AND e.subscriber_id > ?", q.after)
		}
		if q.upto > 0 {
			ev = q.arg(ev+" AND e.subscriber_id <= ?", q.upto)
		}
		switch c.Op {
		case "in_last_days":
			return q.arg(ev+" AND e.created_at >= ?)", q.since(c.Days)), nil
		case "not_in_last_days":
			return q.arg("NOT "+ev+" AND e.created_at >= ?)", q.since(c.Days)), nil
		case "ever":
			return ev + ")", nil
		default:
			return "NOT " + ev + ")", nil
		}
	case FieldReceived:
		n := "(SELECT COUNT(*) FROM deliveries d WHERE d.subscriber_id = s.id AND d.campaign_id IS NOT NULL AND d.status = 'sent')"
		if c.Op == "at_least" {
			return q.arg(n+" >= ?", c.Count), nil
		}
		return q.arg(n+" < ?", c.Count), nil
	case FieldBounced, FieldComplained:
		ex := "EXISTS (SELECT 1 FROM bounces b WHERE b.subscriber_id = s.id AND b.kind "
		switch {
		case c.Field == FieldComplained:
			ex += "= 'complaint'"
		case c.Value != "":
			ex = q.arg(ex+"= ?", c.Value)
		default:
			ex += "IN ('hard', 'soft')"
		}
		switch c.Op {
		case "in_last_days":
			return q.arg(ex+" AND b.created_at >= ?)", q.since(c.Days)), nil
		case "ever":
			return ex + ")", nil
		default:
			return "NOT " + ex + ")", nil
		}
	}
	return "", fmt.Errorf("models: segment field %q", c.Field)
}

func (q *segmentSQL) attribute(c Condition) string {
	col := q.d.attrColumn()
	text := func() string { return q.attr(q.d.attrValueText(col), c.Key) }
	num := func() string { return q.attr(q.d.attrNumber(col), c.Key) }
	date := func() string {
		t := q.d.attrValueText(col)
		// The date part of a text value starting with YYYY-MM-DD.
		return q.attr("CASE WHEN "+q.d.isDate(t)+" THEN substr("+t+", 1, 10) END", c.Key)
	}
	f := func(v string) float64 { x, _ := strconv.ParseFloat(v, 64); return x }
	switch c.Op {
	case "equals":
		return q.arg(notFalse("lower("+text()+") = ?"), strings.ToLower(c.Value))
	case "not_equals":
		return q.arg("NOT "+notFalse("lower("+text()+") = ?"), strings.ToLower(c.Value))
	case "contains":
		return q.arg(notFalse("lower("+text()+`) LIKE ? ESCAPE '\'`), "%"+likeEscaper.Replace(strings.ToLower(c.Value))+"%")
	case "starts_with":
		return q.arg(notFalse("lower("+text()+`) LIKE ? ESCAPE '\'`), likePrefix(strings.ToLower(c.Value)))
	case "greater_than":
		return q.arg(notFalse(num()+" > "+q.d.numParam()), f(c.Value))
	case "less_than":
		return q.arg(notFalse(num()+" < "+q.d.numParam()), f(c.Value))
	case "between":
		return q.arg(notFalse(num()+" BETWEEN "+q.d.numParam()+" AND "+q.d.numParam()), f(c.Value), f(c.Value2))
	case "before":
		return q.arg(notFalse(date()+" < ?"), c.Value)
	case "after":
		return q.arg(notFalse(date()+" > ?"), c.Value)
	case "between_dates":
		return q.arg(notFalse(date()+" BETWEEN ? AND ?"), c.Value, c.Value2)
	case "is_set":
		return notFalse(text() + " <> ''")
	default: // not_set
		return "NOT " + notFalse(text()+" <> ''")
	}
}

// provider: a recipient domain a rule lists, or else an MX host of a past
// delivery to the subscriber that ends with one of the rule's suffixes;
// "other" is neither for any rule. (The sender matches the same way:
// Providers.Of.)
func (q *segmentSQL) provider(c Condition) (string, error) {
	if q.rules == nil {
		rules, err := q.s.DomainRules(q.ctx)
		if err != nil {
			return "", err
		}
		q.rules = rules
	}
	var all, allMX, doms, mx []string
	found := c.Value == ProviderOther
	for i := range q.rules {
		r := &q.rules[i]
		if r.IsDefault {
			continue
		}
		all, allMX = append(all, r.DomainList()...), append(allMX, r.MXSuffixList()...)
		if strings.EqualFold(r.Name, c.Value) {
			found = true
			doms, mx = append(doms, r.DomainList()...), append(mx, r.MXSuffixList()...)
		}
	}
	if !found {
		names := []string{}
		for _, r := range q.rules {
			if !r.IsDefault {
				names = append(names, r.Name)
			}
		}
		names = append(names, ProviderOther)
		return "", invalid(map[string]string{"conditions": fmt.Sprintf("provider %q is unknown; use one of %s", c.Value, strings.Join(names, ", "))})
	}
	dom := q.d.emailDomain("s.email")
	mxMatch := func(suffixes []string) string {
		ors := make([]string, 0, len(suffixes))
		for _, s := range suffixes {
			s = strings.TrimPrefix(strings.ToLower(s), ".")
			ors = append(ors, q.arg(`lower(d.mx_host) = ? OR lower(d.mx_host) LIKE ? ESCAPE '\'`, s, "%."+likeEscaper.Replace(s)))
		}
		return "EXISTS (SELECT 1 FROM deliveries d WHERE d.subscriber_id = s.id AND (" + strings.Join(ors, " OR ") + "))"
	}
	notListed := func() string {
		if len(all) == 0 {
			return "1 = 1"
		}
		return q.arg(dom+" NOT IN ?", all)
	}
	var match string
	if c.Value == ProviderOther {
		match = notListed()
		if len(allMX) > 0 {
			match += " AND NOT " + mxMatch(allMX)
		}
	} else {
		var ors []string
		if len(doms) > 0 {
			ors = append(ors, q.arg(dom+" IN ?", doms))
		}
		if len(mx) > 0 {
			ors = append(ors, "("+notListed()+" AND "+mxMatch(mx)+")")
		}
		if len(ors) == 0 {
			ors = append(ors, "1 = 0")
		}
		match = strings.Join(ors, " OR ")
	}
	if c.Op == "not_equals" {
		return "NOT (" + match + ")", nil
	}
	return match, nil
}

// ValidateSegment checks a segment's name and conditions, compiling them
// against the store (lists and providers must exist).
func (s *Store) ValidateSegment(ctx context.Context, seg *Segment) error {
	seg.Name = strings.TrimSpace(seg.Name)
	errs := map[string]string{}
	if seg.Name == "" {
		errs["name"] = "Give the segment a name."
	} else if utf8.RuneCountInString(seg.Name) > MaxNameLength {
		errs["name"] = fmt.Sprintf("Keep the name under %d characters.", MaxNameLength)
	}
	// Validate first on the segment's own conditions: it fills in the
	// default matches, which are stored and answered as "all", not "".
	if seg.Conditions.Count() == 0 {
		errs["conditions"] = "Add at least one condition."
	} else if err := seg.Conditions.Validate(); err != nil {
		var ve *ValidationError
		if !errors.As(err, &ve) {
			return err
		}
		errs["conditions"] = ve.Fields["conditions"]
	} else if _, _, err := s.compileConditions(ctx, seg.Conditions, now()); err != nil {
		var ve *ValidationError
		if !errors.As(err, &ve) {
			return err
		}
		errs["conditions"] = ve.Fields["conditions"]
	}
	if errs["name"] == "" {
		var n int64
		if err := s.conn(ctx).Raw("SELECT COUNT(*) FROM segments WHERE lower(name) = lower(?) AND id <> ?", seg.Name, seg.ID).Scan(&n).Error; err != nil {
			return err
		}
		if n > 0 {
			errs["name"] = "Another segment has this name: choose another."
		}
	}
	return invalid(errs)
}

// CreateSegment validates and stores a segment.
func (s *Store) CreateSegment(ctx context.Context, seg *Segment) error {
	if err := s.ValidateSegment(ctx, seg); err != nil {
		return fmt.Errorf("models: create segment: %w", err)
	}
	seg.ID, seg.CreatedAt, seg.UpdatedAt = 0, dbNow(), dbNow()
	if err := s.tx(ctx, func(tx *gorm.DB) error { return tx.Create(seg).Error }); err != nil {
		return fmt.Errorf("models: create segment: %w", err)
	}
	return nil
}

// UpdateSegment validates and saves a segment's name and conditions.
func (s *Store) UpdateSegment(ctx context.Context, seg *Segment) error {
	if _, err := s.Segment(ctx, seg.ID); err != nil {
		return err
	}
	if err := s.ValidateSegment(ctx, seg); err != nil {
		return fmt.Errorf("models: update segment %d: %w", seg.ID, err)
	}
	seg.UpdatedAt = dbNow()
	// The column as the serializer writes it: a map given to Updates
	// skips the field's serializer.
	conds, err := json.Marshal(seg.Conditions)
	if err != nil {
		return fmt.Errorf("models: update segment %d: %w", seg.ID, err)
	}
	err = s.tx(ctx, func(tx *gorm.DB) error {
		return tx.Exec("UPDATE segments SET name = ?, conditions = ?, updated_at = ? WHERE id = ?",
			seg.Name, string(conds), seg.UpdatedAt, seg.ID).Error
	})
	if err != nil {
		return fmt.Errorf("models: update segment %d: %w", seg.ID, err)
	}
	return nil
}

// SegmentInUseError is returned when a segment to delete is the audience
// or an exclusion of a campaign not yet finished.
type SegmentInUseError struct {
	Campaigns   []string
	Automations []string // whose trigger or a branch of the current version reads it
}

func (e *SegmentInUseError) Error() string {
	var by []string
	if len(e.Campaigns) > 0 {
		by = append(by, "the campaign(s) "+strings.Join(e.Campaigns, ", "))
	}
	if len(e.Automations) > 0 {
		by = append(by, "the automation(s) "+strings.Join(e.Automations, ", "))
	}
	return "the segment is used by " + strings.Join(by, " and ") + ": remove it from them first"
}

// Unwrap lets errors.Is(err, ErrConflict) hold.
func (e *SegmentInUseError) Unwrap() error { return ErrConflict }

// DeleteSegment deletes a segment that no unfinished campaign uses;
// finished campaigns lose the reference.
func (s *Store) DeleteSegment(ctx context.Context, id int64) error {
	err := s.tx(ctx, func(tx *gorm.DB) error {
		var names []string
		if err := tx.Raw(`SELECT c.name FROM campaigns c WHERE c.status IN ('draft', 'scheduled', 'running', 'paused')
			AND (EXISTS (SELECT 1 FROM campaign_segments x WHERE x.campaign_id = c.id AND x.segment_id = ?)
			  OR EXISTS (SELECT 1 FROM campaign_exclusions x WHERE x.campaign_id = c.id AND x.segment_id = ?)) ORDER BY c.id`, id, id).Scan(&names).Error; err != nil {
			return err
		}
		var autos []string
		if err := tx.Raw(`SELECT a.name FROM automations a WHERE a.trigger_segment_id = ?
			OR EXISTS (SELECT 1 FROM automation_steps st WHERE st.automation_id = a.id AND st.version = a.version AND st.segment_id = ?)
			ORDER BY a.id`, id, id).Scan(&autos).Error; err != nil {
			return err
		}
		if len(names) > 0 || len(autos) > 0 {
			return &SegmentInUseError{Campaigns: names, Automations: autos}
		}
		for _, q := range []string{"DELETE FROM campaign_segments WHERE segment_id = ?", "DELETE FROM campaign_exclusions WHERE segment_id = ?"} {
			if err := tx.Exec(q, id).Error; err != nil {
				return err
			}
		}
		res := tx.Exec("DELETE FROM segments WHERE id = ?", id)
		if res.Error == nil && res.RowsAffected == 0 {
			return ErrNotFound
		}
		return res.Error
	})
	if err != nil {
		return fmt.Errorf("models: delete segment %d: %w", id, err)
	}
	return nil
}

// Segment returns one segment.
func (s *Store) Segment(ctx context.Context, id int64) (*Segment, error) {
	var seg Segment
	if err := s.conn(ctx).First(&seg, id).Error; err != nil {
		return nil, fmt.Errorf("models: segment %d: %w", id, notFound(err))
	}
	return &seg, nil
}

// Segments returns every segment by name.
func (s *Store) Segments(ctx context.Context) ([]Segment, error) {
	var out []Segment
	if err := s.conn(ctx).Order("lower(name), id").Find(&out).Error; err != nil {
		return nil, fmt.Errorf("models: segments: %w", err)
	}
	return out, nil
}

// CountSegment counts the active subscribers the conditions match now.
func (s *Store) CountSegment(ctx context.Context, c Conditions) (int64, error) {
	where, args, err := s.compileConditions(ctx, c, now())
	if err != nil {
		return 0, fmt.Errorf("models: count segment: %w", err)
	}
	var n int64
	if err := s.conn(ctx).Raw("SELECT COUNT(*) FROM subscribers s WHERE s.status = 'active' AND "+where, args...).Scan(&n).Error; err != nil {
		return 0, fmt.Errorf("models: count segment: %w", err)
	}
	return n, nil
}

// PreviewSegment returns the first limit active subscribers (by id) the
// conditions match.
func (s *Store) PreviewSegment(ctx context.Context, c Conditions, limit int) ([]Subscriber, error) {
	where, args, err := s.compileConditions(ctx, c, now())
	if err != nil {
		return nil, fmt.Errorf("models: preview segment: %w", err)
	}
	var out []Subscriber
	if err := s.conn(ctx).Raw("SELECT s.* FROM subscribers s WHERE s.status = 'active' AND "+where+" ORDER BY s.id LIMIT ?",
		append(args, limit)...).Scan(&out).Error; err != nil {
		return nil, fmt.Errorf("models: preview segment: %w", err)
	}
	return out, nil
}
