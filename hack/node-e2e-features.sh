#!/usr/bin/env bash
# SIG Node's e2e specs of the features floe claims (make node-e2e-features):
# the suite's specs labelled Feature:<F> or FeatureGate:<F> for each F in
# FEATURES, run by hack/node-e2e.sh (same private floe, kit, leak check and
# host-failures list) with the feature gates they need set on the kubelet
# and the API server the suite starts.
#
#   [RUNTIME=floe|containerd] [FEATURES="F1 F2 ..."] [SERIAL=1] [PROCS=4] hack/node-e2e-features.sh
#
# SERIAL=1 runs the features' [Serial] specs (one at a time) instead of the
# others. Output: $NODE_E2E_OUT (default /tmp/floe-node-e2e-out/features,
# features-serial with SERIAL=1): summary.txt, which ends with a table of
# feature -> passed / failed / skipped and the line "N passed, N failed, N
# skipped"; report.json and the logs as hack/node-e2e.sh writes them.
# Exit status: hack/node-e2e.sh's (a failed spec not in the host-failures
# list, a failed setup, fewer specs than focused, a leak).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# What floe claims (docs/kubelet-fields.md, the runtime features in Status).
FEATURES=${FEATURES:-"UserNamespacesSupport ProcMountType ImageVolume ImageVolumeWithDigest InPlacePodVerticalScaling PodLevelResources SupplementalGroupsPolicy ContainerStopSignals CheckpointContainer CRIListStreaming SeccompDefault OOMScoreAdj DefaultPodSysctls ContainerRestartRules RestartAllContainersOnContainerExits ChangeContainerStatusOnKubeletRestart PodReadyToStartContainersCondition KubeletEnsureSecretPulledImages EnvFiles NodeDeclaredFeatures CriProxy ImageID"}
# Alpha gates of those features in kubelet v1.37.2 (`kubelet --help`); the
# beta and GA ones are on by default.
FEATURE_GATES=${FEATURE_GATES:-CRIListStreaming=true,ContainerStopSignals=true,DefaultPodSysctls=true,ImageVolumeWithDigest=true,InPlacePodVerticalScalingMemoryBackedVolumes=true}
set -f
list=$(tr -s ' ' ',' <<<"$FEATURES" | sed 's/^,//; s/,$//')
set +f
labels="(Feature: containsAny {$list} || FeatureGate: containsAny {$list}) && !Flaky"
if [[ -n ${SERIAL:-} ]]; then
  labels="$labels && Serial"; out_default=/tmp/floe-node-e2e-out/features-serial; procs=1
else
  labels="$labels && !Serial"; out_default=/tmp/floe-node-e2e-out/features; procs=${PROCS:-4}
fi
OUT=${NODE_E2E_OUT:-$out_default}
status=0
NODE_E2E_OUT=$OUT LABELS=$labels FEATURE_GATES=$FEATURE_GATES FOCUS=. SKIP='\[Flaky\]' PROCS=$procs \
  "$ROOT/hack/node-e2e.sh" "$@" || status=$?
report=$OUT/run/report.json
[[ -s $report ]] || exit "${status:-1}"
{
  echo
  echo "## by feature (a spec labelled for several features counts for each)"
  printf '%-40s %7s %7s %7s\n' feature passed failed skipped
  for f in $FEATURES; do
    jq -r --arg f "$f" '
      [.[].SpecReports[] | select(.LeafNodeType=="It" and .NumAttempts>0)
       | select(((.ContainerHierarchyLabels // []) | flatten) + (.LeafNodeLabels // []) | any(. == "Feature:\($f)" or . == "FeatureGate:\($f)"))]
      | [(map(select(.State=="passed")) | length), (map(select(.State!="passed" and .State!="skipped")) | length), (map(select(.State=="skipped")) | length)]
      | "\($f) \(.[0]) \(.[1]) \(.[2])"' "$report"
  done | while read -r f p x s; do printf '%-40s %7s %7s %7s\n' "$f" "$p" "$x" "$s"; done
  echo
  jq -r '[.[].SpecReports[] | select(.LeafNodeType=="It" and .NumAttempts>0)]
    | "\(map(select(.State=="passed")) | length) passed, \(map(select(.State!="passed" and .State!="skipped")) | length) failed, \(map(select(.State=="skipped")) | length) skipped"' "$report"
} >>"$OUT/summary.txt"
sed -n '/^## by feature/,$p' "$OUT/summary.txt"
exit $status
