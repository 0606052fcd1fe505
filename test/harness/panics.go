package harness

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// panicCounter is the series internal/server's interceptors count
// recovered handler panics in.
const panicCounter = "floe_cri_panics_total"

// PanicLines returns the lines of a floe log that report a panic: one the
// gRPC interceptors recovered ("panic in RPC handler", "panic in streaming
// RPC handler"; the client only saw Internal) or one that crashed the
// daemon (the Go runtime's "panic: " at the start of a line).
func PanicLines(log string) []string {
	var out []string
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(line, "panic in RPC handler") || strings.Contains(line, "panic in streaming RPC handler") ||
			strings.HasPrefix(line, "panic: ") {
			out = append(out, line)
		}
	}
	return out
}

// NewPanics returns the panic lines (PanicLines) the daemon logged since
// the previous call, across restarts, so each panic is reported once.
func (d *Daemon) NewPanics() []string {
	log := d.Log()
	if d.panicsRead > len(log) {
		d.panicsRead = 0
	}
	lines := PanicLines(log[d.panicsRead:])
	d.panicsRead = len(log)
	return lines
}

// PanicsCounted scrapes the running daemon's metrics and returns
// floe_cri_panics_total summed over methods (0 when none was counted).
func (d *Daemon) PanicsCounted(ctx context.Context) (float64, error) {
	addr, err := d.metricsAddress(ctx)
	if err != nil {
		return 0, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("scrape metrics: %w", err)
	}
	defer resp.Body.Close()
	return sumSeries(resp.Body, panicCounter)
}

// metricsAddress asks the daemon's inspect socket (GET /info) where it
// serves metrics. It reads the JSON itself rather than through
// internal/inspect's client: the harness is imported by tests of packages
// that internal/inspect imports (internal/podinit), which would be a cycle.
func (d *Daemon) metricsAddress(ctx context.Context) (string, error) {
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var dialer net.Dialer
		return dialer.DialContext(ctx, "unix", d.InspectSocket)
	}}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://floe/info", nil)
	if err != nil {
		return "", err
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", fmt.Errorf("inspect /info: %w", err)
	}
	defer resp.Body.Close()
	var in struct {
		MetricsAddress string `json:"metricsAddress"`
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("inspect /info: %s", resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(&in); err != nil {
		return "", fmt.Errorf("inspect /info: %w", err)
	}
	if in.MetricsAddress == "" {
		return "", fmt.Errorf("the daemon serves no metrics")
	}
	return in.MetricsAddress, nil
}

// sumSeries adds up every sample of name in a Prometheus text exposition.
func sumSeries(r io.Reader, name string) (float64, error) {
	var sum float64
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			return 0, fmt.Errorf("metrics line %q: %w", line, err)
		}
		sum += v
	}
	return sum, sc.Err()
}

// checkNoPanics fails the test when the daemon logged a panic since the
// last check or, while it runs, counts one in floe_cri_panics_total: a
// recovered panic is a bug even when the test's RPCs got the answer they
// expected. Called on every Stop and at teardown.
func (d *Daemon) checkNoPanics() {
	d.t.Helper()
	if d.Running() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		n, err := d.PanicsCounted(ctx)
		cancel()
		if err != nil {
			d.t.Logf("could not read %s: %v", panicCounter, err)
		} else if n > 0 {
			d.t.Errorf("floe counted %v recovered handler panics (%s)", n, panicCounter)
		}
	}
	if lines := d.NewPanics(); len(lines) > 0 {
		d.t.Errorf("floe logged %d panics (%s):\n%s", len(lines), d.LogPath, strings.Join(lines, "\n"))
	}
}
