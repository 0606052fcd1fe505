// Command floe is a Kubernetes container runtime (CRI). This file is only
// the command line: parsing, and handing over to internal/daemon.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"runtime"
	"strings"

	"github.com/floe-cri/floe/internal/config"
	"github.com/floe-cri/floe/internal/daemon"
	"github.com/floe-cri/floe/internal/podinit"
	"github.com/floe-cri/floe/internal/version"

	"go.podman.io/storage/pkg/reexec"
)

const usage = `floe - a Kubernetes container runtime (CRI)

Usage:
  floe serve [flags]               run the daemon
  floe config [flags]              print the effective configuration as commented TOML
  floe status [flags]              is the daemon up: version, conditions, handlers, CNI
  floe inspect pod ID|NAME [flags] one screen on a pod: netns, host veth, bridge, IPs, cgroup
  floe inspect container ID|NAME   one screen on a container: pids, conmon, runc state command, log
  floe pods [flags]                short listing of pods
  floe version                     print the version

Run 'floe COMMAND --help' for a command's flags.
`

// Keep the main goroutine on the main thread for the life of the process.
// internal/nspin moves locked threads into pod namespaces and lets Go
// destroy them; Go cannot destroy the main thread, so no other goroutine
// may ever run on it.
func init() { runtime.LockOSThread() }

func main() {
	// containers/storage re-executes floe for some layer operations (for
	// example applying a layer in a chroot); those children must run the
	// registered function and exit before anything else happens.
	if reexec.Init() {
		return
	}
	if podinit.IsHelper(os.Args) {
		podinit.Main()
	}
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(os.Args[2:])
	case "config":
		err = printConfig(os.Args[2:])
	case "status":
		err = status(os.Args[2:])
	case "inspect":
		err = inspectCmd(os.Args[2:])
	case "pods", "ps":
		err = pods(os.Args[2:])
	case "version", "--version":
		fmt.Printf("floe %s (CRI %s)\n", version.Version, version.CRIAPIVersion)
	case "help", "-h", "--help":
		fmt.Print(usage)
	default:
		fmt.Fprintf(os.Stderr, "floe: unknown command %q\n\n%s", os.Args[1], usage)
		os.Exit(2)
	}
	if errors.Is(err, flag.ErrHelp) {
		err = nil
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "floe: %v\n", err)
		os.Exit(1)
	}
}

// configFlags are the flags shared by serve and config: each overrides the
// option of the same name from the files.
var configFlags = []struct{ name, help string }{
	{"socket", "CRI socket path (default /run/floe/floe.sock)"},
	{"state-dir", "persistent state directory (default /var/lib/floe)"},
	{"run-dir", "volatile state directory (default /run/floe)"},
	{"cni-config-dir", "CNI configuration directory (default /etc/cni/net.d)"},
	{"cni-plugin-dirs", "CNI plugin directories, colon-separated (default /usr/lib/cni:/opt/cni/bin)"},
	{"cgroup-manager", "cgroup driver: cgroupfs or systemd (default cgroupfs)"},
	{"log-level", "log level: debug, info, warn, error (default info)"},
	{"log-format", "log format: text or json (default text)"},
	{"netns-dir", "where pod network namespaces are pinned (default /run/netns)"},
	{"inspect-socket", "HTTP inspect endpoint socket (default RUN_DIR/inspect.sock)"},
	{"metrics-address", "host:port for Prometheus /metrics, empty to disable (default 127.0.0.1:9537, skipped with a warning when taken)"},
	{"storage-root", "image and layer store root (default /var/lib/containers/storage)"},
	{"storage-run-root", "volatile store state (default /run/containers/storage)"},
	{"storage-driver", "storage driver: overlay or vfs (default overlay)"},
	{"registries-config", "registries.conf path (default /etc/containers/registries.conf)"},
	{"nri-socket", "socket external NRI plugins connect to, empty for none (default /var/run/nri/nri.sock)"},
	{"cdi-spec-dirs", "CDI spec directories, colon-separated (default /etc/cdi:/var/run/cdi)"},
}

// loadConfig parses the flags and layers file, drop-ins and flags.
func loadConfig(cmd string, args []string) (*config.Config, error) {
	cfg, rest, err := parseWithConfig(cmd, "", args, nil)
	if err == nil && len(rest) > 0 {
		err = fmt.Errorf("unexpected arguments: %s", strings.Join(rest, " "))
	}
	return cfg, err
}

// parseWithConfig parses a command's flags, including the configuration
// flags, and returns the effective configuration and the positional
// arguments. extra registers the command's own flags.
func parseWithConfig(cmd, positional string, args []string, extra func(*flag.FlagSet)) (*config.Config, []string, error) {
	fs := flag.NewFlagSet("floe "+cmd, flag.ContinueOnError)
	file := fs.String("config", config.DefaultFile, "configuration file; drop-ins are read from floe.d/*.toml beside it")
	values := map[string]*string{}
	for _, f := range configFlags {
		values[f.name] = fs.String(f.name, "", f.help)
	}
	own := map[string]bool{}
	if extra != nil {
		before := map[string]bool{}
		fs.VisitAll(func(f *flag.Flag) { before[f.Name] = true })
		extra(fs)
		fs.VisitAll(func(f *flag.Flag) { own[f.Name] = !before[f.Name] })
	}
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: floe %s [flags] %s\n\n%s\n\nFlags (configuration flags override the file, which overrides built-in defaults):\n", cmd, positional, commandHelp[cmd])
		fs.PrintDefaults()
	}
	// Flags may follow positional arguments ("inspect pod web --json").
	var positionals []string
	for rest := args; ; {
		if err := fs.Parse(rest); err != nil {
			return nil, nil, err
		}
		if fs.NArg() == 0 {
			break
		}
		positionals = append(positionals, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	explicit := false
	fs.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "config" })
	cfg, err := config.Load(*file, explicit, daemon.DropInDir(*file))
	if err != nil {
		return nil, nil, err
	}
	var flagErr error
	fs.Visit(func(f *flag.Flag) {
		if flagErr == nil && f.Name != "config" && !own[f.Name] {
			flagErr = cfg.ApplyFlag(f.Name, *values[f.Name])
		}
	})
	return cfg, positionals, flagErr
}

func serve(args []string) error {
	cfg, err := loadConfig("serve", args)
	if err != nil {
		return err
	}
	return daemon.Run(cfg, func() (*config.Config, error) { return loadConfig("serve", args) })
}

func printConfig(args []string) error {
	cfg, err := loadConfig("config", args)
	if err != nil {
		return err
	}
	out, err := cfg.Render()
	if err != nil {
		return err
	}
	_, err = os.Stdout.Write(out)
	return err
}
