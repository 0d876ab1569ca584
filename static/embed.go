// Package static embeds Herald's CSS, vendored htmx and Pico, so the binary
// needs nothing from outside at run time.
package static

import "embed"

// FS holds app.css, app.js, the favicon and vendor/.
//
//go:embed app.css app.js favicon.svg vendor
var FS embed.FS
