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
