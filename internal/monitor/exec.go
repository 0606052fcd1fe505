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
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// ErrExecTimeout is returned (wrapped) when an ExecSync command outlives
// its timeout; conmon has killed it by then.
var ErrExecTimeout = errors.New("exec timed out")

// ExecResult is the outcome of ExecSync.
type ExecResult struct {
	Stdout, Stderr []byte
	ExitCode       int
}

// execOutputMax bounds what an ExecSync may return, as CRI-O does: probes
// are meant to be short.
const execOutputMax = 16 << 20

// ExecSync runs process in the running container through a conmon in exec
// mode (conmon -e --exec-process-spec --sync -T), waits for it and returns
// its output and exit code. A timeout of 0 means none; on timeout conmon
// kills the process and the error wraps ErrExecTimeout.
func (m *Monitor) ExecSync(ctx context.Context, c *Container, process *specs.Process, timeout time.Duration) (*ExecResult, error) {
	dir, err := os.MkdirTemp("", "floe-exec-")
	if err != nil {
		return nil, fmt.Errorf("container %s: exec: %w", c.ID, err)
	}
	defer os.RemoveAll(dir)
	spec, err := json.Marshal(process)
	if err != nil {
		return nil, fmt.Errorf("container %s: exec: %w", c.ID, err)
	}
	specPath := filepath.Join(dir, "process.json")
	if err := os.WriteFile(specPath, spec, 0o600); err != nil {
		return nil, fmt.Errorf("container %s: exec: %w", c.ID, err)
	}
	var idb [8]byte
	rand.Read(idb[:])
	execID := hex.EncodeToString(idb[:])
	logPath := filepath.Join(dir, "exec.log")
	// No -b and no --exit-dir: they belong to the container's own conmon
	// (an exec conmon would take over its attach socket and ctl FIFO, and
	// write a false exit file for the container).
	args := m.conmonArgs(c.ID, execID)
	args = append(args, "-p", filepath.Join(dir, "pid"), "-l", "k8s-file:"+logPath,
		"--log-size-max", strconv.Itoa(execOutputMax),
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
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
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
	result, err := readSync(dec, r, deadline)
	if err != nil {
		return nil, fmt.Errorf("container %s: exec: waiting for the exit code: %w", c.ID, err)
	}
	// conmon has closed the log by the time it reports the exit code.
	out := &ExecResult{ExitCode: result.Data}
	if f, err := os.Open(logPath); err == nil {
		out.Stdout, out.Stderr, err = ReadLog(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("container %s: exec: read output: %w", c.ID, err)
		}
	}
	if result.Data < 0 {
		if strings.Contains(result.Message, "timed out") {
			// conmon reports the timeout but does not always kill the
			// process (a plain `sleep` survived it). The caller is told the
			// command timed out, so it must be gone when we return: kill it
			// and wait until it has been reaped.
			if err := proc.killAndWait(5 * time.Second); err != nil {
				m.log.Warn("exec timed out and its process could not be removed", "container", c.ID, "pid", first.Data, "err", err)
			}
			return out, fmt.Errorf("container %s: exec %q after %v: %w", c.ID, process.Args, timeout, ErrExecTimeout)
		}
		return out, fmt.Errorf("container %s: exec: %s", c.ID, result.Message)
	}
	return out, nil
}
