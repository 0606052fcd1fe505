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

// CPUSet is a set of CPU or memory node numbers, 0..maxCPUSetID.
type CPUSet [(maxCPUSetID + 1) / 64]uint64

// Has reports whether n is in the set.
func (c *CPUSet) Has(n int) bool {
	return n >= 0 && n <= maxCPUSetID && c[n/64]&(1<<(n%64)) != 0
}

// addRange adds first..last a word at a time, so a hostile list of many
// wide ranges costs at most a few hundred steps per item.
func (c *CPUSet) addRange(first, last int) {
	for n := first; n <= last; {
		if n%64 == 0 && n+63 <= last {
			c[n/64] = ^uint64(0)
			n += 64
			continue
		}
		c[n/64] |= 1 << (n % 64)
		n++
	}
}

// ParseCPUSet parses the kernel's list format as the kubelet writes it
// ("0-3,5,7-8"; cpuset.cpus and cpuset.mems take the same form): comma
// separated numbers or inclusive ranges. It returns the members.
func ParseCPUSet(s string) (*CPUSet, error) {
	set := &CPUSet{}
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
		set.addRange(first, last)
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

// missingFromCPUSet returns (up to 8 of) the members of want that have
// lacks, for an error message.
func missingFromCPUSet(want, have *CPUSet) []int {
	var out []int
	for w := range want {
		extra := want[w] &^ have[w]
		for b := 0; extra != 0 && b < 64 && len(out) < 8; b++ {
			if extra&(1<<b) != 0 {
				out = append(out, w*64+b)
			}
		}
	}
	return out
}
