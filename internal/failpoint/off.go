//go:build !floe_failpoints

package failpoint

// Enabled reports whether this binary was built with failpoints.
const Enabled = false

// Hit does nothing: this build has no failpoints. Being empty, it is
// inlined away at every call site, step name included.
func Hit(string) {}
