package server

import (
	"strings"
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestSendInChunksKeepsEveryItemOnceUnderTheLimit(t *testing.T) {
	big := strings.Repeat("x", 100<<10) // 100 KiB label value
	var items []*runtimeapi.PodSandbox
	for i := 0; i < 200; i++ { // ~20 MiB in all
		items = append(items, &runtimeapi.PodSandbox{Id: string(rune('a'+i%26)) + big[:10], Labels: map[string]string{"v": big}})
	}
	var chunks, total int
	err := sendInChunks(items, func(c []*runtimeapi.PodSandbox) error {
		chunks++
		size := 0
		for _, it := range c {
			size += len(it.Labels["v"])
		}
		if size > streamChunkBytes {
			t.Errorf("chunk of %d bytes exceeds the limit", size)
		}
		total += len(c)
		return nil
	})
	if err != nil || total != len(items) || chunks < 5 {
		t.Errorf("err %v, %d items in %d chunks", err, total, chunks)
	}
	chunks = 0
	sendInChunks([]*runtimeapi.PodSandbox(nil), func(c []*runtimeapi.PodSandbox) error { chunks++; return nil })
	if chunks != 1 {
		t.Errorf("empty list sent %d responses", chunks)
	}
}
