// Package handlerprobe finds out whether a runtime handler can really run
// containers on this host, by having the runtime create and delete a
// trivial container. Checking that the binary exists is not enough: crun
// 1.8 is installed fine on a cgroup v1 hybrid host and then refuses every
// container ("cgroups in hybrid mode not supported"). The probe's
// container has an empty read-only root with one bind-mounted static
// binary as its (never started) process, lives in a private state root
// and a cgroup of its own, and everything is removed afterwards.
package handlerprobe

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Timeout bounds one probe (create plus delete). A runtime that needs more
// than this to create an empty container is unusable for pods anyway.
const Timeout = 15 * time.Second

// Target is what is probed: one configured handler.
type Target struct {
	Name        string
	RuntimePath string
	RuntimeArgs []string
	// Start starts the trial container too: gVisor sets up the
	// sandbox's network only then.
	Start         bool
	SystemdCgroup bool
}

// Options are the host facts every probe shares.
type Options struct {
	// Dir is a directory floe owns (under its run dir); each probe works
	// in a fresh subdirectory of it and removes that subdirectory.
	Dir string
	// Binary is a static executable bind-mounted as the probe container's
	// process. It is never run: runtimes check at create time that the
	// process exists.
	Binary string
	// CgroupRoot is where the cgroup hierarchies are mounted
	// (/sys/fs/cgroup); leftovers of a runtime that failed half-way are
	// removed from there.
	CgroupRoot string
}

// Result is the outcome of one probe.
type Result struct {
	Handler string `json:"handler"`
	Usable  bool   `json:"usable"`
	// Error is the runtime's own message when it is not usable.
	Error    string        `json:"error,omitempty"`
	Duration time.Duration `json:"duration"`
	At       time.Time     `json:"at"`
}

// Err returns the result as an error (nil when usable).
func (r Result) Err() error {
	if r.Usable {
		return nil
	}
	return errors.New(r.Error)
}

// Probe creates and deletes one trivial container with t's runtime.
func Probe(ctx context.Context, t Target, o Options) Result {
	start := time.Now()
	res := Result{Handler: t.Name, At: start.UTC()}
	err := probe(ctx, t, o)
	res.Duration = time.Since(start)
	if err != nil {
		res.Error = err.Error()
		return res
	}
	res.Usable = true
	return res
}

func probe(ctx context.Context, t Target, o Options) (err error) {
	ctx, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()
	if st, err := os.Stat(t.RuntimePath); err != nil {
		return fmt.Errorf("runtime binary: %w", err)
	} else if st.IsDir() || st.Mode()&0o111 == 0 {
		return fmt.Errorf("runtime binary %s is not executable", t.RuntimePath)
	}
	id := "floe-probe-" + t.Name + "-" + randomSuffix()
	work := filepath.Join(o.Dir, id)
	// The probe dir holds the bundle and the runtime's state root, so
	// removing it removes everything the runtime wrote to disk.
	defer func() {
		if rmErr := os.RemoveAll(work); rmErr != nil && err == nil {
			err = fmt.Errorf("remove probe dir: %w", rmErr)
		}
		// Only when empty: another handler's probe may be running.
		_ = os.Remove(o.Dir)
	}()
	bundle := filepath.Join(work, "bundle")
	if err := writeBundle(bundle, id, t, o); err != nil {
		return err
	}
	global := globalArgs(t, work)
	createErr := run(ctx, t.RuntimePath, work, "create", append(slices.Clone(global), "create", "--bundle", bundle, id))
	if createErr == nil && t.Start {
		createErr = run(ctx, t.RuntimePath, work, "start", append(slices.Clone(global), "start", id))
	}
	// Deleted whatever create said: a runtime may fail after it has
	// started the container's init or made its cgroup.
	delErr := remove(context.WithoutCancel(ctx), t.RuntimePath, work, global, id)
	leftErr := removeCgroups(o.CgroupRoot, cgroupName(id))
	if createErr != nil {
		return createErr
	}
	if delErr != nil {
		return fmt.Errorf("delete: %w", delErr)
	}
	return leftErr
}

// Sweep removes what probes interrupted by a crash of floe left in
// o.Dir: each probe's container (named after its handler, in its own
// state root), cgroup and files.
func Sweep(ctx context.Context, targets []Target, o Options) error {
	ents, err := os.ReadDir(o.Dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read probe dir: %w", err)
	}
	var errs []error
	for _, e := range ents {
		work := filepath.Join(o.Dir, e.Name())
		for _, t := range targets {
			if !strings.HasPrefix(e.Name(), "floe-probe-"+t.Name+"-") {
				continue
			}
			global := globalArgs(t, work)
			// A probe killed before create leaves no container: the
			// delete's "does not exist" is expected then.
			_ = remove(ctx, t.RuntimePath, work, global, e.Name())
		}
		if err := removeCgroups(o.CgroupRoot, cgroupName(e.Name())); err != nil {
			errs = append(errs, err)
		}
		if err := os.RemoveAll(work); err != nil {
			errs = append(errs, fmt.Errorf("remove stale probe dir: %w", err))
		}
	}
	_ = os.Remove(o.Dir)
	return errors.Join(errs...)
}

// globalArgs are the runtime's flags for a probe in work: the handler's
// own, then a state root inside work.
func globalArgs(t Target, work string) []string {
	global := append(slices.Clone(t.RuntimeArgs), "--root", filepath.Join(work, "state"))
	if t.SystemdCgroup {
		global = append(global, "--systemd-cgroup")
	}
	return global
}

// remove kills and deletes the probe container. `delete --force` alone
// costs runc ~100 ms (it polls the killed init every 100 ms); a kill first
// leaves it stopped, and a plain delete then takes a few ms. A runtime that
// refuses either (runsc cannot signal a created container) gets the forced
// delete.
func remove(ctx context.Context, runtime, work string, global []string, id string) error {
	_ = run(ctx, runtime, work, "kill", append(slices.Clone(global), "kill", id, "KILL"))
	if err := run(ctx, runtime, work, "delete", append(slices.Clone(global), "delete", id)); err == nil {
		return nil
	}
	return run(ctx, runtime, work, "delete", append(slices.Clone(global), "delete", "--force", id))
}

// run runs the runtime with stdio on files, never pipes: the container's
// init inherits them and would keep a pipe open until it is deleted. The
// error carries the runtime's own message.
func run(ctx context.Context, runtime, work, verb string, args []string) error {
	ctx, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()
	out, err := os.CreateTemp(work, "out-")
	if err != nil {
		return fmt.Errorf("probe output file: %w", err)
	}
	defer os.Remove(out.Name())
	defer out.Close()
	cmd := exec.CommandContext(ctx, runtime, args...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.WaitDelay = time.Second
	if err := cmd.Run(); err != nil {
		msg, _ := os.ReadFile(out.Name())
		return fmt.Errorf("%s %s: %w: %s", filepath.Base(runtime), verb, err, lastLines(string(msg)))
	}
	return nil
}

// lastLines keeps the end of a runtime's output, where its error is, one
// line, bounded.
func lastLines(s string) string {
	s = strings.TrimSpace(s)
	lines := strings.Split(s, "\n")
	if len(lines) > 3 {
		lines = lines[len(lines)-3:]
	}
	s = strings.Join(lines, "; ")
	if len(s) > 500 {
		s = s[len(s)-500:]
	}
	if s == "" {
		return "(no output)"
	}
	return s
}

func writeBundle(bundle, id string, t Target, o Options) error {
	if err := os.MkdirAll(filepath.Join(bundle, "rootfs"), 0o700); err != nil {
		return fmt.Errorf("probe bundle: %w", err)
	}
	cgPath := "/" + cgroupName(id)
	if t.SystemdCgroup {
		cgPath = "system.slice:floe-probe:" + id
	}
	spec := specs.Spec{
		// The oldest version every runtime here accepts: crun 1.8
		// refuses specs newer than it knows ("unknown version
		// specified"), which is no reason to call it unusable.
		Version: "1.0.2",
		Process: &specs.Process{
			Args: []string{"/probe"}, Cwd: "/", Env: []string{"PATH=/"},
			NoNewPrivileges: true,
		},
		Root:     &specs.Root{Path: "rootfs", Readonly: true},
		Hostname: "probe",
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc"},
			{Destination: "/probe", Type: "bind", Source: o.Binary, Options: []string{"bind", "ro"}},
		},
		Linux: &specs.Linux{
			CgroupsPath: cgPath,
			Namespaces: []specs.LinuxNamespace{
				{Type: specs.PIDNamespace}, {Type: specs.MountNamespace}, {Type: specs.IPCNamespace},
				{Type: specs.UTSNamespace}, {Type: specs.NetworkNamespace},
			},
		},
	}
	b, err := json.Marshal(&spec)
	if err != nil {
		return fmt.Errorf("encode probe spec: %w", err)
	}
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), b, 0o600); err != nil {
		return fmt.Errorf("probe bundle: %w", err)
	}
	return nil
}

func cgroupName(id string) string { return id }

// removeCgroups removes the probe's cgroup from every hierarchy where it
// is still there (a runtime that failed between making it and starting
// the init). Cgroup directories go with rmdir, never RemoveAll.
func removeCgroups(root, name string) error {
	if root == "" {
		return nil
	}
	cands := []string{filepath.Join(root, name)}
	if hs, err := os.ReadDir(root); err == nil {
		for _, h := range hs {
			if h.IsDir() {
				cands = append(cands, filepath.Join(root, h.Name(), name))
			}
		}
	}
	var errs []error
	for _, c := range cands {
		if err := os.Remove(c); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove probe cgroup: %w", err))
		}
	}
	return errors.Join(errs...)
}

func randomSuffix() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
