package main

// commandHelp is the description printed by `floe COMMAND --help`.
var commandHelp = map[string]string{
	"serve": `Run the floe daemon: serve the CRI on --socket, the inspect endpoint on
--inspect-socket and Prometheus metrics on --metrics-address. Configuration
comes from --config (default /etc/floe/floe.toml), then floe.d/*.toml beside
it in name order, then these flags. SIGTERM/SIGINT stop serving and leave
pods running; SIGHUP reloads the log level.`,
	"config": `Print the effective configuration (defaults, files, flags) as commented
TOML that can be copied to /etc/floe/floe.toml.`,
	"status": `Ask the daemon whether it is up: version, RuntimeReady and NetworkReady
with their reasons, runtime handlers, the CNI configuration in use and where
metrics are served. Exits 1 when the daemon does not answer.`,
	"inspect": `inspect pod: everything about one pod on one screen: metadata, state, IPs,
the pinned network namespace (name and path), the host-side veth with its
ifindex and bridge, the CNI network and result, the cgroup parent, its
containers and the commands that show the same with ordinary tools. A pod
is named by id, id prefix, name or namespace/name.

inspect container: state and exit, image, runtime handler with its state
root and the 'runc state' command that works, init pid and every pid of the
container's cgroup, conmon pid, cgroup, log path, bundle, rootfs, mounts. A
container is named by id, id prefix, a unique name or namespace/pod/name.

--json prints the report as JSON.`,
	"pods": `List pods: id, namespace/name, state, IP and netns name.`,
}
