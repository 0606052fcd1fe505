#!/usr/bin/env bash
# Builds cmd/floe-pod-reaper (the static C init of pods that share a PID
# namespace) into $1. One place for its compiler flags: the Makefile and
# the test harness both call this. Needs gcc and libc6-dev (static libc),
# which hack/install-deps.sh installs.
set -euo pipefail
out=${1:?usage: build-pod-reaper.sh OUTPUT}
src="$(cd "$(dirname "$0")/.." && pwd)/cmd/floe-pod-reaper/reaper.c"
# -static: it runs on an empty root with no libraries to load, and a
# static binary maps fewer pages. -Os and -s: every page of it stays
# resident as long as the pod.
${CC:-gcc} -Os -static -s -Wall -Wextra -Werror -o "$out" "$src"
