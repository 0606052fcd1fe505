// Package podinit is floe's replacement for the pause container in pods
// that share one PID namespace. A PID namespace lives only as long as a
// process in it (a pinned /proc/PID/ns/pid of a dead init cannot be
// joined), so floe runs a tiny init: PID 1 of a new PID namespace, reaping
// every orphan reparented to it, exiting on SIGINT or SIGTERM. Containers
// of the pod join its namespace by path.
//
// The init is started through a short-lived launcher (cmd/floe-pod-init,
// or floe re-executed) that clones it and exits at once, so the init is
// never a child of the daemon: it survives daemon restarts like conmon
// does, and the host's init reaps it when it ends. The init itself is
// cmd/floe-pod-reaper where installed, a static C program doing what
// initMain does in a fraction of the memory; initMain is the fallback.
package podinit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/floe-cri/floe/internal/procstat"
)

// HelperArg is the hidden first argument that makes the floe binary act as
// the pod init; LauncherArg makes it the launcher. cmd/floe dispatches on
// both (via IsHelper) before anything else runs.
// PauseArg makes it the process of a sandboxed runtime's pod container
// (gVisor's root container, see internal/podsandbox): it only waits.
const (
	HelperArg   = "__floe-pod-init"
	LauncherArg = "__floe-pod-init-launch"
	PauseArg    = "__floe-pause"
)

// IsHelper reports whether args (os.Args) ask for the launcher, the init,
// the pause process or the sandboxed runtime's shim and waiter
// (runtimeshim.go).
func IsHelper(args []string) bool {
	if len(args) < 2 {
		return false
	}
	switch args[1] {
	case HelperArg, LauncherArg, PauseArg, RuntimeShimArg, runtimeWaitArg:
		return true
	}
	return false
}

// Main runs the launcher or the init, as os.Args asks, and exits.
func Main() {
	switch os.Args[1] {
	case LauncherArg:
		launcherMain(os.Args[2:])
	case HelperArg:
		initMain()
	case PauseArg:
		pauseMain()
	case RuntimeShimArg:
		runtimeShimMain(os.Args[2:])
	case runtimeWaitArg:
		runtimeWaitMain(os.Args[2:])
	}
	os.Exit(2)
}

// Init identifies a running pod init. StartTime (clock ticks since boot,
// from /proc/PID/stat) tells it apart from a later process that reuses
// its pid.
type Init struct {
	Pid       int    `json:"pid"`
	StartTime uint64 `json:"startTime"`
}

// NsPath is the PID namespace file containers join.
func (i *Init) NsPath() string { return fmt.Sprintf("/proc/%d/ns/pid", i.Pid) }

// Programs are the binaries a pod init is made of.
type Programs struct {
	// Launcher is run with LauncherArg: it clones the init and exits. A
	// small build of this package alone (cmd/floe-pod-init) starts in
	// about a millisecond where the whole floe binary takes tens. Empty
	// means /proc/self/exe (floe re-executed).
	Launcher string
	// Init is what the launcher executes as PID 1 of the pod, with
	// HelperArg as its first argument, and stays resident as long as the
	// pod: cmd/floe-pod-reaper, a static C build of initMain that keeps
	// about a quarter of the pages a Go init does. Empty means the
	// launcher's own binary (this package's Go init).
	Init string
}

// Options for Start.
type Options struct {
	Programs
	// CgroupProcs are cgroup.procs files the init is moved into (e.g. the
	// pod's cgroup under each v1 controller), so it is accounted to the pod.
	CgroupProcs []string
	// Timeout bounds the launch (default 10s).
	Timeout time.Duration
	// PodID is carried on the init's command line (podFlag), so an init
	// whose pid never reached the daemon's records (a crash between the
	// launch and the write) is still found, and `ps` shows its pod.
	PodID string
	// ExtraNamespaces are more CLONE_NEW* flags for the init (a pod in a
	// user namespace: user, net, ipc, uts), so those namespaces are
	// created together and all owned by the new user namespace; the
	// caller pins them from /proc/PID/ns. UIDMap and GIDMap are the user
	// namespace's mappings, written by the launcher.
	ExtraNamespaces uintptr
	UIDMap, GIDMap  []syscall.SysProcIDMap
}

// Start launches a pod init in a new PID namespace and returns it once it
// is running.
func Start(ctx context.Context, opts Options) (*Init, error) {
	launcher := opts.Launcher
	if launcher == "" {
		launcher = "/proc/self/exe"
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	args := []string{LauncherArg}
	if opts.Init != "" {
		args = append(args, initExeFlag+opts.Init)
	}
	if opts.ExtraNamespaces != 0 {
		args = append(args, nsFlag+strconv.FormatUint(uint64(opts.ExtraNamespaces), 10))
	}
	if len(opts.UIDMap) > 0 {
		args = append(args, uidMapFlag+formatIDMaps(opts.UIDMap), gidMapFlag+formatIDMaps(opts.GIDMap))
	}
	if opts.PodID != "" {
		args = append(args, podFlag+opts.PodID)
	}
	cmd := exec.CommandContext(ctx, launcher, append(args, opts.CgroupProcs...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("pod init launcher: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	pid, err := strconv.Atoi(strings.TrimSpace(stdout.String()))
	if err != nil || pid <= 0 {
		return nil, fmt.Errorf("pod init launcher printed %q", stdout.String())
	}
	start, err := startTime(pid)
	if err != nil {
		return nil, fmt.Errorf("pod init %d: %w", pid, err)
	}
	return &Init{Pid: pid, StartTime: start}, nil
}

// Alive reports whether the init still runs (and is still the same process).
func (i *Init) Alive() bool {
	st, err := startTime(i.Pid)
	return err == nil && st == i.StartTime && !zombie(i.Pid)
}

// Stop ends the init with SIGTERM (SIGKILL after timeout) and waits until
// it is gone. The kernel then kills every process left in the namespace.
// Stopping an init that is already gone is not an error.
func (i *Init) Stop(ctx context.Context, timeout time.Duration) error {
	if !i.Alive() {
		return nil
	}
	if err := unix.Kill(i.Pid, unix.SIGTERM); err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("pod init %d: %w", i.Pid, err)
	}
	if i.waitGone(ctx, timeout) {
		return nil
	}
	if i.Alive() {
		unix.Kill(i.Pid, unix.SIGKILL)
	}
	if i.waitGone(ctx, 5*time.Second) {
		return nil
	}
	return fmt.Errorf("pod init %d did not exit", i.Pid)
}

func (i *Init) waitGone(ctx context.Context, limit time.Duration) bool {
	// The init is not our child, so there is no wait(2) for it; its exit is
	// polled, briefly, only during a pod stop.
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if !i.Alive() {
			return true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return !i.Alive()
}

// statFields returns the fields of /proc/PID/stat after the command name.
func startTime(pid int) (uint64, error) {
	st, err := procstat.Read(pid)
	return st.StartTime, err
}

func zombie(pid int) bool { return procstat.Gone(pid) }

// initExeFlag passes Options.Init to the launcher as its first argument;
// podFlag passes Options.PodID, which the launcher puts on the init's
// command line.
const (
	initExeFlag = "--init="
	podFlag     = "--pod="
	nsFlag      = "--ns="
	uidMapFlag  = "--uidmap="
	gidMapFlag  = "--gidmap="
)

// formatIDMaps renders mappings as C:H:S[,C:H:S...] for the launcher.
func formatIDMaps(maps []syscall.SysProcIDMap) string {
	parts := make([]string, len(maps))
	for i, m := range maps {
		parts[i] = fmt.Sprintf("%d:%d:%d", m.ContainerID, m.HostID, m.Size)
	}
	return strings.Join(parts, ",")
}

func parseIDMaps(s string) ([]syscall.SysProcIDMap, error) {
	var out []syscall.SysProcIDMap
	for _, part := range strings.Split(s, ",") {
		var m syscall.SysProcIDMap
		if _, err := fmt.Sscanf(part, "%d:%d:%d", &m.ContainerID, &m.HostID, &m.Size); err != nil {
			return nil, fmt.Errorf("id mapping %q: %w", part, err)
		}
		out = append(out, m)
	}
	return out, nil
}

// Find returns the running inits started for podID, found by the pod id on
// their command line: the way to end an init that was launched but never
// recorded because the daemon died in between.
func Find(podID string) ([]*Init, error) {
	if podID == "" {
		return nil, errors.New("no pod id")
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	want := podFlag + podID
	var out []*Init
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
		if len(args) < 3 || args[1] != HelperArg || args[2] != want {
			continue
		}
		if start, err := startTime(pid); err == nil && !zombie(pid) {
			out = append(out, &Init{Pid: pid, StartTime: start})
		}
	}
	return out, nil
}

// launcherMain clones the init into a new PID namespace, moves it into the
// requested cgroups, prints its pid and exits without waiting for it.
func launcherMain(args []string) {
	initExe := "/proc/self/exe"
	if len(args) > 0 && strings.HasPrefix(args[0], initExeFlag) {
		initExe = strings.TrimPrefix(args[0], initExeFlag)
		args = args[1:]
	}
	attr, args, err := launcherAttr(args)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	var initArgs []string
	if len(args) > 0 && strings.HasPrefix(args[0], podFlag) {
		initArgs = append(initArgs, args[0])
		args = args[1:]
	}
	cgroupProcs := args
	devnull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// The init reports on this pipe once its signal handlers are in place:
	// PID 1 of a namespace drops signals it has no handler for, so a stop
	// sent before that point would be lost.
	ready, readyW, err := os.Pipe()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	cmd := exec.Command(initExe, append([]string{HelperArg}, initArgs...)...)
	cmd.Args[0] = "floe-pod-init" // what ps shows
	cmd.Stdin, cmd.Stdout, cmd.Stderr = devnull, devnull, devnull
	cmd.ExtraFiles = []*os.File{readyW} // fd 3
	if attr.Cloneflags&syscall.CLONE_NEWUSER != 0 {
		// The clone keeps the launcher's host ids, which the namespace
		// does not map (it shows them as nobody): become its root before
		// the exec, or the init starts without capabilities in it.
		attr.Credential = &syscall.Credential{Uid: 0, Gid: 0}
		// The init is executed from inside its new user namespace, as an
		// unprivileged host uid that may not search the binary's directory
		// (a 0700 temporary one in tests): open it here, as root, and
		// execute it through the descriptor, which skips the path walk.
		exe, err := os.Open(initExe)
		if err != nil {
			fmt.Fprintf(os.Stderr, "open pod init binary: %v\n", err)
			os.Exit(1)
		}
		cmd.ExtraFiles = append(cmd.ExtraFiles, exe) // fd 4
		cmd.Path = "/proc/self/fd/4"
	}
	cmd.Dir = "/"
	// A mount namespace of its own too: the init confines itself to an
	// empty root (see confine).
	cmd.SysProcAttr = attr
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "start pod init: %v\n", err)
		os.Exit(1)
	}
	readyW.Close()
	pid := cmd.Process.Pid
	ready.SetReadDeadline(time.Now().Add(5 * time.Second))
	msg := make([]byte, 512)
	n, err := ready.Read(msg)
	if err != nil || n != 1 || msg[0] != readyByte {
		cmd.Process.Kill()
		cmd.Wait()
		fmt.Fprintf(os.Stderr, "pod init did not report ready: %v %s\n", err, msg[:n])
		os.Exit(1)
	}
	for _, procs := range cgroupProcs {
		if err := os.WriteFile(procs, []byte(strconv.Itoa(pid)), 0o644); err != nil {
			cmd.Process.Kill()
			cmd.Wait()
			fmt.Fprintf(os.Stderr, "move pod init into %s: %v\n", procs, err)
			os.Exit(1)
		}
	}
	fmt.Println(pid)
	// Exiting orphans the init; the host's init (or nearest subreaper)
	// becomes its parent.
	os.Exit(0)
}

// launcherAttr parses the launcher's namespace and id map flags, which
// come first, into the init's clone attributes, and returns the arguments
// after them.
func launcherAttr(args []string) (*syscall.SysProcAttr, []string, error) {
	attr := &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID | syscall.CLONE_NEWNS, Setsid: true}
	for len(args) > 0 {
		var err error
		switch a := args[0]; {
		case strings.HasPrefix(a, nsFlag):
			var extra uint64
			extra, err = strconv.ParseUint(strings.TrimPrefix(a, nsFlag), 10, 64)
			attr.Cloneflags |= uintptr(extra)
		case strings.HasPrefix(a, uidMapFlag):
			attr.UidMappings, err = parseIDMaps(strings.TrimPrefix(a, uidMapFlag))
		case strings.HasPrefix(a, gidMapFlag):
			attr.GidMappings, err = parseIDMaps(strings.TrimPrefix(a, gidMapFlag))
			// The launcher is root on the host, so the init may keep
			// setgroups(2), which it needs to drop its groups.
			attr.GidMappingsEnableSetgroups = true
		default:
			return attr, args, nil
		}
		if err != nil {
			return nil, nil, err
		}
		args = args[1:]
	}
	return attr, args, nil
}

// initMain is PID 1 of the pod: it reaps children until told to stop.
// cmd/floe-pod-reaper/reaper.c does the same (arguments, ready pipe,
// confinement, signals); a change here belongs there too.
func initMain() {
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, unix.SIGCHLD, unix.SIGINT, unix.SIGTERM)
	// SIGHUP and friends would kill a process without handlers; as PID 1
	// of its namespace it gets only signals it handles from inside, but
	// the daemon's namespace can send any.
	signal.Ignore(unix.SIGHUP, unix.SIGPIPE, unix.SIGUSR1, unix.SIGUSR2)
	ready := os.NewFile(3, "ready")
	if err := confine(); err != nil {
		ready.Write([]byte(err.Error()))
		os.Exit(1)
	}
	ready.Write([]byte{readyByte})
	ready.Close()
	reap()
	for sig := range sigs {
		switch sig {
		case unix.SIGCHLD:
			reap()
		default:
			os.Exit(0)
		}
	}
}

// pauseMain holds a sandboxed runtime's pod sandbox open: it runs in the
// runtime's own confinement (its container has an empty read-only root),
// reaps whatever is reparented to it and ends on SIGTERM or SIGINT.
func pauseMain() {
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, unix.SIGCHLD, unix.SIGINT, unix.SIGTERM)
	signal.Ignore(unix.SIGHUP, unix.SIGPIPE, unix.SIGUSR1, unix.SIGUSR2)
	reap()
	for sig := range sigs {
		if sig != unix.SIGCHLD {
			os.Exit(0)
		}
		reap()
	}
}

// readyByte is what the init writes on the ready pipe when it is set up;
// anything else is an error message.
const readyByte = 1

// nobody is the uid and gid the init runs as.
const nobody = 65534

// confine takes from the init everything a container of the pod could
// reach through it. Containers that join the PID namespace see the init as
// PID 1, and /proc/1/root and /proc/1/cwd lead to its root: it must not be
// the host's. So, in its own mount namespace, the init moves onto an empty
// read-only tmpfs, then becomes nobody, which drops every capability (on
// all threads: Go's Setuid applies to the whole process).
func confine() error {
	// Read now: /proc is out of reach once the root is the empty tmpfs.
	inUserns := inUserNamespace()
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make mounts private: %w", err)
	}
	// /tmp exists on every host; the tmpfs hides it only in this namespace.
	const dir = "/tmp"
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "size=4k,mode=0555"); err != nil {
		return fmt.Errorf("mount empty root: %w", err)
	}
	if err := unix.Chdir(dir); err != nil {
		return err
	}
	// pivot_root(".", ".") stacks the old root on the new one; detaching
	// it leaves only the empty tmpfs.
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot_root: %w", err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detach old root: %w", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return err
	}
	if err := syscall.Setgroups(nil); err != nil {
		return fmt.Errorf("setgroups: %w", err)
	}
	// In a pod user namespace whose mapping leaves nobody out, the init
	// stays the namespace's root: an unprivileged host uid already.
	if err := syscall.Setgid(nobody); err != nil && !(errors.Is(err, unix.EINVAL) && inUserns) {
		return fmt.Errorf("setgid: %w", err)
	}
	if err := syscall.Setuid(nobody); err != nil && !(errors.Is(err, unix.EINVAL) && inUserns) {
		return fmt.Errorf("setuid: %w", err)
	}
	return nil
}

// inUserNamespace reports whether this process runs in a user namespace
// other than the host's (whose uid_map is the identity over all ids).
func inUserNamespace() bool {
	b, err := os.ReadFile("/proc/self/uid_map")
	if err != nil {
		return false
	}
	f := strings.Fields(string(b))
	return !(len(f) == 3 && f[0] == "0" && f[1] == "0" && f[2] == "4294967295")
}

// reap collects every exited child; one SIGCHLD may stand for several.
func reap() {
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if pid <= 0 || err != nil {
			return
		}
	}
}

// NamespaceOf returns the PID namespace inode of pid (as in
// /proc/PID/ns/pid), used to tell which processes live in a pod.
func NamespaceOf(pid int) (string, error) {
	return os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", pid))
}

// ProcessesIn lists host pids whose PID namespace is ns, with their state
// letter (R, S, Z, ...).
func ProcessesIn(ns string) (map[int]string, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	out := map[int]string{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if n, err := NamespaceOf(pid); err != nil || n != ns {
			continue
		}
		if st, err := procstat.Read(pid); err == nil {
			out[pid] = string(st.State)
		}
	}
	return out, nil
}
