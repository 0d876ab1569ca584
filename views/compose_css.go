package views

import _ "embed"

// composeStyles is the stylesheet of the templates, campaigns and
// readiness pages, inlined into them (static/ embeds only app.css and
// vendor/).
//
//go:embed compose.css
var composeStyles string
