package monitor

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/floe-cri/floe/internal/errdefs"
)

// CheckpointOptions describe one `runc checkpoint`.
type CheckpointOptions struct {
	// ImageDir receives criu's images; WorkDir its dump.log.
	ImageDir string
	WorkDir  string
	// LeaveRunning keeps the container running after the dump (KEP-2008
	// forensic checkpoints); without it runc stops the container.
	LeaveRunning bool
	// Timeout bounds the dump; 0 means the command timeout.
	Timeout time.Duration
}

// CheckpointSupport says why containers of this monitor cannot be
// checkpointed: floe checkpoints through runc and criu only, and the
// daemon names a criu only for runc handlers.
func (m *Monitor) CheckpointSupport() error {
	if m.cfg.CRIUPath == "" {
		return errdefs.FailedPrecondition("runtime %s does not checkpoint through criu; floe checkpoints and restores runc containers only", m.cfg.RuntimePath)
	}
	return nil
}

// Checkpoint dumps a running container's processes with criu through
// `runc checkpoint`. criu freezes the container for the dump, so the
// timeout is also the longest the container can be held still. On
// failure the error carries criu's own error lines from dump.log.
func (m *Monitor) Checkpoint(ctx context.Context, c *Container, opts CheckpointOptions) error {
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = m.cfg.CommandTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	args := append(m.runtimeGlobalArgs(), "checkpoint", "--image-path", opts.ImageDir, "--work-path", opts.WorkDir)
	if opts.LeaveRunning {
		args = append(args, "--leave-running")
	}
	args = append(args, c.ID)
	cmd := exec.CommandContext(ctx, m.cfg.RuntimePath, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = 2 * time.Second
	start := time.Now()
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w after %v", ctx.Err(), timeout)
		}
		return fmt.Errorf("container %s: runc checkpoint: %w: %s%s", c.ID, err, strings.TrimSpace(out.String()), criuLogTail(filepath.Join(opts.WorkDir, "dump.log")))
	}
	m.log.Debug("container checkpointed", "container", c.ID, "took", time.Since(start), "leaveRunning", opts.LeaveRunning)
	return nil
}

// criuLogTail is criu's error lines from its log, for error messages:
// runc itself only says that criu failed.
func criuLogTail(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	var keep []string
	for _, l := range strings.Split(string(data), "\n") {
		if strings.Contains(l, "Error (") {
			keep = append(keep, strings.TrimSpace(l))
		}
	}
	if len(keep) > 5 {
		keep = keep[len(keep)-5:]
	}
	if len(keep) == 0 {
		return ""
	}
	return " (criu: " + strings.Join(keep, "; ") + ")"
}
