// Package podsandbox keeps the per-pod sandbox of a sandboxed runtime
// handler (runtime_type "sandboxed": gVisor's runsc). Such a runtime runs
// all containers of a pod inside one sandbox (for gVisor: one Sentry
// kernel, one network stack), which lives as long as its root container.
// floe's pods have no pause container, so for these handlers the pod gets
// one: a container whose process is floe's pause (the small pod init
// program in its pause mode, bind-mounted into an empty read-only root),
// created with the pod's network namespace after CNI ADD, so the runtime
// takes over the pod's interfaces. The pod's containers then name it in
// the annotations runsc reads (io.kubernetes.cri.container-type and
// io.kubernetes.cri.sandbox-id, as containerd sets them).
//
// The root container's id is the pod id, in the handler's own state root:
// a crash anywhere is undone by deleting that id, which is idempotent, so
// no record beyond the pod's is needed.
package podsandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/floe-cri/floe/internal/cgroups"
	"github.com/floe-cri/floe/internal/errdefs"
	"github.com/floe-cri/floe/internal/nspin"
	"github.com/floe-cri/floe/internal/podinit"
	"github.com/floe-cri/floe/internal/sandbox"
)

// The annotations gVisor (and Kata) read to put a container into an
// existing sandbox.
const (
	AnnotationContainerType = "io.kubernetes.cri.container-type"
	AnnotationSandboxID     = "io.kubernetes.cri.sandbox-id"
	TypeSandbox             = "sandbox"
	TypeContainer           = "container"
)

// runtimeTimeout bounds one runsc command; creating a gVisor sandbox takes
// ~150 ms here, destroying one ~2 s.
const runtimeTimeout = 30 * time.Second

// Options configure one sandboxed handler.
type Options struct {
	Handler     string
	RuntimePath string
	// RuntimeRoot is the handler's --root ("" keeps the runtime's
	// default); the monitor's containers must use the same, since runsc
	// finds the sandbox by id there.
	RuntimeRoot   string
	RuntimeArgs   []string
	SystemdCgroup bool
	CgroupDriver  string
	// PauseBinary is floe-pod-init (static: the pause container's root is
	// empty), run with podinit.PauseArg.
	PauseBinary string
	Log         *slog.Logger
}

// Runtime starts and stops pod sandboxes of one handler.
type Runtime struct{ o Options }

// New returns the pod sandbox keeper of one sandboxed handler.
func New(o Options) *Runtime { return &Runtime{o: o} }

// Annotate marks a container's spec as one more container of pod's
// sandbox. sharePID (the pod's PID namespace, the CRI default) drops the
// spec's own PID namespace: runsc puts a container without one into the
// sandbox's root PID namespace, which the pod's other containers share,
// and gives one with a new PID namespace a private one.
func Annotate(s *specs.Spec, podID string, sharePID bool) {
	if s.Annotations == nil {
		s.Annotations = map[string]string{}
	}
	s.Annotations[AnnotationContainerType] = TypeContainer
	s.Annotations[AnnotationSandboxID] = podID
	if sharePID && s.Linux != nil {
		s.Linux.Namespaces = slices.DeleteFunc(s.Linux.Namespaces, func(ns specs.LinuxNamespace) bool {
			return ns.Type == specs.PIDNamespace
		})
	}
}

func bundleDir(sb *sandbox.Sandbox) string { return filepath.Join(sb.RunDir, "sandbox") }

// StartPod creates and starts the pod's root container.
func (r *Runtime) StartPod(ctx context.Context, sb *sandbox.Sandbox) error {
	if sb.NetnsPath == "" {
		return fmt.Errorf("runtime handler %q needs the pod's own network namespace", r.o.Handler)
	}
	if r.o.PauseBinary == "" {
		return errdefs.FailedPrecondition("runtime handler %q needs floe-pod-init installed beside floe: the pod's pause container runs it (static) in an empty root", r.o.Handler)
	}
	// With runsc --network=host the Sentry opens the pod's sockets on
	// the host kernel, as a process without CAP_NET_BIND_SERVICE there: a
	// server on port 80 (nginx, httpd) would fail to bind. The pod's own
	// network namespace lets every port be bound (as Docker sets it for
	// its containers); Kubernetes counts this sysctl as safe.
	if err := nspin.SetNetSysctl(sb.NetnsPath, "net.ipv4.ip_unprivileged_port_start", "0"); err != nil {
		return fmt.Errorf("pod sandbox network: %w", err)
	}
	dir := bundleDir(sb)
	if err := r.writeBundle(dir, sb); err != nil {
		return err
	}
	start := time.Now()
	if err := r.run(ctx, dir, "create", "create", "--bundle", dir, sb.ID); err != nil {
		return err
	}
	if err := r.run(ctx, dir, "start", "start", sb.ID); err != nil {
		return err
	}
	r.o.Log.Info("pod sandbox started", "pod", sb.ID, "handler", r.o.Handler, "took", time.Since(start))
	return nil
}

// StopPod destroys the pod's sandbox and every container left in it. A
// sandbox that does not exist (never made, already gone) is no error.
func (r *Runtime) StopPod(ctx context.Context, sb *sandbox.Sandbox) error {
	dir := bundleDir(sb)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("pod sandbox dir: %w", err)
	}
	err := r.run(ctx, dir, "delete", "delete", "--force", sb.ID)
	if err != nil && !notExist(err) {
		return err
	}
	if err == nil {
		r.o.Log.Info("pod sandbox destroyed", "pod", sb.ID, "handler", r.o.Handler)
	}
	return nil
}

// PodRunning asks the runtime for the state of the pod's root container.
func (r *Runtime) PodRunning(ctx context.Context, sb *sandbox.Sandbox) bool {
	ctx, cancel := context.WithTimeout(ctx, runtimeTimeout)
	defer cancel()
	args := slices.Clone(r.o.RuntimeArgs)
	if r.o.RuntimeRoot != "" {
		args = append(args, "--root", r.o.RuntimeRoot)
	}
	out, err := exec.CommandContext(ctx, r.o.RuntimePath, append(args, "state", sb.ID)...).Output()
	if err != nil {
		return false
	}
	var st specs.State
	return json.Unmarshal(out, &st) == nil && st.Status == specs.StateRunning
}

// notExist recognises runsc's (and runc's) answer for an unknown id.
func notExist(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "does not exist") || strings.Contains(msg, "no such file or directory") || strings.Contains(msg, "not found")
}

func (r *Runtime) writeBundle(dir string, sb *sandbox.Sandbox) error {
	rootfs := filepath.Join(dir, "rootfs")
	if err := os.MkdirAll(rootfs, 0o755); err != nil {
		return fmt.Errorf("pod sandbox bundle: %w", err)
	}
	// The pause runs as nobody and must be able to walk "/" (MkdirAll's
	// mode is cut by the umask).
	if err := os.Chmod(rootfs, 0o755); err != nil {
		return fmt.Errorf("pod sandbox bundle: %w", err)
	}
	parent, err := cgroups.ParentPath(r.o.CgroupDriver, sb.Spec.CgroupParent)
	if err != nil {
		return err
	}
	cgPath, err := cgroups.ContainerPath(r.o.CgroupDriver, parent, "floe", sb.ID)
	if err != nil {
		return err
	}
	hostname, _ := os.ReadFile(sb.Files().Hostname)
	nobody := uint32(65534)
	spec := specs.Spec{
		Version: "1.0.2",
		Process: &specs.Process{
			Args: []string{"/pause", podinit.PauseArg}, Cwd: "/", Env: []string{"PATH=/"},
			User:            specs.User{UID: nobody, GID: nobody},
			NoNewPrivileges: true,
		},
		Root:     &specs.Root{Path: "rootfs", Readonly: true},
		Hostname: strings.TrimSpace(string(hostname)),
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc"},
			{Destination: "/pause", Type: "bind", Source: r.o.PauseBinary, Options: []string{"bind", "ro"}},
		},
		Annotations: map[string]string{AnnotationContainerType: TypeSandbox, AnnotationSandboxID: sb.ID},
		Linux: &specs.Linux{
			CgroupsPath: cgPath,
			Namespaces: []specs.LinuxNamespace{
				{Type: specs.NetworkNamespace, Path: sb.NetnsPath},
				{Type: specs.MountNamespace}, {Type: specs.IPCNamespace}, {Type: specs.UTSNamespace},
			},
		},
	}
	b, err := json.Marshal(&spec)
	if err != nil {
		return fmt.Errorf("encode pod sandbox spec: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), b, 0o600); err != nil {
		return fmt.Errorf("pod sandbox bundle: %w", err)
	}
	return nil
}

// run runs the runtime with its output in a file: the sandbox it starts
// inherits stdio, and a pipe would stay open for the sandbox's life.
func (r *Runtime) run(ctx context.Context, dir, verb string, args ...string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), runtimeTimeout)
	defer cancel()
	global := slices.Clone(r.o.RuntimeArgs)
	if r.o.RuntimeRoot != "" {
		global = append(global, "--root", r.o.RuntimeRoot)
	}
	if r.o.SystemdCgroup {
		global = append(global, "--systemd-cgroup")
	}
	out, err := os.CreateTemp(dir, "runtime-out-")
	if err != nil {
		return fmt.Errorf("runtime output file: %w", err)
	}
	defer os.Remove(out.Name())
	defer out.Close()
	cmd := exec.CommandContext(ctx, r.o.RuntimePath, append(global, args...)...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.WaitDelay = time.Second
	if err := cmd.Run(); err != nil {
		msg, _ := os.ReadFile(out.Name())
		return fmt.Errorf("%s %s (pod sandbox): %w: %s", filepath.Base(r.o.RuntimePath), verb, err, strings.TrimSpace(string(msg)))
	}
	return nil
}

// ErrHostNetwork is why a sandboxed handler refuses hostNetwork pods: the
// sandbox brings its own network stack.
var ErrHostNetwork = errors.New("a sandboxed runtime handler runs pods in their own network namespace; hostNetwork pods are not supported")
