package daemon

import (
	"context"
	"log/slog"
	"time"

	"github.com/floe-cri/floe/internal/config"
	"github.com/floe-cri/floe/internal/tracing"
)

// tracingFlushTimeout bounds the flush of the last spans at stop.
const tracingFlushTimeout = 5 * time.Second

// startTracing starts the OTLP exporter of [tracing] (nothing when it is
// off).
func startTracing(cfg *config.Config, log *slog.Logger) (*tracing.Tracing, error) {
	return tracing.Setup(context.Background(), cfg.Tracing, log)
}

// stopTracing flushes the spans still queued; a collector that cannot
// take them costs a warning, not floe's stop.
func stopTracing(tr *tracing.Tracing, log *slog.Logger) {
	if err := tr.Shutdown(tracingFlushTimeout); err != nil {
		log.Warn("tracing: spans lost at stop", "err", err)
	}
}
