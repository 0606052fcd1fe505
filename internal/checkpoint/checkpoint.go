// Package checkpoint is checkpoint/restore of containers (CRI
// CheckpointContainer, KEP-2008) below the container core: whether criu
// works on this host, and the archive format (archive.go, rootfs.go).
// runc does the dump and restore through criu. Whether criu works is
// asked of criu itself (`criu check`) once at startup: criu fails on
// kernels newer than it knows (criu 3.17 on Linux 6.13+, whose vDSO has
// an extra [vvar_vclock] area, stops at "Unexpected rt vDSO area
// bounds"), and every dump or restore would then fail the same way after
// floe had frozen the container. The answer and criu's own error are kept
// for the RPCs, the startup checks and Status.
package checkpoint

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/floe-cri/floe/internal/errdefs"
)

// DefaultCRIU is where Debian's criu package installs criu.
const DefaultCRIU = "/usr/sbin/criu"

// checkTimeout bounds `criu check` (~35 ms when it works or fails early).
const checkTimeout = 10 * time.Second

// Support is the host's checkpoint/restore capability.
type Support struct {
	CRIUPath string `json:"criuPath"`
	Version  string `json:"version,omitempty"`
	// Problem is why criu cannot work here: missing, or its own error
	// from `criu check`. Empty when criu works.
	Problem string `json:"problem,omitempty"`
	// RootOnly is set when floe lacks CAP_SYS_RESOURCE (some restricted
	// hosts): criu reads each process's rlimits with prlimit, which the
	// kernel then allows only for processes of criu's own uid and gid, so
	// only containers running as 0:0 can be dumped.
	RootOnly bool `json:"rootOnly,omitempty"`
}

// Detect runs `criu --version` and `criu check`.
func Detect(ctx context.Context, criuPath string) Support {
	s := Support{CRIUPath: criuPath}
	if _, err := exec.LookPath(criuPath); err != nil {
		s.Problem = fmt.Sprintf("criu is not installed (%v); apt-get install criu", err)
		return s
	}
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	if out, err := exec.CommandContext(ctx, criuPath, "--version").CombinedOutput(); err == nil {
		s.Version = firstLine(strings.TrimPrefix(strings.TrimSpace(string(out)), "Version: "))
	}
	s.RootOnly = lacksSysResource()
	cmd := exec.CommandContext(ctx, criuPath, "check")
	cmd.WaitDelay = time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		s.Problem = fmt.Sprintf("criu check failed (%v): %s", err, errorLines(string(out)))
	}
	return s
}

// capSysResource is CAP_SYS_RESOURCE's bit in the capability sets.
const capSysResource = 24

// lacksSysResource reads floe's own effective capabilities.
func lacksSysResource() bool {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return false
	}
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, "CapEff:"); ok {
			caps, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return err == nil && caps&(1<<capSysResource) == 0
		}
	}
	return false
}

// CheckUser refuses, before criu freezes anything, a container criu
// cannot dump on this host because of whom it runs as.
func (s Support) CheckUser(what string, uid, gid uint32) error {
	if !s.RootOnly || (uid == 0 && gid == 0) {
		return nil
	}
	return errdefs.FailedPrecondition("%s: the container runs as %d:%d, and floe lacks CAP_SYS_RESOURCE on this host, so criu may not read its process limits (prlimit needs the same uid and gid, or that capability); only containers running as 0:0 can be checkpointed here", what, uid, gid)
}

// Usable reports whether criu works on this host.
func (s Support) Usable() bool { return s.Problem == "" }

// Check returns FailedPrecondition with criu's reason when this host
// cannot checkpoint or restore; what names the operation.
func (s Support) Check(what string) error {
	if s.Usable() {
		return nil
	}
	return errdefs.FailedPrecondition("%s: this host cannot checkpoint or restore containers: %s", what, s.Problem)
}

// errorLines keeps criu's "Error" lines (its reason), or its whole output
// when there are none, on one line.
func errorLines(out string) string {
	var keep []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if strings.HasPrefix(l, "Error") {
			keep = append(keep, strings.TrimSpace(l))
		}
	}
	if len(keep) == 0 {
		keep = []string{strings.Join(strings.Fields(out), " ")}
	}
	s := strings.Join(keep, "; ")
	if len(s) > 600 {
		s = s[:600] + "..."
	}
	return s
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}
