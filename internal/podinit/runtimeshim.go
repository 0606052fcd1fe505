package podinit

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// A sandboxed runtime (gVisor's runsc) reports the pid of the whole pod
// sandbox for every container, and that process is no child of the
// container's conmon: conmon, which waits for its container's pid as a
// subreaper, gives up at once (exit file "-1") and with it the log and
// attach. So conmon runs such a runtime through this shim (its -r):
//
//   - `create`: the shim runs the runtime's create with conmon's stdio,
//     then forks a waiter that keeps that stdio open and replaces the pid
//     file's pid by its own. The waiter is conmon's (a subreaper's)
//     descendant, so conmon follows it as the container's process: it
//     lives as long as the container and exits with the container's own
//     status, which `runsc wait` reports (128+signal for a signalled one).
//     conmon then writes the exit file as for any container, even while
//     floe is down.
//   - every other command is the runtime's own (exec replaces the shim).
//
// runsc 20221219 takes a joined container's stdio from `runsc start`, not
// from create; floe passes the waiter's (/proc/PID/fd/0-2, the pipes
// conmon reads) to it.
//
// conmon's invocation: -r SHIM --runtime-arg RuntimeShimArg --runtime-arg
// RUNTIME [--runtime-arg FLAG]... and conmon appends the command.

// RuntimeShimArg and runtimeWaitArg select the shim and its waiter.
const (
	RuntimeShimArg = "__floe-runtime-shim"
	runtimeWaitArg = "__floe-runtime-wait"
)

// waitStartPoll is how often the waiter looks whether its container has
// been started (runsc cannot wait for a container that is only created).
const waitStartPoll = 50 * time.Millisecond

// stateTimeout bounds one `state` of the runtime.
const stateTimeout = 30 * time.Second

// runtimeShimMain is the shim; args are what follows RuntimeShimArg.
func runtimeShimMain(args []string) {
	if len(args) < 2 {
		fmt.Fprintln(os.Stderr, "runtime shim: no runtime or command")
		os.Exit(2)
	}
	runtime, rest := args[0], args[1:]
	global, pidFile, id, isCreate, err := parseShimArgs(rest)
	if !isCreate {
		// Not a create: the runtime itself, in this process. An exec also
		// writes the process's pid inside the sandbox (the pid file's is
		// the host's `runsc exec`), so floe can kill a timed-out exec.
		rest = withInternalPidFile(rest)
		err := syscall.Exec(runtime, append([]string{runtime}, rest...), os.Environ())
		fmt.Fprintf(os.Stderr, "runtime shim: exec %s: %v\n", runtime, err)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "runtime shim: %v\n", err)
		os.Exit(2)
	}
	create := exec.Command(runtime, rest...)
	create.Stdin, create.Stdout, create.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := create.Run(); err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			os.Exit(ee.ExitCode())
		}
		fmt.Fprintf(os.Stderr, "runtime shim: %s create: %v\n", runtime, err)
		os.Exit(2)
	}
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintf(os.Stderr, "runtime shim: %v\n", err)
		os.Exit(2)
	}
	// The waiter's own messages go to a file beside the pid file (the
	// bundle), never to the container's stdio it holds.
	diag, err := os.OpenFile(filepath.Join(filepath.Dir(pidFile), "runtime-wait.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		fmt.Fprintf(os.Stderr, "runtime shim: waiter log: %v\n", err)
		os.Exit(2)
	}
	waiter := exec.Command(self, append(append([]string{runtimeWaitArg, runtime}, global...), id)...)
	waiter.Stdin, waiter.Stdout, waiter.Stderr = os.Stdin, os.Stdout, os.Stderr
	waiter.ExtraFiles = []*os.File{diag}
	if err := waiter.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "runtime shim: start waiter: %v\n", err)
		os.Exit(2)
	}
	// conmon reads the pid file once this process has exited.
	tmp := pidFile + ".shim"
	if err := os.WriteFile(tmp, []byte(strconv.Itoa(waiter.Process.Pid)), 0o600); err == nil {
		err = os.Rename(tmp, pidFile)
	}
	if err != nil {
		_ = waiter.Process.Kill()
		fmt.Fprintf(os.Stderr, "runtime shim: pid file: %v\n", err)
		os.Exit(2)
	}
	os.Exit(0)
}

// parseShimArgs reads a runtime command line (global flags, each one
// argument, then the command and its arguments): for a create, the global
// flags, the pid file and the container id.
func parseShimArgs(args []string) (global []string, pidFile, id string, isCreate bool, err error) {
	cmdAt := slices.IndexFunc(args, func(a string) bool { return !strings.HasPrefix(a, "-") })
	if cmdAt < 0 || args[cmdAt] != "create" {
		return nil, "", "", false, nil
	}
	global, cmdArgs := args[:cmdAt], args[cmdAt+1:]
	for i := 0; i < len(cmdArgs); i++ {
		switch a := cmdArgs[i]; {
		case a == "--pid-file" && i+1 < len(cmdArgs):
			pidFile = cmdArgs[i+1]
			i++
		case strings.HasPrefix(a, "--pid-file="):
			pidFile = strings.TrimPrefix(a, "--pid-file=")
		}
	}
	if len(cmdArgs) > 0 {
		id = cmdArgs[len(cmdArgs)-1]
	}
	if pidFile == "" || id == "" || strings.HasPrefix(id, "-") || id == pidFile {
		return nil, "", "", true, fmt.Errorf("create without --pid-file or container id: %q", cmdArgs)
	}
	return global, pidFile, id, true, nil
}

// InternalPidFileSuffix names, beside an exec's --pid-file, the file the
// shim has runsc write the exec'd process's pid in the sandbox's root PID
// namespace to (runsc kill --pid takes it).
const InternalPidFileSuffix = ".internal"

// withInternalPidFile adds --internal-pid-file to an exec command line
// that has a --pid-file; other command lines are returned as they are.
func withInternalPidFile(args []string) []string {
	cmdAt := slices.IndexFunc(args, func(a string) bool { return !strings.HasPrefix(a, "-") })
	if cmdAt < 0 || args[cmdAt] != "exec" {
		return args
	}
	pidFile := ""
	for i := cmdAt + 1; i < len(args); i++ {
		switch a := args[i]; {
		case a == "--pid-file" && i+1 < len(args):
			pidFile = args[i+1]
		case strings.HasPrefix(a, "--pid-file="):
			pidFile = strings.TrimPrefix(a, "--pid-file=")
		}
	}
	if pidFile == "" {
		return args
	}
	out := slices.Clone(args[:cmdAt+1])
	out = append(out, "--internal-pid-file="+pidFile+InternalPidFileSuffix)
	return append(out, args[cmdAt+1:]...)
}

// runtimeWaitMain is the waiter: args are RUNTIME [FLAG]... ID. It exits
// with the container's status; fd 3 takes its own diagnostics.
func runtimeWaitMain(args []string) {
	diag := os.NewFile(3, "runtime-wait.log")
	fail := func(format string, a ...any) {
		fmt.Fprintf(diag, time.Now().UTC().Format(time.RFC3339)+" "+format+"\n", a...)
		os.Exit(255)
	}
	if len(args) < 2 {
		fail("runtime wait: no runtime or id")
	}
	runtime, global, id := args[0], args[1:len(args)-1], args[len(args)-1]
	// state is bounded; wait lasts as long as the container, and conmon,
	// this process's owner, outlives it.
	run := func(timeout time.Duration, cmd ...string) ([]byte, error) {
		ctx, cancel := context.Background(), context.CancelFunc(func() {})
		if timeout > 0 {
			ctx, cancel = context.WithTimeout(ctx, timeout)
		}
		defer cancel()
		c := exec.CommandContext(ctx, runtime, append(append([]string{}, global...), cmd...)...)
		c.Stderr = diag
		return c.Output()
	}
	// Only a started container can be waited for.
	for {
		out, err := run(stateTimeout, "state", id)
		if err != nil {
			fail("runtime wait: %s state %s: %v", runtime, id, err)
		}
		var st struct {
			Status string `json:"status"`
		}
		if err := json.Unmarshal(out, &st); err != nil {
			fail("runtime wait: %s state %s: %v: %q", runtime, id, err, out)
		}
		if st.Status != "created" {
			break
		}
		time.Sleep(waitStartPoll)
	}
	out, err := run(0, "wait", id)
	if err != nil {
		fail("runtime wait: %s wait %s: %v", runtime, id, err)
	}
	var res struct {
		ExitStatus *int `json:"exitStatus"`
	}
	if err := json.Unmarshal(out, &res); err != nil || res.ExitStatus == nil {
		fail("runtime wait: %s wait %s: unreadable %q: %v", runtime, id, out, err)
	}
	code := *res.ExitStatus
	if code < 0 || code > 255 {
		code = 255
	}
	os.Exit(code)
}
