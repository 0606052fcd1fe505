package logging

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
)

func TestLevels(t *testing.T) {
	for _, tc := range []struct {
		level string
		want  slog.Level
	}{{"debug", slog.LevelDebug}, {"info", slog.LevelInfo}, {"warn", slog.LevelWarn}, {"warning", slog.LevelWarn}, {"ERROR", slog.LevelError}} {
		var buf bytes.Buffer
		log, lv, err := New(&buf, tc.level, "text")
		if err != nil {
			t.Fatalf("%s: %v", tc.level, err)
		}
		if lv.Level() != tc.want {
			t.Errorf("%s: level %v", tc.level, lv.Level())
		}
		log.Debug("d")
		log.Info("i")
		log.Warn("w")
		log.Error("e")
		// One line per message at or above the level.
		if got, want := strings.Count(buf.String(), "\n"), int(slog.LevelError-tc.want)/4+1; got != want {
			t.Errorf("%s: %d lines, want %d:\n%s", tc.level, got, want, buf.String())
		}
	}
}

func TestBadLevel(t *testing.T) {
	if _, _, err := New(&bytes.Buffer{}, "verbose", "text"); err == nil || !strings.Contains(err.Error(), `"verbose"`) {
		t.Errorf("err = %v", err)
	}
}

func TestFormats(t *testing.T) {
	var buf bytes.Buffer
	log, _, err := New(&buf, "info", "json")
	if err != nil {
		t.Fatal(err)
	}
	log.Info("pod ready", "pod", "abc")
	var rec map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil || rec["msg"] != "pod ready" || rec["pod"] != "abc" || rec["level"] != "INFO" {
		t.Errorf("json line %q: %v %v", buf.String(), rec, err)
	}
	buf.Reset()
	log, _, _ = New(&buf, "info", "text")
	log.Info("pod ready", "pod", "abc")
	if s := buf.String(); !strings.Contains(s, `msg="pod ready" pod=abc`) || strings.HasPrefix(s, "{") {
		t.Errorf("text line %q", s)
	}
}

// SIGHUP changes the level through the LevelVar, without a new logger.
func TestLevelChangesWhileRunning(t *testing.T) {
	var buf bytes.Buffer
	log, lv, _ := New(&buf, "info", "text")
	log.Debug("hidden")
	lv.Set(slog.LevelDebug)
	log.Debug("shown")
	if s := buf.String(); strings.Contains(s, "hidden") || !strings.Contains(s, "shown") {
		t.Errorf("output %q", s)
	}
}
