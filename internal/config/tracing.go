package config

import (
	"fmt"
	"net"
)

// TracingConfig configures OpenTelemetry tracing of the CRI calls
// (internal/tracing), modelled on containerd's and CRI-O's settings.
type TracingConfig struct {
	Enable                 bool   `toml:"enable" comment:"Export OpenTelemetry traces of every CRI call (with child spans for the runtime, CNI and image pulls) to an OTLP/gRPC collector. Off: no exporter and no tracing cost."`
	Endpoint               string `toml:"endpoint" comment:"host:port of the OTLP/gRPC collector (e.g. an OpenTelemetry Collector or Jaeger), reached without TLS: keep it on the node or loopback."`
	SamplingRatePerMillion int    `toml:"sampling_rate_per_million" comment:"Traces started by floe that are sampled, per million (0 to 1000000). A call that carries the kubelet's trace context follows the kubelet's sampling decision instead."`
	ServiceName            string `toml:"service_name" comment:"service.name resource attribute of floe's spans."`
}

// defaultTracing is off, pointing at a collector on the node's loopback.
func defaultTracing() TracingConfig {
	return TracingConfig{Endpoint: "127.0.0.1:4317", SamplingRatePerMillion: 1000000, ServiceName: "floe"}
}

// validateTracing checks the [tracing] table; the endpoint only matters
// when tracing is on.
func (c *Config) validateTracing() error {
	t := c.Tracing
	if t.SamplingRatePerMillion < 0 || t.SamplingRatePerMillion > 1000000 {
		return fmt.Errorf("key \"tracing.sampling_rate_per_million\": %d is out of range; allowed 0 to 1000000", t.SamplingRatePerMillion)
	}
	if t.ServiceName == "" {
		return fmt.Errorf("key \"tracing.service_name\": must not be empty (default \"floe\")")
	}
	if !t.Enable {
		return nil
	}
	if _, port, err := net.SplitHostPort(t.Endpoint); err != nil || port == "" {
		return fmt.Errorf("key \"tracing.endpoint\": %q is not host:port (e.g. \"127.0.0.1:4317\")", t.Endpoint)
	}
	return nil
}
