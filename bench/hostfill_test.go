package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	"golang.org/x/sys/unix"
)

const (
	// hostFillSamples floors are timed, step by step, in each host state.
	hostFillSamples = 15
	// hostFillPods is the fullest level of BenchmarkNodeFills.
	hostFillPods = 250
	// hostMountsPerPod is what one floe pod with one container adds to
	// the host's mount table: the pod's /dev/shm, its network, IPC and UTS
	// pins and the container's overlay rootfs (see NodeFills' count).
	hostMountsPerPod = 5
)

// BenchmarkFloorAsHostFills tells why the floor of BenchmarkNodeFills (and
// so every pod start) slows down as a node fills, with no runtime
// involved: the floor (ip netns add + CNI ADD + `runc run -d`), step by
// step, on the empty host; with as many extra mounts as 250 floe pods put
// in the host's mount table (empty tmpfs mounts, nothing else); and with
// 250 pods' worth of network (netns, veth on the bridge, IP) and no other
// mount. runc copies the host's whole mount table into each new
// container's mount namespace, makes it a slave and detaches it again
// after pivot_root, so `runc run` grows with the number of host mounts
// whatever made them. It takes its samples itself, once per process:
//
//	go test ./bench -run '^$' -bench FloorAsHostFills -benchtime 1x -v
func BenchmarkFloorAsHostFills(b *testing.B) {
	measureOnce(b, func(r *onceResult) {
		cb := newContainerBench(b)
		var tb strings.Builder
		fmt.Fprintf(&tb, "%-48s %8s %8s %8s %8s %8s\n", "floor step medians (ms)", "netns", "CNI ADD", "runc", "total", "mounts")
		var empty time.Duration
		row := func(name, metric string) {
			steps := map[string][]time.Duration{}
			add := func(step string, d time.Duration) { steps[step] = append(steps[step], d) }
			for range hostFillSamples {
				id, bundle, netns := floorBundle(b)
				cb.timedFloor(b, id, bundle, netns, false, add)
			}
			total := median(steps["floor ip netns add"]) + median(steps["floor CNI ADD"]) + median(steps["floor runc run -d"])
			if empty == 0 {
				empty = total
			}
			fmt.Fprintf(&tb, "%-48s %8.1f %8.1f %8.1f %8.1f %8d\n", name, ms(median(steps["floor ip netns add"])),
				ms(median(steps["floor CNI ADD"])), ms(median(steps["floor runc run -d"])), ms(total), hostMounts(b))
			r.report(b, ms(median(steps["floor runc run -d"])), metric+"-runc-ms")
			r.report(b, ms(median(steps["floor CNI ADD"])), metric+"-cniadd-ms")
			r.report(b, ratio(total, empty), metric+"/empty")
		}
		row("empty host", "empty")
		undoMounts := extraMounts(b, hostFillPods*hostMountsPerPod)
		row(fmt.Sprintf("+%d empty tmpfs mounts (%d pods' worth)", hostFillPods*hostMountsPerPod, hostFillPods), "mounts")
		undoMounts()
		undoNet := extraNetworks(b, cb, hostFillPods)
		row(fmt.Sprintf("+%d netns with veth and IP (one mount each)", hostFillPods), "networks")
		undoNet()
		r.logf(b, "\n%s", tb.String())
	})
}

// hostMounts counts the mounts in this process's (the host's) table.
func hostMounts(b *testing.B) int {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		b.Fatal(err)
	}
	return strings.Count(string(data), "\n")
}

// extraMounts mounts n small empty tmpfs under one private directory and
// returns the undo, which detaches them all at once. It is also run at
// the end of the benchmark if the caller fails before.
func extraMounts(b *testing.B, n int) func() {
	base := b.TempDir()
	if err := unix.Mount("floe-bench-base", base, "tmpfs", 0, "size=1m"); err != nil {
		b.Fatal(err)
	}
	undo := func() { unix.Unmount(base, unix.MNT_DETACH) }
	b.Cleanup(undo)
	for i := range n {
		dir := filepath.Join(base, fmt.Sprint(i))
		if err := os.Mkdir(dir, 0o755); err != nil {
			b.Fatal(err)
		}
		if err := unix.Mount("floe-bench", dir, "tmpfs", 0, "size=4k"); err != nil {
			b.Fatal(err)
		}
	}
	return undo
}

// extraNetworks makes n netns attached by the CNI conflist (veth on the
// bridge, an IP each) and returns the undo, also run at the end of the
// benchmark if the caller fails before.
func extraNetworks(b *testing.B, cb *containerBench, n int) func() {
	ctx := context.Background()
	var made []*libcni.RuntimeConf
	undo := func() {
		for _, rt := range made {
			cb.cni.DelNetworkList(ctx, cb.list, rt)
			exec.Command("ip", "netns", "del", filepath.Base(rt.NetNS)).Run()
		}
		made = nil
	}
	b.Cleanup(undo)
	for i := range n {
		name := fmt.Sprintf("floebench-net-%d-%d", os.Getpid(), i)
		if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
			b.Fatalf("ip netns add: %v %s", err, out)
		}
		rt := floorRuntimeConf(name, name)
		made = append(made, rt)
		if _, err := cb.cni.AddNetworkList(ctx, cb.list, rt); err != nil {
			b.Fatalf("CNI ADD: %v", err)
		}
	}
	return undo
}
