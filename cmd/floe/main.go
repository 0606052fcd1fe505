// Command floe is a Kubernetes container runtime (CRI). This file is only
// the command line: parsing, and handing over to internal/daemon.
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/floe-cri/floe/internal/config"
	"github.com/floe-cri/floe/internal/daemon"
	"github.com/floe-cri/floe/internal/nspin"
	"github.com/floe-cri/floe/internal/podinit"
	"github.com/floe-cri/floe/internal/version"
)

const usage = `floe - a Kubernetes container runtime (CRI)

Usage:
  floe serve [flags]     run the daemon
  floe config [flags]    print the effective configuration as commented TOML
  floe version           print the version

Run 'floe COMMAND --help' for a command's flags.
`

func main() {
	// The namespace-pinning helper is floe re-executed; it must run before
	// anything else touches the process.
	if len(os.Args) > 1 && os.Args[1] == nspin.HelperArg {
		nspin.HelperMain(os.Args[2:])
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
	case "version", "--version":
		fmt.Printf("floe %s (CRI %s)\n", version.Version, version.CRIAPIVersion)
	case "help", "-h", "--help":
		fmt.Print(usage)
	default:
		fmt.Fprintf(os.Stderr, "floe: unknown command %q\n\n%s", os.Args[1], usage)
		os.Exit(2)
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
}

// loadConfig parses the flags and layers file, drop-ins and flags.
func loadConfig(cmd string, args []string) (*config.Config, error) {
	fs := flag.NewFlagSet("floe "+cmd, flag.ContinueOnError)
	file := fs.String("config", config.DefaultFile, "configuration file; drop-ins are read from floe.d/*.toml beside it")
	values := map[string]*string{}
	for _, f := range configFlags {
		values[f.name] = fs.String(f.name, "", f.help)
	}
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: floe %s [flags]\n\nFlags override the configuration file, which overrides built-in defaults.\n\n", cmd)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	explicit := false
	fs.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "config" })
	cfg, err := config.Load(*file, explicit, daemon.DropInDir(*file))
	if err != nil {
		return nil, err
	}
	var flagErr error
	fs.Visit(func(f *flag.Flag) {
		if flagErr == nil && f.Name != "config" {
			flagErr = cfg.ApplyFlag(f.Name, *values[f.Name])
		}
	})
	return cfg, flagErr
}

func serve(args []string) error {
	cfg, err := loadConfig("serve", args)
	if err != nil {
		if err == flag.ErrHelp {
			return nil
		}
		return err
	}
	return daemon.Run(cfg)
}

func printConfig(args []string) error {
	cfg, err := loadConfig("config", args)
	if err != nil {
		if err == flag.ErrHelp {
			return nil
		}
		return err
	}
	out, err := cfg.Render()
	if err != nil {
		return err
	}
	_, err = os.Stdout.Write(out)
	return err
}
