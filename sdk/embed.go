// Package sdk ships the host-page SDK's source, sdk.js and sdk.d.ts, in the
// binary. This folder is also the npm package @embedgate/sdk: the files
// the gateway serves at {prefix}/sdk.js and {prefix}/sdk.d.ts are these,
// with only sdk.js's PREFIX line filled in (internal/bridge does that), so
// the two cannot drift.
package sdk

import _ "embed" // the //go:embed strings below

// PrefixLine is the line of sdk.js that the gateway fills with its prefix.
const PrefixLine = `const PREFIX = "/.embed";`

var (
	//go:embed sdk.js
	script string
	//go:embed sdk.d.ts
	types string
)

// Script is sdk.js as the npm package ships it.
func Script() string { return script }

// Types is sdk.d.ts.
func Types() string { return types }
