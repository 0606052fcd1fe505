// Package failpoint lets crash tests kill the daemon at named steps of its
// create and remove paths, to prove that a restart undoes whatever a crash
// at that step left behind.
//
// Failpoints exist only in a test build of floe, made with the build tag
// floe_failpoints (go build -tags floe_failpoints ./cmd/floe; test/harness
// does so for tests that arm one). Such a binary started with
// FLOE_TEST_CRASH_AT=<step name> sends itself SIGKILL the first time that
// step is reached, so nothing runs after it (no deferred cleanup, no
// undo), exactly as when the kernel or an operator kills floe.
//
// Without the tag (make build, the shipped binary) Hit is an empty
// function the compiler inlines away and the variable is never read: a
// FLOE_TEST_CRASH_AT left in a unit file cannot make a production daemon
// kill itself.
package failpoint

// EnvVar names the step to crash at. Only the floe_failpoints build reads
// it; an unused constant leaves no trace in the binary.
const EnvVar = "FLOE_TEST_CRASH_AT"

// Tag is the build tag that compiles failpoints in.
const Tag = "floe_failpoints"
