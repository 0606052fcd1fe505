# Shared by hack/conformance.sh and hack/node-e2e.sh (sourced, not run): a
# floe of the repository's bin/ on its own socket, state dir, run dir,
# inspect socket and CNI network, and a snapshot of what a run could leave
# on the host. The caller sets ROOT and D (a scratch dir it removes).

# write_cni_conflist NAME BRIDGE SUBNET: a bridge network with its own
# host-local IPAM dir under $D, so reservations are checked per run.
write_cni_conflist() {
  mkdir -p "$D/cni" "$D/ipam"
  cat >"$D/cni/10-$1.conflist" <<CONF
{
  "cniVersion": "1.0.0",
  "name": "$1",
  "plugins": [
    {"type": "bridge", "bridge": "$2", "isGateway": true, "ipMasq": true, "hairpinMode": true,
     "ipam": {"type": "host-local", "dataDir": "$D/ipam", "routes": [{"dst": "0.0.0.0/0"}],
              "ranges": [[{"subnet": "$3"}]]}},
    {"type": "portmap", "capabilities": {"portMappings": true}},
    {"type": "loopback"}
  ]
}
CONF
}

# ipam_left NAME: IP reservations still held in network NAME.
ipam_left() {
  ls -A "$D/ipam/$1" 2>/dev/null | grep -v '^last_reserved_ip\|^lock$' || true
}

# host_snapshot: netns, veths, mounts and runtime processes, one per line.
host_snapshot() {
  { ip netns list | awk '{print "netns " $1}'
    ip -o link show type veth | awk -F': ' '{print "veth " $2}' | cut -d@ -f1
    awk '{print "mount " $5}' /proc/self/mountinfo
    # Zombies are not leaks: PID 1 reaps orphans in its own time.
    ps -eo pid=,stat=,comm= | awk '$2 !~ /Z/ && $3 ~ /^(conmon|runc|floe-pod-init|runsc.*)$/ {print "proc " $1 " " $3}'
  } | sort
}

# start_private_floe [floe serve flags...]: starts bin/floe on $D's paths
# (its NRI socket is $D/nri.sock), configured by $FLOE_CONFIG (default:
# the built-in defaults), with its log in $D/floe.log and without the host
# lock's descriptor (fd 9: conmon would inherit it and keep the lock after
# the run); sets floe_pid.
start_private_floe() {
  "$ROOT/bin/floe" serve --config "${FLOE_CONFIG:-/dev/null}" \
    --socket "$D/floe.sock" --state-dir "$D/state" --run-dir "$D/run" \
    --inspect-socket "$D/inspect.sock" --metrics-address "" \
    --cni-config-dir "$D/cni" --nri-socket "$D/nri.sock" --log-level debug "$@" >"$D/floe.log" 2>&1 9>&- &
  floe_pid=$!
  for _ in $(seq 100); do [[ -S $D/floe.sock ]] && break; sleep 0.1; done
  [[ -S $D/floe.sock ]] || { tail -30 "$D/floe.log"; echo "floe did not start" >&2; return 1; }
}

# stop_private_floe: SIGTERM and wait; idempotent.
stop_private_floe() {
  if [[ -n ${floe_pid:-} ]]; then
    kill "$floe_pid" 2>/dev/null || true
    wait "$floe_pid" 2>/dev/null || true
    floe_pid=""
  fi
}

# unmount_under DIR: whatever is still mounted below DIR, deepest first.
unmount_under() {
  grep -o " $1[^ ]*" /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
}
