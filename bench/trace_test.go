package bench

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/floe-cri/floe/test/needs"
)

// TestTraceOps shows where the time of one pod start, StopContainer,
// StopPodSandbox, RemoveContainer and RemovePodSandbox goes in floe: it
// attaches `strace -f -tt -T` to the daemon for each call and breaks the
// call down into the programs floe ran (runc, conmon, CNI plugins and
// what they ran) and the daemon's own fsyncs, mounts and unmounts.
// strace slows every system call down, so the traced calls take longer
// than untraced ones; the untraced time of the same step of a second pod
// is printed beside it. Runs only when FLOE_TRACE_DIR names a directory
// for the raw traces.
//
//	FLOE_TRACE_DIR=/tmp/floe-trace go test ./bench -run TestTraceOps -v
func TestTraceOps(t *testing.T) {
	dir := os.Getenv("FLOE_TRACE_DIR")
	if dir == "" {
		t.Skip("set FLOE_TRACE_DIR to trace floe's calls")
	}
	needs.Binary(t, "strace")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cb := newContainerBench(t)
	p := criPeer{"floe", cb.d.Runtime, cb.d.Images}
	ctx := context.Background()
	// A first pod untraced: warms caches, and is the untraced reference.
	plain := map[string]time.Duration{}
	traced := map[string]*traceResult{}
	for round := 0; round < 2; round++ {
		r := &podRun{}
		for _, op := range sideBySideOps[:5] {
			var tr *traceResult
			var took time.Duration
			if round == 1 {
				tr = startTrace(t, cb.d.PID(), filepath.Join(dir, traceName(op.name)+".strace"))
			}
			start := time.Now()
			err := op.run(ctx, p, r, cb.image, "")
			took = time.Since(start)
			if tr != nil {
				tr.finish(t, start, took)
				traced[op.name] = tr
			} else {
				plain[op.name] = took
			}
			if err != nil {
				t.Fatalf("%s: %v", op.name, err)
			}
		}
	}
	for _, op := range sideBySideOps[:5] {
		t.Logf("\n%s: untraced %.1f ms, traced %.1f ms\n%s", op.name, ms(plain[op.name]), ms(traced[op.name].took), traced[op.name].table())
	}
}

func traceName(op string) string {
	return strings.ToLower(regexp.MustCompile(`[^A-Za-z]+`).ReplaceAllString(op, "-"))
}

// traceResult is one strace of the daemon around one call.
type traceResult struct {
	cmd   *exec.Cmd
	path  string
	start time.Time
	took  time.Duration
	procs map[int]*tracedProc
	// daemon-side system calls of interest: name -> count, total time
	calls map[string]*callSum
}

type tracedProc struct {
	pid        int
	argv       string
	start, end time.Time
	parent     int
}

type callSum struct {
	n     int
	total time.Duration
}

// startTrace attaches strace to every thread of pid and waits until it is
// attached.
func startTrace(t *testing.T, pid int, path string) *traceResult {
	t.Helper()
	errPath := path + ".stderr"
	errf, err := os.Create(errPath)
	if err != nil {
		t.Fatal(err)
	}
	defer errf.Close()
	cmd := exec.Command("strace", "-f", "-ttt", "-T", "-s", "200", "-o", path, "-p", strconv.Itoa(pid))
	cmd.Stderr = errf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		// strace reports the attach once for all threads ("Process N
		// attached"), after it has attached to each of them.
		msg, _ := os.ReadFile(errPath)
		if strings.Contains(string(msg), "attached") {
			time.Sleep(100 * time.Millisecond)
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("strace did not attach: %s", msg)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return &traceResult{cmd: cmd, path: path}
}

// finish detaches strace and reads the trace of the call's window.
func (tr *traceResult) finish(t *testing.T, start time.Time, took time.Duration) {
	t.Helper()
	// Late work of the call (a goroutine finishing after the answer) is
	// still caught for a moment.
	time.Sleep(200 * time.Millisecond)
	tr.cmd.Process.Signal(syscall.SIGINT)
	tr.cmd.Wait()
	tr.start, tr.took = start, took
	if err := tr.parse(); err != nil {
		t.Fatal(err)
	}
}

var (
	straceLine = regexp.MustCompile(`^(\d+) +(\d+)\.(\d{6}) (.*)$`)
	callDur    = regexp.MustCompile(`<(\d+\.\d+)>$`)
	execArgv   = regexp.MustCompile(`^execve\("[^"]*", \[(.*?)\]`)
	cloneRet   = regexp.MustCompile(`^(clone3?|vfork|fork)\((.*)\) += (\d+)`)
)

// watched are the daemon-side calls summed up: disk syncs, mounts,
// unmounts, renames and unlinks.
var watched = map[string]bool{"fsync": true, "fdatasync": true, "sync_file_range": true, "syncfs": true,
	"mount": true, "umount2": true, "renameat": true, "rename": true, "unlinkat": true}

func (tr *traceResult) parse() error {
	f, err := os.Open(tr.path)
	if err != nil {
		return err
	}
	defer f.Close()
	tr.procs = map[int]*tracedProc{}
	tr.calls = map[string]*callSum{}
	child := map[int]bool{} // pids created by fork/vfork/clone without CLONE_THREAD
	pending := map[int]string{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		m := straceLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		pid, _ := strconv.Atoi(m[1])
		sec, _ := strconv.ParseInt(m[2], 10, 64)
		us, _ := strconv.ParseInt(m[3], 10, 64)
		ts := time.Unix(sec, us*1000)
		rest := m[4]
		// Join split calls: "<unfinished ...>" then "<... name resumed>".
		if strings.HasSuffix(rest, "<unfinished ...>") {
			pending[pid] = strings.TrimSuffix(rest, "<unfinished ...>")
			continue
		}
		if strings.HasPrefix(rest, "<... ") {
			if i := strings.Index(rest, "resumed>"); i > 0 {
				rest = pending[pid] + rest[i+len("resumed>"):]
				delete(pending, pid)
			}
		}
		// A new process (not a thread) of the daemon, or anything a child
		// starts, is not the daemon. The child's own lines may come
		// before its parent's clone returns.
		if cm := cloneRet.FindStringSubmatch(rest); cm != nil && (child[pid] || !strings.Contains(cm[2], "CLONE_THREAD")) {
			np, _ := strconv.Atoi(cm[3])
			child[np] = true
			if !strings.Contains(cm[2], "CLONE_THREAD") {
				if p := tr.procs[np]; p != nil {
					p.parent = pid
				} else {
					tr.procs[np] = &tracedProc{pid: np, start: ts, parent: pid}
				}
			}
		}
		if am := execArgv.FindStringSubmatch(rest); am != nil && strings.Contains(rest, "= 0") {
			child[pid] = true
			p := tr.procs[pid]
			if p == nil {
				p = &tracedProc{pid: pid, start: ts}
				tr.procs[pid] = p
			}
			p.argv = shortArgv(am[1])
			p.start = ts
		}
		if strings.HasPrefix(rest, "+++ exited") || strings.HasPrefix(rest, "+++ killed") {
			if p := tr.procs[pid]; p != nil {
				p.end = ts
			}
			continue
		}
		if child[pid] {
			continue // only the daemon's own calls are summed
		}
		name, _, ok := strings.Cut(rest, "(")
		if !ok || !watched[name] {
			continue
		}
		d := time.Duration(0)
		if dm := callDur.FindStringSubmatch(rest); dm != nil {
			sec, _ := strconv.ParseFloat(dm[1], 64)
			d = time.Duration(sec * float64(time.Second))
		}
		cs := tr.calls[name]
		if cs == nil {
			cs = &callSum{}
			tr.calls[name] = cs
		}
		cs.n++
		cs.total += d
	}
	return sc.Err()
}

// shortArgv keeps the program's base name and its arguments that are not
// flags, ids or paths, enough to tell `runc delete` from `runc start`.
func shortArgv(quoted string) string {
	var out []string
	for i, a := range strings.Split(quoted, ", ") {
		a = strings.Trim(a, `"`)
		if i == 0 {
			out = append(out, filepath.Base(a))
			continue
		}
		if strings.HasPrefix(a, "-") || strings.Contains(a, "/") || len(a) >= 32 || len(out) >= 4 {
			continue
		}
		out = append(out, a)
	}
	return strings.Join(out, " ")
}

// table lists the programs the call ran (offset from the call's start,
// duration), the daemon's watched system calls, and the rest.
func (tr *traceResult) table() string {
	var sb strings.Builder
	var procs []*tracedProc
	for _, p := range tr.procs {
		if p.argv != "" {
			procs = append(procs, p)
		}
	}
	sort.Slice(procs, func(i, j int) bool { return procs[i].start.Before(procs[j].start) })
	fmt.Fprintf(&sb, "  %-9s %-9s %s\n", "at ms", "took ms", "program (exec to exit)")
	depth := func(p *tracedProc) int {
		n := 0
		for q := tr.procs[p.parent]; q != nil && n < 5; q = tr.procs[q.parent] {
			if q.argv != "" {
				n++
			}
		}
		return n
	}
	var top time.Duration
	for _, p := range procs {
		end := p.end
		dur := "running"
		if !end.IsZero() {
			dur = fmt.Sprintf("%.1f", ms(end.Sub(p.start)))
			if depth(p) == 0 {
				top += end.Sub(p.start)
			}
		}
		fmt.Fprintf(&sb, "  %-9.1f %-9s %s%s\n", ms(p.start.Sub(tr.start)), dur, strings.Repeat("  ", depth(p)), p.argv)
	}
	fmt.Fprintf(&sb, "  programs run by floe itself, summed: %.1f ms\n", ms(top))
	var names []string
	for n := range tr.calls {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(&sb, "  daemon %-16s x%-4d %.1f ms\n", n, tr.calls[n].n, ms(tr.calls[n].total))
	}
	return sb.String()
}
