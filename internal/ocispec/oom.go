package ocispec

import (
	"bufio"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
)

const capSysResource = 24

// MinOOMScoreAdj is the lowest oom_score_adj this process may give a child.
// Lowering oom_score_adj below the current value needs CAP_SYS_RESOURCE;
// without it (as on hosts that withhold it from root) the floor is the
// daemon's own value, and runc fails outright when asked for less.
func MinOOMScoreAdj() (int, error) {
	data, err := os.ReadFile("/proc/self/oom_score_adj")
	if err != nil {
		return 0, fmt.Errorf("read own oom_score_adj: %w", err)
	}
	own, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		return 0, fmt.Errorf("parse own oom_score_adj %q: %w", data, err)
	}
	eff, err := effectiveCaps()
	if err != nil {
		return 0, err
	}
	if eff&(1<<capSysResource) != 0 {
		return -1000, nil
	}
	return own, nil
}

func effectiveCaps() (uint64, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, fmt.Errorf("read own capabilities: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "CapEff:"); ok {
			return strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		}
	}
	return 0, fmt.Errorf("no CapEff line in /proc/self/status")
}

// ClampOOMScoreAdj brings a requested oom_score_adj into [min, 1000]. The
// kubelet asks -997 for Guaranteed pods; on a host where that cannot be
// set, the pod must still start, just with less OOM protection.
func ClampOOMScoreAdj(requested, min int, log *slog.Logger) int {
	v := requested
	if v > 1000 {
		v = 1000
	}
	if v < -1000 {
		v = -1000
	}
	if v < min {
		log.Info("oom_score_adj raised to what floe may set (no CAP_SYS_RESOURCE)", "requested", requested, "applied", min)
		v = min
	}
	return v
}
