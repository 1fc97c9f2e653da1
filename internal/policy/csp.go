package policy

import "strings"

// FrameAncestors returns the CSP directive allowing exactly these origins,
// or frame-ancestors 'none' for an empty list.
func FrameAncestors(origins []string) string {
	if len(origins) == 0 {
		return "frame-ancestors 'none'"
	}
	return "frame-ancestors " + strings.Join(origins, " ")
}
