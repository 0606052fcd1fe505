package monitor

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// ErrExecTimeout is returned (wrapped) when an ExecSync command outlives
// its timeout; conmon has killed it by then.
var ErrExecTimeout = errors.New("exec timed out")

// ErrExecOutputTooLarge is returned (wrapped) when an ExecSync command
// writes more than ExecOutputMax bytes; the result then holds exactly the
// first ExecOutputMax bytes.
var ErrExecOutputTooLarge = errors.New("exec output too large")

// ExecResult is the outcome of ExecSync.
type ExecResult struct {
	Stdout, Stderr []byte
	ExitCode       int
}

// ExecOutputMax bounds what an ExecSync may return (stdout and stderr
// together), as CRI-O does: probes are meant to be short. More is an
// error, never a silently different output.
const ExecOutputMax = 16 << 20

// execLogFileMax bounds the exec's CRI log on disk. conmon's own
// --log-size-max is not used: it empties the file when the limit is hit,
// which would return an arbitrary tail. The log carries ~40 bytes of
// framing per line, so this allows ExecOutputMax of even one-byte lines;
// an exec writing past it is killed.
const execLogFileMax = 64 * ExecOutputMax

// execDir makes the scratch dir of one exec (its process.json, pid file and
// log) inside the container's bundle: an exec cut short by a daemon crash
// (its deferred removal never runs) leaves it where the container's removal
// deletes it, instead of in the host's temp dir for good.
func execDir(c *Container) (string, error) {
	return os.MkdirTemp(c.Bundle, "exec-")
}

// ExecSync runs process in the running container through a conmon in exec
// mode (conmon -e --exec-process-spec --sync -T), waits for it and returns
// its output and exit code. A timeout of 0 means none; on timeout conmon
// kills the process and the error wraps ErrExecTimeout.
func (m *Monitor) ExecSync(ctx context.Context, c *Container, process *specs.Process, timeout time.Duration) (*ExecResult, error) {
	dir, err := execDir(c)
	if err != nil {
		return nil, fmt.Errorf("container %s: exec: %w", c.ID, err)
	}
	defer os.RemoveAll(dir)
	specPath, err := writeProcessSpec(dir, process)
	if err != nil {
		return nil, fmt.Errorf("container %s: exec: %w", c.ID, err)
	}
	logPath := filepath.Join(dir, "exec.log")
	args, limit := m.execConmonArgs(c, dir, specPath, logPath, timeout)
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	started := time.Now()
	cmd, r, err := m.startConmon(ctx, args, dir, filepath.Join(dir, "conmon.stderr"))
	if err != nil {
		return nil, fmt.Errorf("container %s: exec: %w", c.ID, err)
	}
	defer r.Close()
	defer cmd.Wait()
	deadline, _ := ctx.Deadline()
	dec := json.NewDecoder(r)
	first, err := readSync(dec, r, deadline)
	if err == nil && first.Data <= 0 {
		err = fmt.Errorf("runc exec: %s", strings.TrimSpace(first.Message))
	}
	if err != nil {
		return nil, fmt.Errorf("container %s: exec: %w%s", c.ID, err, stderrTail(filepath.Join(dir, "conmon.stderr")))
	}
	// Hold the exec'd process by pidfd so a timeout can kill exactly it
	// (never a later process that reused the pid).
	proc, perr := openProcess(first.Data)
	if perr != nil {
		m.log.Debug("exec: open pidfd", "container", c.ID, "pid", first.Data, "err", perr)
	}
	defer proc.close()
	stopWatch, overflowed := watchLogSize(logPath, execLogFileMax, proc)
	result, err := readSync(dec, r, deadline)
	stopWatch()
	if err != nil && m.cfg.Sandboxed {
		// conmon ends a timed-out `runsc exec` by killing that host
		// process and closes the pipe without an answer; the command
		// itself runs on inside the sandbox.
		m.killSandboxedExec(ctx, c, filepath.Join(dir, "pid"))
		if timeout > 0 && time.Since(started) >= timeout {
			return nil, fmt.Errorf("container %s: exec %q after %v: %w", c.ID, process.Args, timeout, ErrExecTimeout)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("container %s: exec: waiting for the exit code: %w", c.ID, err)
	}
	// conmon has closed the log by the time it reports the exit code.
	out := &ExecResult{ExitCode: result.Data}
	truncated := overflowed()
	cut, err := readExecOutput(logPath, out)
	if err != nil {
		return nil, fmt.Errorf("container %s: exec: read output: %w", c.ID, err)
	}
	if truncated || cut {
		return out, fmt.Errorf("container %s: exec %q wrote more than %d bytes of output: %w", c.ID, process.Args, ExecOutputMax, ErrExecOutputTooLarge)
	}
	if result.Data < 0 {
		if strings.Contains(result.Message, "timed out") {
			// conmon reports the timeout but does not always kill the
			// process (a plain `sleep` survived it). The caller is told the
			// command timed out, so it must be gone when we return: kill it
			// and wait until it has been reaped.
			if m.cfg.Sandboxed {
				// The host process is `runsc exec`; the command runs in
				// the sandbox, where only the runtime reaches it.
				m.killSandboxedExec(ctx, c, filepath.Join(dir, "pid"))
			}
			if err := proc.killAndWait(5 * time.Second); err != nil {
				m.log.Warn("exec timed out and its process could not be removed", "container", c.ID, "pid", first.Data, "err", err)
			}
			return out, fmt.Errorf("container %s: exec %q after %v: %w", c.ID, process.Args, timeout, ErrExecTimeout)
		}
		return out, fmt.Errorf("container %s: exec: %s", c.ID, result.Message)
	}
	return out, nil
}

// writeProcessSpec writes the exec'd process for conmon's
// --exec-process-spec into dir and returns its path.
func writeProcessSpec(dir string, process *specs.Process) (string, error) {
	spec, err := json.Marshal(process)
	if err != nil {
		return "", err
	}
	specPath := filepath.Join(dir, "process.json")
	if err := os.WriteFile(specPath, spec, 0o600); err != nil {
		return "", err
	}
	return specPath, nil
}

// execConmonArgs are the arguments of an exec conmon (a fresh exec id, its
// files in dir) and how long floe waits for it.
func (m *Monitor) execConmonArgs(c *Container, dir, specPath, logPath string, timeout time.Duration) ([]string, time.Duration) {
	var idb [8]byte
	rand.Read(idb[:])
	execID := hex.EncodeToString(idb[:])
	// No -b and no --exit-dir: they belong to the container's own conmon
	// (an exec conmon would take over its attach socket and ctl FIFO, and
	// write a false exit file for the container).
	args := m.conmonArgs(c.ID, execID)
	args = append(args, "-p", filepath.Join(dir, "pid"), "-l", "k8s-file:"+logPath,
		"-e", "--exec-process-spec", specPath, "--sync")
	// Our own bound: conmon's -T plus room for runc exec to start and
	// conmon to report.
	limit := m.cfg.CommandTimeout
	if timeout > 0 {
		secs := int((timeout + time.Second - 1) / time.Second)
		args = append(args, "-T", strconv.Itoa(secs))
		limit += time.Duration(secs) * time.Second
	} else {
		limit = 24 * time.Hour
	}
	return args, limit
}

// readExecOutput reads the exec's stdout and stderr from its log into out
// (nothing when there is no log), at most ExecOutputMax bytes; cut says
// whether there was more.
func readExecOutput(logPath string, out *ExecResult) (cut bool, err error) {
	f, err := os.Open(logPath)
	if err != nil {
		return false, nil
	}
	defer f.Close()
	out.Stdout, out.Stderr, cut, err = readLogCapped(f, ExecOutputMax)
	return cut, err
}

// watchLogSize kills proc when the file at path grows past max, so an exec
// cannot fill the disk. stop ends the watch; overflowed reports whether it
// killed the process.
func watchLogSize(path string, max int64, proc process) (stop func(), overflowed func() bool) {
	done := make(chan struct{})
	finished := make(chan struct{})
	var hit bool
	go func() {
		defer close(finished)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			if fi, err := os.Stat(path); err == nil && fi.Size() > max {
				hit = true
				proc.killAndWait(5 * time.Second)
				return
			}
		}
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() { close(done) })
		<-finished
	}
	return stop, func() bool { stop(); return hit }
}
