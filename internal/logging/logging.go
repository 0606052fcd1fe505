// Package logging builds floe's slog logger. The level lives in a LevelVar
// so it can be changed while the daemon runs.
package logging

import (
	"io"
	"log/slog"

	"github.com/floe-cri/floe/internal/config"
)

// New returns a logger writing text or json to w at the given level.
func New(w io.Writer, level, format string) (*slog.Logger, *slog.LevelVar, error) {
	lv := &slog.LevelVar{}
	l, err := config.ParseLevel(level)
	if err != nil {
		return nil, nil, err
	}
	lv.Set(l)
	opts := &slog.HandlerOptions{Level: lv}
	var h slog.Handler = slog.NewTextHandler(w, opts)
	if format == "json" {
		h = slog.NewJSONHandler(w, opts)
	}
	return slog.New(h), lv, nil
}
