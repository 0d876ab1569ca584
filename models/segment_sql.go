package models

// SQLite: json_type tells booleans (which json_extract gives as 1 and 0)
// and numbers from strings.

func (sqliteSQL) attrPath(key string) any { return `$."` + key + `"` }

func (sqliteSQL) attrValueText(col string) string {
	return "(CASE json_type(" + col + ", ?) WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' WHEN 'null' THEN NULL ELSE CAST(json_extract(" + col + ", ?) AS TEXT) END)"
}

func (sqliteSQL) attrNumber(col string) string {
	v := "json_extract(" + col + ", ?)"
	// GLOB has no repetition: a leading digit (after an optional minus),
	// then digits and dots only, at most one dot, not last.
	numeric := "((" + v + " GLOB '[0-9]*' OR " + v + " GLOB '-[0-9]*') AND substr(" + v + ", 2) NOT GLOB '*[^0-9.]*' AND " +
		v + " NOT GLOB '*.*.*' AND " + v + " NOT GLOB '*.')"
	return "(CASE json_type(" + col + ", ?) WHEN 'integer' THEN " + v + " WHEN 'real' THEN " + v +
		" WHEN 'text' THEN (CASE WHEN " + numeric + " THEN CAST(" + v + " AS REAL) END) END)"
}

func (sqliteSQL) isDate(expr string) string {
	return expr + " GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]*'"
}

func (sqliteSQL) numParam() string { return "?" }

// SQLite keeps the attributes parsed between the JSON functions of a
// statement (its JSON cache), so each test reads the column itself.
func (sqliteSQL) attrColumn() string            { return "s.attributes" }
func (sqliteSQL) attrScope(conds string) string { return conds }

// liveStatus: the concatenation keeps SQLite on the primary key, one
// probe, rather than two probes of subscriptions_list_idx, one per status.
func (sqliteSQL) liveStatus(col string) string { return col + " || '' IN ('unconfirmed', 'confirmed')" }

// PostgreSQL: the column is text, read as jsonb.

func (postgresSQL) attrPath(key string) any { return key }

func (postgresSQL) attrValueText(col string) string {
	return "(CAST(" + col + " AS jsonb) ->> CAST(? AS text))"
}

func (postgresSQL) attrNumber(col string) string {
	j := "CAST(" + col + " AS jsonb)"
	v := "(" + j + " ->> CAST(? AS text))"
	return "(CASE jsonb_typeof(" + j + " -> CAST(? AS text)) WHEN 'number' THEN CAST(" + v + " AS numeric)" +
		" WHEN 'string' THEN (CASE WHEN " + v + ` ~ '^-{0,1}[0-9]+(\.[0-9]+){0,1}$' THEN CAST(` + v + " AS numeric) END) END)"
}

func (postgresSQL) isDate(expr string) string {
	return expr + " ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}'"
}

func (postgresSQL) numParam() string { return "CAST(? AS numeric)" }

// PostgreSQL parses the text column again for every cast to jsonb: a
// number test alone cast it three times, and parsing was most of the
// cost of a segment with attribute conditions. attrScope casts it once
// per subscriber, in a one-row subquery (OFFSET 0 keeps the planner from
// folding the cast back into every test), and attrColumn reads that.
func (postgresSQL) attrColumn() string { return "sa.a" }
func (postgresSQL) attrScope(conds string) string {
	return "EXISTS (SELECT 1 FROM (SELECT CAST(s.attributes AS jsonb) AS a OFFSET 0) sa WHERE " + conds + ")"
}

// liveStatus: as written, so that the planner estimates the members of a
// list (SQLite's concatenation made it expect a hundredth of them and
// hash the whole list for every batch of a materialisation).
func (postgresSQL) liveStatus(col string) string { return col + " IN ('unconfirmed', 'confirmed')" }
