package bench

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// BenchmarkPodStartUsernsVsHost times RunPodSandbox + CreateContainer +
// StartContainer of a busybox sleep in a pod with its own user namespace
// (hostUsers: false, the kubelet's one mapping of 65536 ids) against the
// same pod in the host's user namespace. The two alternate, each going
// first every other iteration, so both see the same load; ratio-median is the cost of the user namespace (pod init
// cloned into user+net+ipc+uts and stopped, idmapped layers and volumes).
//
//	go test ./bench -run '^$' -bench PodStartUsernsVsHost -benchtime 20x
func BenchmarkPodStartUsernsVsHost(b *testing.B) {
	cb := newContainerBench(b)
	m := []*runtimeapi.IDMapping{{ContainerId: 0, HostId: 1 << 20, Length: 65536}}
	userns := &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_POD, Uids: m, Gids: m}
	var withNS, host []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		// Which goes first alternates, as in BenchmarkSideBySide: the
		// second of a pair runs after the first's teardown.
		order := []*runtimeapi.UserNamespace{nil, userns}
		if i%2 == 1 {
			order = []*runtimeapi.UserNamespace{userns, nil}
		}
		for _, u := range order {
			start := time.Now()
			pod := cb.podWith(b, false, u)
			took := time.Since(start)
			b.StopTimer()
			if b.Failed() {
				b.FailNow()
			}
			if u == nil {
				host = append(host, took)
			} else {
				withNS = append(withNS, took)
			}
			cb.removePod(b, pod)
			b.StartTimer()
		}
	}
	b.StopTimer()
	report(b, "userns", withNS)
	report(b, "host", host)
	b.ReportMetric(float64(median(withNS))/float64(median(host)), "ratio-median")
	b.ReportMetric(float64(pct(withNS, 90))/float64(pct(host, 90)), "ratio-p90")
}

// BenchmarkUsernsDiskUse runs pods of one busybox container each, first in
// user namespaces of their own (each pod its own 65536 ids, as the kubelet
// picks them), then in the host's, and reports how much the image store
// grew per pod for each: `du` of the store root, each inode once, not
// crossing mounts (a running container's overlay is a mount). Idmapped
// layers keep a user-namespaced pod's cost that of any pod; image-KB is
// what a chowned copy of the image per pod would add instead.
//
//	go test ./bench -run '^$' -bench UsernsDiskUse -benchtime 1x
func BenchmarkUsernsDiskUse(b *testing.B) {
	measureOnce(b, func(r *onceResult) {
		const pods = 10
		cb := newContainerBench(b)
		before := diskUse(b, cb.d.StorageRoot)
		grow := func(userns bool) float64 {
			start := diskUse(b, cb.d.StorageRoot)
			var ids []string
			for i := 0; i < pods; i++ {
				var u *runtimeapi.UserNamespace
				if userns {
					m := []*runtimeapi.IDMapping{{ContainerId: 0, HostId: uint32(1<<20 + i*65536), Length: 65536}}
					u = &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_POD, Uids: m, Gids: m}
				}
				ids = append(ids, cb.podWith(b, false, u))
			}
			grown := diskUse(b, cb.d.StorageRoot) - start
			for _, id := range ids {
				cb.removePod(b, id)
			}
			if b.Failed() {
				b.FailNow()
			}
			return float64(grown) / pods / 1024
		}
		withNS, host := grow(true), grow(false)
		r.report(b, withNS, "userns-KB/pod")
		r.report(b, host, "host-KB/pod")
		r.report(b, float64(before)/1024, "store-KB")
		img, err := cb.d.Images.ImageStatus(context.Background(), &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: cb.image}})
		if err != nil {
			b.Fatal(err)
		}
		r.report(b, float64(img.GetImage().GetSize())/1024, "image-KB")
		r.logf(b, "%d pods each way: user namespace %.0f KB/pod, host %.0f KB/pod; a chowned copy would add ~%d KB/pod",
			pods, withNS, host, img.GetImage().GetSize()/1024)
	})
}

// diskUse is the space allocated under root, as du -sx counts it.
func diskUse(b *testing.B, root string) int64 {
	b.Helper()
	rootSt, err := os.Lstat(root)
	if err != nil {
		b.Fatal(err)
	}
	dev := rootSt.Sys().(*syscall.Stat_t).Dev
	seen := map[uint64]bool{}
	var total int64
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // removed while walking
			}
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		st := fi.Sys().(*syscall.Stat_t)
		if st.Dev != dev {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if seen[st.Ino] {
			return nil
		}
		seen[st.Ino] = true
		total += st.Blocks * 512
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return total
}
