package metrics

import (
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// value reads one series from the registry: a counter's or gauge's value,
// a histogram's sample count. ok is false when the series does not exist.
func value(t *testing.T, reg prometheus.Gatherer, name string, labels ...string) (v float64, ok bool) {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
	series:
		for _, m := range f.GetMetric() {
			have := map[string]string{}
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			for i := 0; i+1 < len(labels); i += 2 {
				if have[labels[i]] != labels[i+1] {
					continue series
				}
			}
			switch {
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue(), true
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue(), true
			case m.GetHistogram() != nil:
				return float64(m.GetHistogram().GetSampleCount()), true
			}
		}
	}
	return 0, false
}

func want(t *testing.T, reg prometheus.Gatherer, expect float64, name string, labels ...string) {
	t.Helper()
	if v, ok := value(t, reg, name, labels...); !ok || v != expect {
		t.Errorf("%s%v = %v (exists %v), want %v", name, labels, v, ok, expect)
	}
}

func TestObserve(t *testing.T) {
	m := New()
	r := m.Registry
	m.ObserveCNI("add", 30*time.Millisecond, nil)
	m.ObserveCNI("add", 10*time.Millisecond, errors.New("plugin failed"))
	m.ObserveCNI("del", time.Millisecond, nil)
	want(t, r, 2, "floe_cni_operation_duration_seconds", "operation", "add")
	want(t, r, 1, "floe_cni_operation_duration_seconds", "operation", "del")
	want(t, r, 1, "floe_cni_errors_total", "operation", "add")
	if _, ok := value(t, r, "floe_cni_errors_total", "operation", "del"); ok {
		t.Error("a successful DEL counted as an error")
	}

	m.ObservePull(2*time.Second, 1000, nil)
	m.ObservePull(time.Second, 0, errors.New("unauthorized"))
	m.ObservePull(time.Second, 500, nil)
	want(t, r, 1500, "floe_image_pulled_bytes_total")
	want(t, r, 2, "floe_image_pull_duration_seconds", "result", "success")
	want(t, r, 1, "floe_image_pull_duration_seconds", "result", "error")

	m.ObserveExit("Completed", false)
	m.ObserveExit("OOMKilled", false)
	m.ObserveExit("Error", true)
	want(t, r, 1, "floe_container_oom_kills_total")
	want(t, r, 1, "floe_container_monitors_lost_total")
}

// A daemon without metrics passes a nil *Metrics to the CNI hook.
func TestObserveCNINil(t *testing.T) {
	var m *Metrics
	m.ObserveCNI("add", time.Second, errors.New("x"))
}

// Each daemon has its own registry: two in one process do not collide.
func TestRegistriesAreIndependent(t *testing.T) {
	a, b := New(), New()
	a.OOMKills.Inc()
	want(t, b.Registry, 0, "floe_container_oom_kills_total")
}

func TestServeScrape(t *testing.T) {
	m := New()
	m.RPCRequests.WithLabelValues("/runtime.v1.RuntimeService/Version", "OK").Inc()
	states := map[string]int{"running": 2, "exited": 1}
	m.RegisterStates("containers", "Containers by state.", func() map[string]int { return states })
	s, err := Serve(m, "127.0.0.1:0", slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	scrape := func() string {
		resp, err := http.Get("http://" + s.Addr() + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("status %d: %s", resp.StatusCode, b)
		}
		return string(b)
	}
	body := scrape()
	for _, want := range []string{
		`floe_cri_requests_total{code="OK",method="/runtime.v1.RuntimeService/Version"} 1`,
		`floe_containers{state="running"} 2`,
		`floe_containers{state="exited"} 1`,
		"# HELP floe_containers Containers by state.",
		"go_goroutines ",
		"process_start_time_seconds ",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("scrape lacks %q", want)
		}
	}
	// States are read at scrape time.
	states = map[string]int{"running": 5}
	if body := scrape(); !strings.Contains(body, `floe_containers{state="running"} 5`) || strings.Contains(body, `state="exited"`) {
		t.Errorf("second scrape does not follow the snapshot:\n%s", body)
	}
	resp, err := http.Get("http://" + s.Addr() + "/other")
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("/other: %d", resp.StatusCode)
		}
	}
}

func TestServeBadAddress(t *testing.T) {
	l, err := Serve(New(), "127.0.0.1:notaport", slog.Default())
	if err == nil {
		l.Close()
		t.Fatal("served on a bad address")
	}
	if !strings.Contains(err.Error(), "metrics listen on 127.0.0.1:notaport") {
		t.Errorf("err = %v", err)
	}
}
