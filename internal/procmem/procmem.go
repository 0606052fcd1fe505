// Package procmem gives back memory the daemon only needed to start.
//
// Most of an idle floe's resident set is not its heap but its own binary:
// startup runs code of nearly every package (configuration, checks,
// handler probes, storage and CNI setup, state restore), and the kernel
// maps the page cache around each fault, so about 33 MB of the 34 MB of
// text and read-only data stay mapped (VmRSS, RssFile) although an idle
// daemon touches a small part of them. Those pages are clean and backed by
// the executable: dropping them from the page tables loses nothing (they
// stay in the page cache, and code that runs again is mapped back by a
// minor fault), and lets the kernel reclaim what is cold.
package procmem

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"runtime/debug"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Released is what ReleaseStartupPages gave back.
type Released struct {
	// ExecutableKB is the resident size of the executable's clean
	// mappings before they were dropped.
	ExecutableKB int64
	// Mappings is how many mappings were dropped.
	Mappings int
}

// ReleaseStartupPages drops this process's page-table entries for the
// read-only, never-written mappings of its own executable (text, rodata,
// pclntab), then returns freed heap to the kernel. Call it once startup
// work is done.
func ReleaseStartupPages() (Released, error) {
	var r Released
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return r, fmt.Errorf("locate executable: %w", err)
	}
	data, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		return r, fmt.Errorf("read smaps: %w", err)
	}
	for _, m := range parseSmaps(data) {
		// Only private read-only mappings of the executable with no
		// anonymous page: a page the dynamic loader relocated (RELRO)
		// is anonymous and would be lost, so such a mapping is left
		// alone; writable ones hold the program's data.
		if m.path != exe || (m.perms != "r-xp" && m.perms != "r--p") || m.anonKB != 0 || m.rssKB == 0 {
			continue
		}
		if _, _, errno := unix.Syscall(unix.SYS_MADVISE, m.start, m.end-m.start, unix.MADV_DONTNEED); errno != 0 {
			return r, fmt.Errorf("madvise %x-%x: %w", m.start, m.end, errno)
		}
		r.ExecutableKB += m.rssKB
		r.Mappings++
	}
	debug.FreeOSMemory()
	return r, nil
}

type mapping struct {
	start, end    uintptr
	perms, path   string
	rssKB, anonKB int64
}

// parseSmaps reads the mappings of /proc/PID/smaps with their Rss and
// Anonymous sizes.
func parseSmaps(data []byte) []mapping {
	var out []mapping
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := sc.Text()
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if lo, hi, ok := strings.Cut(f[0], "-"); ok && len(f) >= 5 && !strings.HasSuffix(f[0], ":") {
			start, err1 := strconv.ParseUint(lo, 16, 64)
			end, err2 := strconv.ParseUint(hi, 16, 64)
			if err1 == nil && err2 == nil {
				m := mapping{start: uintptr(start), end: uintptr(end), perms: f[1]}
				if len(f) >= 6 {
					m.path = strings.Join(f[5:], " ")
				}
				out = append(out, m)
				continue
			}
		}
		if len(out) == 0 || len(f) < 2 {
			continue
		}
		kb, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			continue
		}
		switch f[0] {
		case "Rss:":
			out[len(out)-1].rssKB = kb
		case "Anonymous:":
			out[len(out)-1].anonKB = kb
		}
	}
	return out
}
