// Package harness runs real floe daemons for integration tests and checks
// that tests leave nothing behind. Every test daemon has its own socket,
// state dir, run dir, CNI config (its own bridge and subnet) and IPAM dir,
// so several can run side by side on one host.
package harness

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/floe-cri/floe/internal/failpoint"
)

// floeBuild is one build of cmd/floe with floe-pod-init and
// floe-pod-reaper beside it, made once per test process.
type floeBuild struct {
	once sync.Once
	err  error
	bin  string
}

var (
	// floeBuilds are the normal build (what `make build` ships) and the
	// test build with failpoints compiled in (failpoint.Tag).
	floeBuilds = map[bool]*floeBuild{false: {}, true: {}}
)

// FloeBinary builds cmd/floe once per test process, as `make build` does,
// and returns its path.
func FloeBinary(t testing.TB) string {
	t.Helper()
	return floeBinary(t, false)
}

// FailpointBinary builds cmd/floe once per test process with failpoints
// compiled in (the build tag failpoint.Tag), for tests that crash it at a
// named step (Daemon.CrashAt), and returns its path.
func FailpointBinary(t testing.TB) string {
	t.Helper()
	return floeBinary(t, true)
}

func floeBinary(t testing.TB, failpoints bool) string {
	t.Helper()
	b := floeBuilds[failpoints]
	b.once.Do(func() { b.bin, b.err = buildFloe(failpoints) })
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.bin
}

// buildFloe builds floe into a temp dir of its own, with floe-pod-init
// and floe-pod-reaper beside it.
func buildFloe(failpoints bool) (string, error) {
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	dir, err := os.MkdirTemp("", "floe-bin-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "floe")
	var tags []string
	if failpoints {
		tags = []string{"-tags", failpoint.Tag}
	}
	// floe-pod-init beside floe is what the daemon runs as the init of
	// pods that share a PID namespace, as after `make install`.
	for _, b := range []struct{ out, pkg string }{{bin, "./cmd/floe"}, {filepath.Join(dir, "floe-pod-init"), "./cmd/floe-pod-init"}} {
		args := append(append([]string{"build"}, tags...), "-o", b.out, b.pkg)
		cmd := exec.Command("go", args...)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			return bin, fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	// And the static C init floe-pod-init executes.
	return bin, BuildPodReaper(filepath.Join(dir, "floe-pod-reaper"))
}

// BuildPodReaper builds cmd/floe-pod-reaper (the static C pod init) into
// out, with the flags `make build` uses.
func BuildPodReaper(out string) error {
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	cmd := exec.Command(filepath.Join(root, "hack", "build-pod-reaper.sh"), out)
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build floe-pod-reaper: %v\n%s", err, b)
	}
	return nil
}

// RequireRoot skips tests that need root (namespaces, mounts, CNI).
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("integration tests need root")
	}
}

// Options change a test daemon.
type Options struct {
	// NoCNIConfig starts the daemon with an empty CNI config dir.
	NoCNIConfig bool
	// ConfigTOML is a drop-in (floe.d/50-test.toml) applied after the
	// harness's own --config file, which gives the daemon its own image
	// store and registries.conf; it may override any of those keys.
	ConfigTOML string
	// ExtraPluginDir is searched before /usr/lib/cni (test plugins).
	ExtraPluginDir string
	// PluginType replaces "bridge" as the first plugin of the conflist.
	PluginType string
	// LogLevelFromConfig leaves the log level to the config file instead
	// of forcing --log-level debug.
	LogLevelFromConfig bool
	// ExtraArgs are appended to `floe serve`.
	ExtraArgs []string
	// RegistriesConf is the daemon's registries.conf (empty by default,
	// so the host's /etc/containers never leaks into a test).
	RegistriesConf string
}

// Daemon is one running floe.
type Daemon struct {
	t      testing.TB
	Dir    string
	Socket string
	// InspectSocket serves the HTTP inspect endpoint; metrics listen on
	// a free loopback port, found through GET /info.
	InspectSocket string
	StateDir      string
	RunDir        string
	CNIDir        string
	IPAMDir       string
	Bridge        string
	Subnet        string
	LogPath       string
	// StorageRoot and StorageRunRoot are the daemon's own image store
	// (never the host's /var/lib/containers); RegistriesConf its
	// registries.conf.
	StorageRoot    string
	StorageRunRoot string
	RegistriesConf string
	// NRISocket is where the daemon's NRI plugins connect (its own, so
	// test daemons never take the node's /var/run/nri/nri.sock).
	NRISocket string
	// Env is added to the daemon's environment at every Start.
	Env []string
	// crashAt is the failpoint step armed by CrashAt.
	crashAt        string
	args           []string
	killed         bool // Kill9 was used: mounts may legitimately remain
	containersLeft bool // stopped with containers running: their rootfs stays mounted
	panicsRead     int  // how much of the log checkNoPanics has read
	cmd            *exec.Cmd
	waitErr        chan error
	conn           *grpc.ClientConn
	Runtime        runtimeapi.RuntimeServiceClient
	Images         runtimeapi.ImageServiceClient
}

// Short random hex, for names that must be unique on the host.
func Short() string {
	var b [3]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// StartDaemon starts floe and registers its shutdown and the removal of its
// bridge with t.Cleanup.
func StartDaemon(t testing.TB, o Options) *Daemon {
	t.Helper()
	RequireRoot(t)
	dir, err := os.MkdirTemp("", "floe-it-")
	if err != nil {
		t.Fatal(err)
	}
	// Searchable (not listable) by others: runc mounts the rootfs of a
	// container in a pod user namespace as the pod's unprivileged root,
	// which must reach it under the run dir.
	if err := os.Chmod(dir, 0o711); err != nil {
		t.Fatal(err)
	}
	suffix := Short()
	d := &Daemon{
		t:             t,
		Dir:           dir,
		Socket:        filepath.Join(dir, "floe.sock"),
		InspectSocket: filepath.Join(dir, "inspect.sock"),
		StateDir:      filepath.Join(dir, "state"),
		RunDir:        filepath.Join(dir, "run"),
		CNIDir:        filepath.Join(dir, "cni"),
		IPAMDir:       filepath.Join(dir, "ipam"),
		Bridge:        "flt" + suffix,
		LogPath:       filepath.Join(dir, "floe.log"),

		StorageRoot:    filepath.Join(dir, "storage"),
		StorageRunRoot: filepath.Join(dir, "storage-run"),
		RegistriesConf: filepath.Join(dir, "registries.conf"),
		NRISocket:      filepath.Join(dir, "nri.sock"),
	}
	// One /24 per daemon from 10.234.0.0/16, picked from the random suffix.
	var n [1]byte
	rand.Read(n[:])
	d.Subnet = fmt.Sprintf("10.234.%d.0/24", n[0])
	if err := os.MkdirAll(d.CNIDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if !o.NoCNIConfig {
		d.WriteCNIConfig(o.PluginType)
	}
	pluginDirs := "/usr/lib/cni:/opt/cni/bin"
	if o.ExtraPluginDir != "" {
		pluginDirs = o.ExtraPluginDir + ":" + pluginDirs
	}
	d.args = []string{"serve",
		"--socket", d.Socket, "--state-dir", d.StateDir, "--run-dir", d.RunDir,
		"--cni-config-dir", d.CNIDir, "--cni-plugin-dirs", pluginDirs,
		"--inspect-socket", d.InspectSocket, "--metrics-address", "127.0.0.1:0"}
	if !o.LogLevelFromConfig {
		d.args = append(d.args, "--log-level", "debug")
	}
	d.args = append(d.args, o.ExtraArgs...)
	// The main config file holds the harness's isolation settings (own
	// image store, own registries.conf); the test's ConfigTOML is a
	// drop-in applied after it, so a test can still change any of them.
	// Always naming a config file in the test dir keeps the host's
	// /etc/floe out of tests.
	configPath := filepath.Join(dir, "floe.toml")
	base := fmt.Sprintf(`[storage]
root = %q
run_root = %q

[registries]
config_path = %q
config_dir = %q
override_path = %q

[nri]
socket_path = %q

# The node's OCI hook files are not the test's.
[containers]
hooks_dir = []
`, d.StorageRoot, d.StorageRunRoot, d.RegistriesConf, filepath.Join(dir, "registries.conf.d"), filepath.Join(dir, "floe-registries.conf"), d.NRISocket)
	if err := os.WriteFile(configPath, []byte(base), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(d.RegistriesConf, []byte(o.RegistriesConf), 0o644); err != nil {
		t.Fatal(err)
	}
	if o.ConfigTOML != "" {
		if err := os.MkdirAll(filepath.Join(dir, "floe.d"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "floe.d", "50-test.toml"), []byte(o.ConfigTOML), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	d.args = append(d.args, "--config", configPath)
	t.Cleanup(d.cleanup)
	d.Start()
	return d
}

// WriteCNIConfig writes the daemon's conflist: bridge (or a test plugin
// type) with host-local IPAM on the daemon's subnet, portmap and loopback.
func (d *Daemon) WriteCNIConfig(firstType string) {
	if firstType == "" {
		firstType = "bridge"
	}
	conf := fmt.Sprintf(`{"cniVersion":"1.0.0","name":"floetest-%s","plugins":[
 {"type":%q,"bridge":%q,"isGateway":true,"ipMasq":false,"hairpinMode":true,
  "ipam":{"type":"host-local","ranges":[[{"subnet":%q}]],"dataDir":%q}},
 {"type":"portmap","capabilities":{"portMappings":true}},
 {"type":"loopback"}]}`, d.Bridge, firstType, d.Bridge, d.Subnet, d.IPAMDir)
	if err := os.WriteFile(filepath.Join(d.CNIDir, "10-floetest.conflist"), []byte(conf), 0o644); err != nil {
		d.t.Fatal(err)
	}
}

// Start launches the daemon and waits until it answers Version.
func (d *Daemon) Start() {
	d.t.Helper()
	logf, err := os.OpenFile(d.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		d.t.Fatal(err)
	}
	defer logf.Close()
	bin := FloeBinary(d.t)
	env := append(os.Environ(), d.Env...)
	if d.crashAt != "" {
		bin = FailpointBinary(d.t)
		env = append(env, failpoint.EnvVar+"="+d.crashAt)
	}
	d.cmd = exec.Command(bin, d.args...)
	d.cmd.Env = env
	d.cmd.Stdout = logf
	d.cmd.Stderr = logf
	// Its own process group, so the test's signals do not reach it.
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := d.cmd.Start(); err != nil {
		d.t.Fatal(err)
	}
	d.waitErr = make(chan error, 1)
	cmd := d.cmd
	go func() { d.waitErr <- cmd.Wait() }()
	d.conn = DialCRI(d.t, d.Socket)
	d.Runtime = runtimeapi.NewRuntimeServiceClient(d.conn)
	d.Images = runtimeapi.NewImageServiceClient(d.conn)
	WaitStarted(d.t, "floe", d.waitErr, 20*time.Second, 5*time.Millisecond, func(ctx context.Context) error {
		_, err := d.Runtime.Version(ctx, &runtimeapi.VersionRequest{})
		return err
	}, func() string {
		return fmt.Sprintf("processes holding its state lock: %v\n%s", FileHolders(filepath.Join(d.StateDir, "floe.lock")), d.Log())
	})
}

// CrashAt arms a failpoint (internal/failpoint) for every later Start:
// the daemon then runs as the test build with failpoints compiled in and
// kills itself at step. "" disarms it, and Start runs the normal build.
func (d *Daemon) CrashAt(step string) { d.crashAt = step }

// PID is the running daemon's process id.
func (d *Daemon) PID() int {
	d.t.Helper()
	if d.cmd == nil {
		d.t.Fatal("daemon not running")
	}
	return d.cmd.Process.Pid
}

// WaitExit waits up to limit for the daemon to exit by itself (a failpoint
// killed it) and reports whether it did. The daemon counts as killed.
func (d *Daemon) WaitExit(limit time.Duration) bool {
	d.t.Helper()
	if d.cmd == nil {
		return true
	}
	select {
	case err := <-d.waitErr:
		d.waitErr <- err
		d.killed = true
		if d.conn != nil {
			d.conn.Close()
			d.conn = nil
		}
		d.cmd = nil
		return true
	case <-time.After(limit):
		return false
	}
}

// Running reports whether the daemon process is still up.
func (d *Daemon) Running() bool {
	if d.cmd == nil {
		return false
	}
	select {
	case err := <-d.waitErr:
		d.waitErr <- err
		return false
	default:
		return true
	}
}

// Signal sends sig to the running daemon.
func (d *Daemon) Signal(sig syscall.Signal) {
	d.t.Helper()
	if d.cmd == nil {
		d.t.Fatal("daemon not running")
	}
	d.cmd.Process.Signal(sig)
}

// StopLeavingContainers sends SIGTERM while containers run: their root
// filesystems stay mounted by design, so the store check is skipped.
func (d *Daemon) StopLeavingContainers() {
	d.t.Helper()
	d.containersLeft = true
	d.Stop()
	d.containersLeft = false
}

// Kill9 kills the daemon with SIGKILL, as a crash would.
func (d *Daemon) Kill9() {
	d.t.Helper()
	d.killed = true
	d.stopProcess(syscall.SIGKILL)
}

// Stop sends SIGTERM and waits for a clean exit.
func (d *Daemon) Stop() {
	d.t.Helper()
	d.checkNoPanics()
	if err := d.stopProcess(syscall.SIGTERM); err != nil {
		d.t.Errorf("floe did not exit cleanly on SIGTERM: %v\n%s", err, d.Log())
	}
	d.checkStoreUnmounted()
}

// checkStoreUnmounted fails the test when a daemon stopped with SIGTERM
// left its image store mounted. It only looks at the daemon's own store,
// so it holds while other tests on the host mount things.
func (d *Daemon) checkStoreUnmounted() {
	if d.killed || d.containersLeft {
		return
	}
	if m := append(MountsUnder(d.StorageRoot), MountsUnder(d.StorageRunRoot)...); len(m) > 0 {
		d.t.Errorf("floe left its image store mounted after SIGTERM: %s", strings.Join(m, ", "))
	}
}

func (d *Daemon) stopProcess(sig syscall.Signal) error {
	if d.conn != nil {
		d.conn.Close()
		d.conn = nil
	}
	if d.cmd == nil {
		return nil
	}
	d.cmd.Process.Signal(sig)
	var err error
	select {
	case err = <-d.waitErr:
	case <-time.After(40 * time.Second):
		d.cmd.Process.Kill()
		err = <-d.waitErr
	}
	d.cmd = nil
	return err
}

// Log returns the daemon's log so far.
func (d *Daemon) Log() string {
	b, _ := os.ReadFile(d.LogPath)
	return string(b)
}

// Ctx returns a context with a timeout suited to one RPC.
func Ctx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// cleanup removes every sandbox the daemon still has, stops it, and deletes
// its bridge and directories.
func (d *Daemon) cleanup() {
	if d.cmd != nil && d.conn != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		if resp, err := d.Runtime.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{}); err == nil {
			for _, sb := range resp.Items {
				d.Runtime.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: sb.Id})
			}
		}
		cancel()
	}
	d.checkNoPanics()
	if d.cmd != nil {
		d.stopProcess(syscall.SIGTERM)
	}
	if d.t.Failed() {
		d.t.Logf("floe log:\n%s", d.Log())
	}
	exec.Command("ip", "link", "del", d.Bridge).Run()
	d.checkStoreUnmounted()
	// A daemon that crashed or was killed can leave layer mounts in its
	// store; removing the tree under them would delete through them.
	UnmountUnder(d.t, d.Dir)
	os.RemoveAll(d.Dir)
}

// MountsUnder lists the mount points at or below dir.
func MountsUnder(dir string) []string {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	var mps []string
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
			mps = append(mps, f[4])
		}
	}
	return mps
}

// UnmountUnder lazily unmounts every mount at or below dir, deepest first.
func UnmountUnder(t testing.TB, dir string) {
	mps := MountsUnder(dir)
	sort.Sort(sort.Reverse(sort.StringSlice(mps)))
	for _, mp := range mps {
		if err := syscall.Unmount(mp, syscall.MNT_DETACH); err != nil {
			t.Logf("unmount %s: %v", mp, err)
		}
	}
}

// Run is exec with a timeout, returning combined output.
func Run(t testing.TB, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// MustRun is Run that fails the test on error.
func MustRun(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := Run(t, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

// RemoveBinary deletes the binaries FloeBinary, FailpointBinary and GoBinary built; call it from TestMain
// after the tests ran.
func RemoveBinary() {
	for _, b := range floeBuilds {
		if b.bin != "" {
			os.RemoveAll(filepath.Dir(b.bin))
		}
	}
	// And what GoBinary built, each in a directory of its own.
	goBinMu.Lock()
	defer goBinMu.Unlock()
	for pkg, bin := range goBins {
		os.RemoveAll(filepath.Dir(bin))
		delete(goBins, pkg)
	}
}

// FileHolders lists the processes ("pid cmdline") with path open.
func FileHolders(path string) []string {
	var out []string
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		fds, err := os.ReadDir(filepath.Join("/proc", p.Name(), "fd"))
		if err != nil {
			continue
		}
		for _, fd := range fds {
			if target, err := os.Readlink(filepath.Join("/proc", p.Name(), "fd", fd.Name())); err == nil && target == path {
				cmdline, _ := os.ReadFile(filepath.Join("/proc", p.Name(), "cmdline"))
				out = append(out, p.Name()+" "+strings.ReplaceAll(string(cmdline), "\x00", " "))
				break
			}
		}
	}
	return out
}

// WaitStateLockFree waits up to limit until no process has the daemon's
// state lock file open (a killed daemon's children must not keep it) and
// returns the holders left.
func (d *Daemon) WaitStateLockFree(limit time.Duration) []string {
	path := filepath.Join(d.StateDir, "floe.lock")
	deadline := time.Now().Add(limit)
	for {
		h := FileHolders(path)
		if len(h) == 0 || time.Now().After(deadline) {
			return h
		}
		time.Sleep(50 * time.Millisecond)
	}
}

var (
	goBinMu sync.Mutex
	goBins  = map[string]string{}
)

// GoBinary builds a main package of this module (e.g. "./test/nriplugin")
// once per test process and returns its path.
func GoBinary(t testing.TB, pkg string) string {
	t.Helper()
	goBinMu.Lock()
	defer goBinMu.Unlock()
	if bin, ok := goBins[pkg]; ok {
		return bin
	}
	_, file, _, _ := runtime.Caller(0)
	dir, err := os.MkdirTemp("", "floe-gobin-")
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-o", bin, pkg)
	cmd.Dir = filepath.Join(filepath.Dir(file), "..", "..")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, out)
	}
	goBins[pkg] = bin
	return bin
}
