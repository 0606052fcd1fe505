package bench

import (
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// BenchmarkPodStartUsernsVsHost times RunPodSandbox + CreateContainer +
// StartContainer of a busybox sleep in a pod with its own user namespace
// (hostUsers: false, the kubelet's one mapping of 65536 ids) against the
// same pod in the host's user namespace. The two alternate so both see
// the same load; ratio-median is the cost of the user namespace (pod init
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
		for _, u := range []*runtimeapi.UserNamespace{nil, userns} {
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
