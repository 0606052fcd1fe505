package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/floe-cri/floe/internal/inspect"
	"github.com/floe-cri/floe/internal/nri"
)

const inspectUsage = "usage: floe inspect pod|container ID|NAME [--json]"

func inspectCmd(args []string) error {
	if len(args) == 0 || (args[0] != "pod" && args[0] != "container") {
		return fmt.Errorf(inspectUsage)
	}
	kind := args[0]
	args = args[1:]
	var asJSON bool
	cfg, rest, err := parseWithConfig("inspect", "pod|container ID|NAME", args, func(fs *flag.FlagSet) {
		fs.BoolVar(&asJSON, "json", false, "print the report as JSON")
	})
	if err != nil {
		return err
	}
	if len(rest) != 1 {
		return fmt.Errorf(inspectUsage)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client := inspect.NewClient(cfg.InspectSocketPath())
	var report any
	var print func()
	if kind == "pod" {
		pod, err := client.Pod(ctx, rest[0])
		if err != nil {
			return err
		}
		report, print = pod, func() { printPod(os.Stdout, pod) }
	} else {
		c, err := client.Container(ctx, rest[0])
		if err != nil {
			return err
		}
		report, print = c, func() { printContainer(os.Stdout, c) }
	}
	if asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(report)
	}
	print()
	return nil
}

func printContainer(out io.Writer, c *inspect.Container) {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	line := func(k, f string, a ...any) { fmt.Fprintf(w, "%s\t%s\n", k, fmt.Sprintf(f, a...)) }
	line("Container", "%s (attempt %d) in pod %s/%s", c.Name, c.Attempt, c.PodNamespace, c.PodName)
	line("ID", "%s", c.ID)
	line("Pod ID", "%s", c.PodID)
	state := c.State
	if c.State == "exited" {
		state = fmt.Sprintf("exited with %d (%s) at %s", c.ExitCode, c.Reason, c.FinishedAt.Format(time.RFC3339))
	}
	line("State", "%s", state)
	line("Image", "%s (%s)", c.Image, c.ImageRef)
	line("Runtime", "handler %s: %s, state root %s", c.Handler, c.RuntimePath, orNone(c.RuntimeRoot))
	line("Runtime state", "%s", c.RuntimeState)
	if c.Pid != 0 {
		line("PIDs", "init %d, all %v; conmon %d", c.Pid, c.Pids, c.ConmonPid)
	} else if c.ConmonPid != 0 {
		line("Conmon", "%d", c.ConmonPid)
	}
	line("Cgroup", "%s", orNone(c.CgroupsPath))
	line("Log", "%s", c.LogPath)
	line("Bundle", "%s", c.Bundle)
	line("Rootfs", "%s", orNone(c.Rootfs))
	for i, m := range c.Mounts {
		k := ""
		if i == 0 {
			k = "Mounts"
		}
		line(k, "%s", m)
	}
	w.Flush()
}

func printPod(out io.Writer, p *inspect.Pod) {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	line := func(k, f string, a ...any) { fmt.Fprintf(w, "%s\t%s\n", k, fmt.Sprintf(f, a...)) }
	line("Pod", "%s/%s (uid %s, attempt %d)", p.Namespace, p.Name, p.UID, p.Attempt)
	line("ID", "%s", p.ID)
	line("State", "%s since %s, runtime handler %s", p.State, p.CreatedAt.Format(time.RFC3339), p.RuntimeHandler)
	switch {
	case p.HostNetwork:
		line("Network", "host network (no netns, no CNI)")
	default:
		line("IPs", "%s", orNone(strings.Join(p.IPs, ", ")))
		line("Netns", "%s (%s)", p.NetnsName, p.NetnsPath)
		if hl := p.HostLink; hl != nil && hl.Name != "" {
			line("Host veth", "%s (ifindex %d, %s) on bridge %s", hl.Name, hl.Index, hl.MAC, orNone(hl.Bridge))
			line("Pod side", "%s (ifindex %d, %s, %s)", hl.PodIfName, hl.PodIfIndex, hl.PodMAC, hl.PodLinkType)
		} else if p.HostLinkError != "" {
			line("Host veth", "unknown: %s", p.HostLinkError)
		}
		if p.CNINetwork != "" {
			line("CNI", "network %q from %s", p.CNINetwork, p.CNIConfigFile)
		}
	}
	if p.IPCPath != "" || p.UTSPath != "" {
		line("IPC/UTS ns", "%s %s", orNone(p.IPCPath), orNone(p.UTSPath))
	}
	line("Cgroup parent", "%s", orNone(p.CgroupParent))
	if p.PodInitPid != 0 {
		line("Pod init", "pid %d (PID 1 of the shared PID namespace)", p.PodInitPid)
	}
	for i, c := range p.Containers {
		k := ""
		if i == 0 {
			k = "Containers"
		}
		pid := ""
		if c.Pid != 0 {
			pid = fmt.Sprintf(", pid %d", c.Pid)
		}
		line(k, "%s %s (%s%s)", c.ID[:13], c.Name, c.State, pid)
	}
	line("Run dir", "%s", p.RunDir)
	if p.NetnsName != "" && p.State == "ready" {
		line("Try", "ip netns exec %s ip addr", p.NetnsName)
		if hl := p.HostLink; hl != nil && hl.Name != "" {
			line("", "ip -d link show %s", hl.Name)
		}
	}
	w.Flush()
}

func orNone(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func pods(args []string) error {
	cfg, err := loadConfig("pods", args)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	list, err := inspect.NewClient(cfg.InspectSocketPath()).Pods(ctx)
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "POD ID\tNAMESPACE/NAME\tSTATE\tIP\tNETNS\tCREATED")
	for _, p := range list {
		ip := "-"
		if len(p.IPs) > 0 {
			ip = p.IPs[0]
		}
		fmt.Fprintf(w, "%s\t%s/%s\t%s\t%s\t%s\t%s\n", p.ID[:13], p.Namespace, p.Name, p.State, ip, orNone(p.NetnsName), p.CreatedAt.Format(time.RFC3339))
	}
	return w.Flush()
}

func status(args []string) error {
	cfg, err := loadConfig("status", args)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := grpc.NewClient("unix://"+cfg.Socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	rt := runtimeapi.NewRuntimeServiceClient(conn)
	ver, err := rt.Version(ctx, &runtimeapi.VersionRequest{})
	if err != nil {
		return fmt.Errorf("floe is not answering on %s: %w", cfg.Socket, err)
	}
	st, err := rt.Status(ctx, &runtimeapi.StatusRequest{})
	if err != nil {
		return fmt.Errorf("Status: %w", err)
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "floe\t%s %s (CRI %s), up on %s\n", ver.RuntimeName, ver.RuntimeVersion, ver.RuntimeApiVersion, cfg.Socket)
	for _, c := range st.Status.Conditions {
		detail := ""
		if !c.Status {
			detail = fmt.Sprintf("  %s: %s", c.Reason, c.Message)
		}
		fmt.Fprintf(w, "%s\t%v%s\n", c.Type, c.Status, detail)
	}
	if in, err := inspect.NewClient(cfg.InspectSocketPath()).Info(ctx); err == nil {
		fmt.Fprintf(w, "Config files\t%s\n", orNone(strings.Join(in.ConfigFiles, ", ")))
		fmt.Fprintf(w, "Cgroup driver\t%s\n", in.CgroupDriver)
		if in.Cgroups != nil {
			fmt.Fprintf(w, "Cgroups\t%s\n", in.Cgroups.Summary())
		}
		if in.UserNamespaces != nil {
			fmt.Fprintf(w, "Pod user namespaces\t%s\n", in.UserNamespaces)
		}
		if in.LSM != nil {
			fmt.Fprintf(w, "LSMs\t%s\n", in.LSM)
		}
		if a := in.AutoUserNamespaces; a != nil {
			if a.Available {
				fmt.Fprintf(w, "Automatic user namespace ids\t%d uids, %d gids from %s\n", a.UIDs, a.GIDs, a.Source)
			} else {
				fmt.Fprintf(w, "Automatic user namespace ids\tnone: %s\n", a.Reason)
			}
		}
		fmt.Fprintf(w, "State / run dir\t%s  %s\n", in.StateDir, in.RunDir)
		for _, name := range slices.Sorted(maps.Keys(in.Runtimes)) {
			r := in.Runtimes[name]
			root := r.Root
			if root == "" {
				root = "runtime default"
			}
			def := ""
			if name == in.DefaultRuntime {
				def = " (default)"
			}
			usable := "usable"
			if r.Probe != nil && r.Probe.Usable {
				usable = fmt.Sprintf("usable (trial container made and deleted in %v)", r.Probe.Duration.Round(time.Millisecond))
			}
			if r.Problem != "" {
				usable = "UNUSABLE: " + r.Problem
			}
			fmt.Fprintf(w, "Runtime %s%s\t%s, state root %s, %s\n", name, def, r.Path, root, usable)
		}
		if in.CNIError != "" {
			fmt.Fprintf(w, "CNI\t%s\n", in.CNIError)
		} else {
			fmt.Fprintf(w, "CNI\tnetwork %q from %s\n", in.CNINetwork, in.CNIConfigFile)
		}
		if in.Storage != nil {
			fmt.Fprintf(w, "Storage\t%s at %s (run root %s, options %s)\n", in.Storage.Driver, in.Storage.Root, in.Storage.RunRoot, orNone(strings.Join(in.Storage.MountOptions, ",")))
		}
		fmt.Fprintf(w, "NRI\t%s\n", nriLine(in.NRI))
		if in.CDI != nil {
			fmt.Fprintf(w, "CDI\tspec dirs %s; devices %s\n", strings.Join(in.CDI.SpecDirs, ", "), orNone(strings.Join(in.CDI.Devices, ", ")))
			for _, e := range in.CDI.Errors {
				fmt.Fprintf(w, "\tspec error: %s\n", e)
			}
		}
		fmt.Fprintf(w, "Metrics\t%s\n", orNone(in.MetricsAddress))
		fmt.Fprintf(w, "Inspect endpoint\t%s\n", in.InspectSocket)
	} else {
		fmt.Fprintf(w, "Inspect endpoint\tunavailable: %v\n", err)
	}
	return w.Flush()
}

// nriLine is NRI's line in `floe status`.
func nriLine(st nri.Status) string {
	if !st.Enabled {
		return "disabled"
	}
	socket := st.Socket
	if socket == "" {
		socket = "no external plugins (" + st.SocketProblem + ")"
	}
	plugins := fmt.Sprintf("%d plugin(s) connected", st.Plugins)
	if len(st.Names) > 0 {
		plugins += ": " + strings.Join(st.Names, ", ")
	}
	return fmt.Sprintf("socket %s; %s", socket, plugins)
}
