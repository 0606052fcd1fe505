package config

import (
	"strings"
	"testing"
)

func TestTracingValidation(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  func(*TracingConfig)
		want string // "" for valid
	}{
		{"defaults", func(*TracingConfig) {}, ""},
		{"off ignores endpoint", func(c *TracingConfig) { c.Endpoint = "nonsense" }, ""},
		{"on with endpoint", func(c *TracingConfig) { c.Enable = true }, ""},
		{"on bad endpoint", func(c *TracingConfig) { c.Enable, c.Endpoint = true, "collector" }, "tracing.endpoint"},
		{"rate too high", func(c *TracingConfig) { c.SamplingRatePerMillion = 1000001 }, "tracing.sampling_rate_per_million"},
		{"rate negative", func(c *TracingConfig) { c.SamplingRatePerMillion = -1 }, "tracing.sampling_rate_per_million"},
		{"no service name", func(c *TracingConfig) { c.ServiceName = "" }, "tracing.service_name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			tc.set(&c.Tracing)
			err := c.Validate()
			if tc.want == "" && err != nil {
				t.Fatalf("valid config refused: %v", err)
			}
			if tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("got %v, want an error naming %s", err, tc.want)
			}
		})
	}
	if c := Default(); c.Tracing.Enable || c.Tracing.Endpoint != "127.0.0.1:4317" || c.Tracing.ServiceName != "floe" || c.Tracing.SamplingRatePerMillion != 1000000 {
		t.Errorf("defaults: %+v", c.Tracing)
	}
}
