package ocispec

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// rlimitResources maps the rlimit types ParseUlimits makes to their
// resource numbers.
var rlimitResources = map[string]int{
	"RLIMIT_CORE": unix.RLIMIT_CORE, "RLIMIT_CPU": unix.RLIMIT_CPU, "RLIMIT_DATA": unix.RLIMIT_DATA,
	"RLIMIT_FSIZE": unix.RLIMIT_FSIZE, "RLIMIT_LOCKS": unix.RLIMIT_LOCKS, "RLIMIT_MEMLOCK": unix.RLIMIT_MEMLOCK,
	"RLIMIT_MSGQUEUE": unix.RLIMIT_MSGQUEUE, "RLIMIT_NICE": unix.RLIMIT_NICE, "RLIMIT_NOFILE": unix.RLIMIT_NOFILE,
	"RLIMIT_NPROC": unix.RLIMIT_NPROC, "RLIMIT_RSS": unix.RLIMIT_RSS, "RLIMIT_RTPRIO": unix.RLIMIT_RTPRIO,
	"RLIMIT_RTTIME": unix.RLIMIT_RTTIME, "RLIMIT_SIGPENDING": unix.RLIMIT_SIGPENDING, "RLIMIT_STACK": unix.RLIMIT_STACK,
}

// CheckRlimitsSettable refuses rlimits runc would fail every container
// over: a hard limit above floe's own needs CAP_SYS_RESOURCE (runc's
// children inherit floe's limits and capabilities), and a file limit
// above fs.nr_open is refused by the kernel even with it. procSys is
// normally /proc/sys.
func CheckRlimitsSettable(rlimits []specs.POSIXRlimit, procSys string) error {
	eff, err := effectiveCaps()
	if err != nil {
		return err
	}
	for _, rl := range rlimits {
		res, ok := rlimitResources[rl.Type]
		if !ok {
			return fmt.Errorf("%s is not an rlimit floe knows", rl.Type)
		}
		var own unix.Rlimit
		if err := unix.Getrlimit(res, &own); err != nil {
			return fmt.Errorf("read floe's own %s: %w", rl.Type, err)
		}
		if rl.Hard > own.Max && eff&(1<<capSysResource) == 0 {
			return fmt.Errorf("%s hard limit %s is above floe's own (%s) and floe lacks CAP_SYS_RESOURCE to raise it", rl.Type, rlimitString(rl.Hard), rlimitString(own.Max))
		}
		if rl.Type == "RLIMIT_NOFILE" {
			data, err := os.ReadFile(procSys + "/fs/nr_open")
			if err != nil {
				return fmt.Errorf("read fs.nr_open: %w", err)
			}
			nrOpen, err := strconv.ParseUint(strings.TrimSpace(string(data)), 10, 64)
			if err == nil && rl.Hard > nrOpen {
				return fmt.Errorf("RLIMIT_NOFILE hard limit %s is above the kernel's fs.nr_open (%d)", rlimitString(rl.Hard), nrOpen)
			}
		}
	}
	return nil
}

func rlimitString(v uint64) string {
	if v == unix.RLIM_INFINITY {
		return "unlimited"
	}
	return strconv.FormatUint(v, 10)
}
