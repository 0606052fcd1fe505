package stats

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func writeFiles(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for p, body := range files {
		full := filepath.Join(root, p)
		os.MkdirAll(filepath.Dir(full), 0o755)
		if err := os.WriteFile(full, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestReadV1AndNanoCores(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]string{
		"cpuacct/pod/cpuacct.usage":        "1000000000\n",
		"memory/pod/memory.usage_in_bytes": "5000\n",
		"memory/pod/memory.stat":           "total_rss 3000\ntotal_inactive_file 1000\ntotal_pgfault 7\ntotal_pgmajfault 2\n",
		"memory/pod/memory.limit_in_bytes": "9223372036854771712\n",
		"pids/pod/pids.current":            "3\n",
	})
	r := NewReader(root)
	s, err := r.Read("/pod")
	if err != nil {
		t.Fatal(err)
	}
	if s.CPUUsageNanos != 1e9 || s.WorkingSet != 4000 || s.RSS != 3000 || s.PageFaults != 7 || s.MajorPageFaults != 2 ||
		s.MemoryLimit != 0 || s.Processes != 3 || s.NanoCores != nil {
		t.Errorf("first sample = %+v", s)
	}
	time.Sleep(20 * time.Millisecond)
	writeFiles(t, root, map[string]string{"cpuacct/pod/cpuacct.usage": "1010000000\n"})
	s, err = r.Read("/pod")
	if err != nil || s.NanoCores == nil || *s.NanoCores == 0 || *s.NanoCores > 1e9 {
		t.Errorf("second sample nanocores = %v (%v)", s.NanoCores, err)
	}
	if _, err := r.Read("/missing"); err == nil {
		t.Errorf("missing cgroup read fine")
	}
}

func TestReadV2(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]string{
		"cgroup.controllers": "cpu memory pids\n",
		"pod/cpu.stat":       "usage_usec 2000\nuser_usec 1000\n",
		"pod/memory.current": "8192\n",
		"pod/memory.stat":    "anon 4096\ninactive_file 4096\npgfault 1\npgmajfault 0\n",
		"pod/memory.max":     "max\n",
		"pod/pids.current":   "1\n",
	})
	s, err := NewReader(root).Read("/pod")
	if err != nil {
		t.Fatal(err)
	}
	if s.CPUUsageNanos != 2e6 || s.WorkingSet != 4096 || s.RSS != 4096 || s.MemoryLimit != 0 || s.Processes != 1 {
		t.Errorf("v2 sample = %+v", s)
	}
}
