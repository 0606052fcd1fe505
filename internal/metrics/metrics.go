// Package metrics defines floe's Prometheus metrics and serves them over
// HTTP. Metrics live in one registry owned by the daemon (not the global
// default), so several daemons in one test process never collide.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics are the series floe exports.
type Metrics struct {
	Registry *prometheus.Registry

	RPCRequests *prometheus.CounterVec   // by method and gRPC code
	RPCDuration *prometheus.HistogramVec // by method
	// RPCPanics counts handler panics the gRPC interceptors recovered
	// (by method): each is a bug the client only saw as Internal, so
	// tests and operators need a number, not just a log line.
	RPCPanics   *prometheus.CounterVec
	CNIDuration *prometheus.HistogramVec // by operation (add, del)
	CNIErrors   *prometheus.CounterVec   // by operation

	PullDuration *prometheus.HistogramVec // by result
	PullBytes    prometheus.Counter
	OOMKills     prometheus.Counter
	MonitorsLost prometheus.Counter
}

// New registers every series, plus Go runtime and process metrics.
func New() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		RPCRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "floe", Subsystem: "cri", Name: "requests_total",
			Help: "CRI requests served, by method and gRPC status code.",
		}, []string{"method", "code"}),
		RPCDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "floe", Subsystem: "cri", Name: "request_duration_seconds",
			Help:    "Latency of CRI requests, by method.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2.5, 14),
		}, []string{"method"}),
		RPCPanics: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "floe", Subsystem: "cri", Name: "panics_total",
			Help: "Panics recovered in CRI request handlers, by method (each one is a bug).",
		}, []string{"method"}),
		CNIDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "floe", Subsystem: "cni", Name: "operation_duration_seconds",
			Help:    "Latency of CNI ADD (pod network setup) and DEL (teardown).",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 12),
		}, []string{"operation"}),
		CNIErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "floe", Subsystem: "cni", Name: "errors_total",
			Help: "Failed CNI operations, by operation.",
		}, []string{"operation"}),
	}
	m.PullDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "floe", Subsystem: "image", Name: "pull_duration_seconds",
		Help:    "Image pull durations, by result (success, error).",
		Buckets: prometheus.ExponentialBuckets(0.05, 2, 14),
	}, []string{"result"})
	m.PullBytes = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "floe", Subsystem: "image", Name: "pulled_bytes_total",
		Help: "Bytes of images pulled (image size as stored).",
	})
	m.OOMKills = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "floe", Subsystem: "container", Name: "oom_kills_total",
		Help: "Containers that ended OOM-killed.",
	})
	m.MonitorsLost = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "floe", Subsystem: "container", Name: "monitors_lost_total",
		Help: "Container monitors (conmon) that died without reporting their container's exit.",
	})
	m.Registry.MustRegister(m.PullDuration, m.PullBytes, m.OOMKills, m.MonitorsLost)
	m.Registry.MustRegister(m.RPCRequests, m.RPCDuration, m.RPCPanics, m.CNIDuration, m.CNIErrors,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// ObserveCNI records one CNI operation.
func (m *Metrics) ObserveCNI(op string, took time.Duration, err error) {
	if m == nil {
		return
	}
	m.CNIDuration.WithLabelValues(op).Observe(took.Seconds())
	if err != nil {
		m.CNIErrors.WithLabelValues(op).Inc()
	}
}

// ObservePull records one image pull.
func (m *Metrics) ObservePull(took time.Duration, bytes uint64, err error) {
	result := "success"
	if err != nil {
		result = "error"
	}
	m.PullDuration.WithLabelValues(result).Observe(took.Seconds())
	m.PullBytes.Add(float64(bytes))
}

// ObserveExit records how a container ended.
func (m *Metrics) ObserveExit(reason string, monitorLost bool) {
	if reason == "OOMKilled" {
		m.OOMKills.Inc()
	}
	if monitorLost {
		m.MonitorsLost.Inc()
	}
}

// Server serves /metrics on a TCP address.
type Server struct {
	srv  *http.Server
	addr net.Addr
	done chan struct{}
	log  *slog.Logger
}

// Serve starts serving the registry on addr (host:port; port 0 picks a
// free one). Only loopback addresses are accepted unless the operator
// writes another address explicitly in the config.
func Serve(m *Metrics, addr string, log *slog.Logger) (*Server, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics listen on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry}))
	s := &Server{
		srv:  &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second},
		addr: l.Addr(),
		done: make(chan struct{}),
		log:  log,
	}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server stopped", "err", err)
		}
	}()
	return s, nil
}

// Addr is the address actually listened on.
func (s *Server) Addr() string { return s.addr.String() }

// Close stops the server and waits for its goroutine.
func (s *Server) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s.srv.Shutdown(ctx)
	<-s.done
}

// stateCollector reports a gauge per state from a snapshot function, read
// at scrape time so it never drifts from the in-memory index.
type stateCollector struct {
	desc     *prometheus.Desc
	snapshot func() map[string]int
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	for state, n := range c.snapshot() {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n), state)
	}
}

// RegisterStates exports floe_<name>{state} from snapshot.
func (m *Metrics) RegisterStates(name, help string, snapshot func() map[string]int) {
	m.Registry.MustRegister(&stateCollector{
		desc:     prometheus.NewDesc(prometheus.BuildFQName("floe", "", name), help, []string{"state"}, nil),
		snapshot: snapshot,
	})
}
