package ocispec

import (
	"fmt"
	"strconv"
	"strings"
)

// maxCPUSetID bounds the numbers of a cpuset list: the kernel's largest
// NR_CPUS is 8192 and MAX_NUMNODES 1024, so anything above is not a CPU
// or memory node on any host, and a bound keeps a hostile "0-4000000000"
// from costing anything.
const maxCPUSetID = 8191

// ParseCPUSet parses the kernel's list format as the kubelet writes it
// ("0-3,5,7-8"; cpuset.cpus and cpuset.mems take the same form): comma
// separated numbers or inclusive ranges. It returns the members.
func ParseCPUSet(s string) (map[int]bool, error) {
	set := map[int]bool{}
	if strings.TrimSpace(s) == "" {
		return nil, fmt.Errorf("%q is empty", s)
	}
	for _, item := range strings.Split(strings.TrimSpace(s), ",") {
		lo, hi, isRange := strings.Cut(item, "-")
		first, err := cpuSetNumber(lo)
		if err != nil {
			return nil, fmt.Errorf("%q: %v", s, err)
		}
		last := first
		if isRange {
			if last, err = cpuSetNumber(hi); err != nil {
				return nil, fmt.Errorf("%q: %v", s, err)
			}
			if last < first {
				return nil, fmt.Errorf("%q: range %q ends before it starts", s, item)
			}
		}
		for n := first; n <= last; n++ {
			set[n] = true
		}
	}
	return set, nil
}

func cpuSetNumber(s string) (int, error) {
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return 0, fmt.Errorf("%q is not a number (want a list like \"0-3,5\")", s)
	}
	n, err := strconv.Atoi(s)
	if err != nil || n > maxCPUSetID {
		return 0, fmt.Errorf("%s is above %d, the largest CPU or memory node number Linux has", s, maxCPUSetID)
	}
	return n, nil
}

// missingFromCPUSet returns the members of want that have is lacks, as a
// short list for an error message.
func missingFromCPUSet(want, have map[int]bool) []int {
	var out []int
	for n := 0; n <= maxCPUSetID && len(out) < 8; n++ {
		if want[n] && !have[n] {
			out = append(out, n)
		}
	}
	return out
}
