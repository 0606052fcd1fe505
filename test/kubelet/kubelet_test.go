package kubelet

import (
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/floe-cri/floe/test/fixtures"
	"github.com/floe-cri/floe/test/harness"
)

// The pods of the test, all from the fixture busybox image (user 1000).
func newPod(name string, containers ...corev1.Container) *corev1.Pod {
	grace := int64(1) // sleep as PID 1 ignores SIGTERM: do not wait 30 s
	return &corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: corev1.PodSpec{
			Containers:                    containers,
			RestartPolicy:                 corev1.RestartPolicyAlways,
			TerminationGracePeriodSeconds: &grace,
		},
	}
}

func shell(name, image, script string) corev1.Container {
	return corev1.Container{Name: name, Image: image, Command: []string{"sh", "-c", script}, ImagePullPolicy: corev1.PullIfNotPresent}
}

func resources(cpu, mem string, limits bool) corev1.ResourceRequirements {
	l := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu), corev1.ResourceMemory: resource.MustParse(mem)}
	r := corev1.ResourceRequirements{Requests: l}
	if limits {
		r.Limits = l
	}
	return r
}

func root() *corev1.PodSecurityContext {
	uid := int64(0)
	return &corev1.PodSecurityContext{RunAsUser: &uid}
}

// Conditions on /pods.
func running(p *corev1.Pod, container string) (*corev1.ContainerStatus, error) {
	for i := range p.Status.ContainerStatuses {
		cs := &p.Status.ContainerStatuses[i]
		if cs.Name == container {
			if cs.State.Running == nil {
				return cs, fmt.Errorf("%s/%s not running: %+v", p.Name, container, cs.State)
			}
			return cs, nil
		}
	}
	return nil, fmt.Errorf("%s: no status for container %s", p.Name, container)
}

func allRunningReady(pods map[string]*corev1.Pod, names ...string) error {
	for _, name := range names {
		p := pods[name]
		if p == nil {
			return fmt.Errorf("pod %s not listed", name)
		}
		if p.Status.Phase != corev1.PodRunning {
			return fmt.Errorf("pod %s is %s", name, p.Status.Phase)
		}
		for _, c := range p.Spec.Containers {
			cs, err := running(p, c.Name)
			if err != nil {
				return err
			}
			if !cs.Ready {
				return fmt.Errorf("%s/%s running but not ready", name, c.Name)
			}
		}
	}
	return nil
}

// TestKubeletStaticPods runs the real kubelet in standalone mode against a
// private floe and checks, through the kubelet's own view (/pods and
// container logs on its read-only port), pod networking, host network,
// init and sidecar containers, emptyDir (disk and memory), the three probe
// kinds, restart policies and crash-loop back-off, QoS classes (cgroups,
// memory limits, oom_score_adj), a shared PID namespace, a SIGKILL of floe
// under running pods, and that deleting the manifests leaves nothing on
// the host.
func TestKubeletStaticPods(t *testing.T) {
	harness.RequireRoot(t)
	bin := kubeletBinary(t)
	start := time.Now()

	reg := fixtures.StartRegistry(t, fixtures.RegistryOptions{})
	image := reg.PushBusybox(t, "busybox:kubelet").Ref

	// Cleanup order (last registered runs first): kubelet stopped, floe's
	// leftovers removed by the daemon's cleanup, then the node's dirs and
	// cgroups, then the leak check against the host before the test.
	harness.CheckLeaks(t)
	n := prepareNode(t, bin)
	d := harness.StartDaemon(t, harness.Options{RegistriesConf: reg.RegistriesConf(false)})
	n.start(d.Socket, d.Subnet)
	t.Cleanup(n.stop)
	t.Logf("kubelet up after %v", time.Since(start).Round(time.Millisecond))

	// What the host looks like with the kubelet idle (its kubepods and QoS
	// cgroups exist now): the pods must leave exactly this behind.
	n.waitPods(t, "kubelet lists no pods", 30*time.Second, func(p map[string]*corev1.Pod) error {
		if len(p) != 0 {
			return fmt.Errorf("%d pods", len(p))
		}
		return nil
	})
	idle := harness.Snapshot(t, d.IPAMDir)
	// The kubelet makes its node-level QoS cgroups in some hierarchies only
	// once the first pod needs them; they stay until the node goes. In the
	// cgroup2 tree of a hybrid host it also makes the cgroup root itself
	// (the test makes it only in the v1 hierarchies), sometimes only after
	// this snapshot: it stays too, and the test removes it at the end.
	for _, h := range cgroupHierarchies() {
		idle.Cgroups[filepath.Join(h, n.cgroupRoot)] = true
		for _, q := range []string{"", "burstable", "besteffort"} {
			idle.Cgroups[filepath.Join(h, n.cgroupRoot, "kubepods", q)] = true
		}
	}

	// The floor floe clamps oom_score_adj to: its own value without
	// CAP_SYS_RESOURCE (as here), -1000 with it.
	guaranteedOOM := max(-997, floeMinOOMScoreAdj(t, d.PID()))
	hostLink := hostLinkName(t)

	// Long-running pods, checked again after floe is killed.
	web := newPod("web", shell("httpd", image, "mkdir -p /tmp/www && echo floe-web > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www"))
	web.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: 8080}}
	web.Spec.Containers[0].ReadinessProbe = &corev1.Probe{
		ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/index.html", Port: intstr.FromInt32(8080)}},
		PeriodSeconds: 1,
	}
	web.Spec.Containers[0].LivenessProbe = &corev1.Probe{
		ProbeHandler:  corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(8080)}},
		PeriodSeconds: 1, FailureThreshold: 3,
	}

	hostnet := newPod("hostnet", shell("c", image, fmt.Sprintf("ip link show %s && echo hostnet-ok; exec sleep 3600", hostLink)))
	hostnet.Spec.HostNetwork = true

	initPod := newPod("init", shell("main", image, "cat /data/log /mem/x; grep -q ' /mem tmpfs ' /proc/mounts && echo mem-is-tmpfs; exec sleep 3600"))
	always := corev1.ContainerRestartPolicyAlways
	sidecar := shell("sidecar", image, "echo sidecar-up; exec sleep 3600")
	sidecar.RestartPolicy = &always
	initPod.Spec.InitContainers = []corev1.Container{
		shell("first", image, "echo init-1 >> /data/log && echo mem > /mem/x && echo first-done"),
		sidecar,
		shell("second", image, "echo init-2 >> /data/log && echo second-done"),
	}
	initPod.Spec.Volumes = []corev1.Volume{
		{Name: "data", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
		{Name: "mem", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory}}},
	}
	for i := range initPod.Spec.InitContainers {
		initPod.Spec.InitContainers[i].VolumeMounts = []corev1.VolumeMount{{Name: "data", MountPath: "/data"}, {Name: "mem", MountPath: "/mem"}}
	}
	initPod.Spec.Containers[0].VolumeMounts = initPod.Spec.InitContainers[0].VolumeMounts
	initPod.Spec.SecurityContext = root()

	probes := newPod("probes", shell("c", image, "sleep 3; touch /tmp/ready; exec sleep 3600"))
	probes.Spec.Containers[0].ReadinessProbe = &corev1.Probe{
		ProbeHandler:  corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"cat", "/tmp/ready"}}},
		PeriodSeconds: 1,
	}

	qosScript := "echo oom=$(cat /proc/self/oom_score_adj) mem=$(cat /sys/fs/cgroup/memory/memory.limit_in_bytes); exec sleep 3600"
	guaranteed := newPod("guaranteed", shell("c", image, qosScript))
	guaranteed.Spec.Containers[0].Resources = resources("100m", "64Mi", true)
	burstable := newPod("burstable", shell("c", image, qosScript))
	burstable.Spec.Containers[0].Resources = resources("50m", "32Mi", false)
	besteffort := newPod("besteffort", shell("c", image, qosScript))

	sharedPID := newPod("sharedpid",
		shell("sleeper", image, "exec sleep 3601"),
		shell("watcher", image, "until ps | grep -q '[s]leep 3601'; do sleep 1; done; echo saw-sleeper; exec sleep 3600"))
	share := true
	sharedPID.Spec.ShareProcessNamespace = &share

	// Pods whose containers end or get restarted.
	liveness := newPod("liveness", shell("c", image, "echo started; exec sleep 3600"))
	liveness.Spec.Containers[0].LivenessProbe = &corev1.Probe{
		ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/", Port: intstr.FromInt32(9999)}},
		PeriodSeconds: 1, FailureThreshold: 1,
	}
	crash := newPod("crash", shell("c", image, "echo crash-out; exit 1"))
	onFailure := newPod("onfailure", shell("c", image, "if [ -f /data/once ]; then echo second-run; exit 0; fi; touch /data/once; echo first-run; exit 7"))
	onFailure.Spec.RestartPolicy = corev1.RestartPolicyOnFailure
	onFailure.Spec.Volumes = []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
	onFailure.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "data", MountPath: "/data"}}
	never := newPod("never", shell("c", image, "echo bye; exit 3"))
	never.Spec.RestartPolicy = corev1.RestartPolicyNever

	for _, p := range []*corev1.Pod{web, hostnet, initPod, probes, guaranteed, burstable, besteffort, sharedPID, liveness, crash, onFailure, never} {
		n.addPod(p)
	}
	steady := []string{"web", "hostnet", "init", "probes", "guaranteed", "burstable", "besteffort", "sharedpid"}
	pods := n.waitPods(t, "steady pods running and ready", 90*time.Second, func(p map[string]*corev1.Pod) error {
		return allRunningReady(p, steady...)
	})
	t.Logf("%d steady pods running and ready after %v", len(steady), time.Since(start).Round(time.Millisecond))

	t.Run("PodNetwork", func(t *testing.T) {
		ip := net.ParseIP(pods["web"].Status.PodIP)
		_, subnet, _ := net.ParseCIDR(d.Subnet)
		if ip == nil || !subnet.Contains(ip) {
			t.Fatalf("web pod IP %q not in floe's pod network %s", pods["web"].Status.PodIP, d.Subnet)
		}
		// (nc: the wget of Debian's static busybox segfaults, on the host too.)
		client := newPod("client", shell("c", image, fmt.Sprintf(`until printf 'GET /index.html HTTP/1.0\r\n\r\n' | nc -w 2 %s 8080 | grep floe-web; do sleep 1; done; exec sleep 3600`, ip)))
		n.addPod(client)
		n.waitLog(t, "client", "c", "floe-web", 60*time.Second)
		if body, err := httpGet(fmt.Sprintf("http://%s:8080/index.html", ip)); err != nil || !strings.Contains(body, "floe-web") {
			t.Errorf("host to pod: %q, %v", body, err)
		}
	})
	t.Run("HostNetwork", func(t *testing.T) {
		n.waitLog(t, "hostnet", "c", "hostnet-ok", 10*time.Second)
		// (No podIP to check: a standalone kubelet has no node addresses
		// to report for host-network pods.)
	})
	t.Run("InitContainersAndEmptyDir", func(t *testing.T) {
		got := n.waitLog(t, "init", "main", "mem-is-tmpfs", 10*time.Second)
		if want := "init-1\ninit-2\nmem\nmem-is-tmpfs\n"; got != want {
			t.Errorf("main container log %q, want %q", got, want)
		}
		for c, want := range map[string]string{"first": "first-done", "second": "second-done", "sidecar": "sidecar-up"} {
			if got, err := n.logs("init", c, false); err != nil || !strings.Contains(got, want) {
				t.Errorf("init container %s log %q (%v), want %q", c, got, err, want)
			}
		}
		p := pods["init"]
		for _, s := range p.Status.InitContainerStatuses {
			switch s.Name {
			case "sidecar":
				if s.State.Running == nil || s.RestartCount != 0 {
					t.Errorf("sidecar should keep running: %+v", s)
				}
			default:
				if s.State.Terminated == nil || s.State.Terminated.ExitCode != 0 {
					t.Errorf("init container %s should have completed: %+v", s.Name, s.State)
				}
			}
		}
	})
	t.Run("Probes", func(t *testing.T) {
		// exec readiness: ready only once /tmp/ready exists (~3 s after start).
		cs, _ := running(pods["probes"], "c")
		var readyAt time.Time
		for _, c := range pods["probes"].Status.Conditions {
			if c.Type == corev1.ContainersReady {
				readyAt = c.LastTransitionTime.Time
			}
		}
		if started := cs.State.Running.StartedAt.Time; readyAt.Sub(started) < 2*time.Second {
			t.Errorf("exec readiness probe passed %v after start, before the file existed", readyAt.Sub(started))
		}
		// httpGet readiness and tcpSocket liveness hold for the web pod
		// (ready, never restarted); a failing httpGet liveness restarts.
		n.waitPods(t, "failing liveness probe restarts the container", 60*time.Second, func(p map[string]*corev1.Pod) error {
			for _, s := range p["liveness"].Status.ContainerStatuses {
				if s.RestartCount >= 1 && s.LastTerminationState.Terminated != nil {
					return nil
				}
			}
			return fmt.Errorf("liveness pod not restarted yet")
		})
	})
	t.Run("RestartPolicies", func(t *testing.T) {
		p := n.waitPods(t, "restart policies applied", 90*time.Second, func(p map[string]*corev1.Pod) error {
			cs := p["crash"].Status.ContainerStatuses
			if len(cs) == 0 || cs[0].RestartCount < 2 || cs[0].State.Waiting == nil || cs[0].State.Waiting.Reason != "CrashLoopBackOff" {
				return fmt.Errorf("crash: no CrashLoopBackOff after 2 restarts yet: %+v", cs)
			}
			if p["onfailure"].Status.Phase != corev1.PodSucceeded {
				return fmt.Errorf("onfailure is %s", p["onfailure"].Status.Phase)
			}
			if p["never"].Status.Phase != corev1.PodFailed {
				return fmt.Errorf("never is %s", p["never"].Status.Phase)
			}
			return nil
		})
		if cs := p["onfailure"].Status.ContainerStatuses[0]; cs.RestartCount != 1 || cs.LastTerminationState.Terminated == nil || cs.LastTerminationState.Terminated.ExitCode != 7 {
			t.Errorf("OnFailure: want one restart after exit 7, got %+v", cs)
		}
		if cs := p["never"].Status.ContainerStatuses[0]; cs.RestartCount != 0 || cs.State.Terminated == nil || cs.State.Terminated.ExitCode != 3 {
			t.Errorf("Never: want no restart and exit code 3, got %+v", cs)
		}
		if got, err := n.logs("crash", "c", true); err != nil || !strings.Contains(got, "crash-out") {
			t.Errorf("previous log of the crash-looping container: %q, %v", got, err)
		}
		if got, err := n.logs("never", "c", false); err != nil || got != "bye\n" {
			t.Errorf("log of an exited container: %q, %v", got, err)
		}
	})
	t.Run("QoS", func(t *testing.T) {
		for _, c := range []struct {
			pod       string
			class     corev1.PodQOSClass
			cgroupDir string // below <cgroupRoot>/kubepods
			oom       func(int) bool
			mem       string
		}{
			{"guaranteed", corev1.PodQOSGuaranteed, "", func(v int) bool { return v == guaranteedOOM }, strconv.Itoa(64 << 20)},
			{"burstable", corev1.PodQOSBurstable, "burstable", func(v int) bool { return v >= 2 && v <= 999 }, ""},
			{"besteffort", corev1.PodQOSBestEffort, "besteffort", func(v int) bool { return v == 1000 }, ""},
		} {
			p := pods[c.pod]
			if p.Status.QOSClass != c.class {
				t.Errorf("%s: QoS class %q, want %q", c.pod, p.Status.QOSClass, c.class)
			}
			log := n.waitLog(t, c.pod, "c", "oom=", 10*time.Second)
			var oom int
			var mem string
			if _, err := fmt.Sscanf(strings.TrimSpace(log), "oom=%d mem=%s", &oom, &mem); err != nil {
				t.Errorf("%s: log %q: %v", c.pod, log, err)
				continue
			}
			if !c.oom(oom) {
				t.Errorf("%s: oom_score_adj %d (guaranteed floor here %d)", c.pod, oom, guaranteedOOM)
			}
			if c.mem != "" && mem != c.mem {
				t.Errorf("%s: memory limit %s, want %s", c.pod, mem, c.mem)
			}
			// The pod cgroup the kubelet made, holding floe's container.
			podCg := filepath.Join("/sys/fs/cgroup/memory", n.cgroupRoot, "kubepods", c.cgroupDir, "pod"+string(p.UID))
			entries, err := os.ReadDir(podCg)
			var children []string
			for _, e := range entries {
				if e.IsDir() {
					children = append(children, e.Name())
				}
			}
			if err != nil || len(children) == 0 {
				t.Errorf("%s: pod cgroup %s holds no container cgroup (%v)", c.pod, podCg, err)
			}
		}
	})
	t.Run("RunInContainer", func(t *testing.T) {
		// The kubelet's /run runs a command through ExecSync.
		out, err := n.post(fmt.Sprintf("/run/default/web-%s/httpd?cmd=%s", n.name, url.QueryEscape("cat /tmp/www/index.html")))
		if err != nil || out != "floe-web\n" {
			t.Errorf("/run: %q, %v", out, err)
		}
	})
	t.Run("StatsSummary", func(t *testing.T) {
		// The kubelet's summary API is built from floe's stats RPCs. (Only
		// CPU and memory: the full summary fails before reaching the
		// runtime on this VM, cAdvisor finding no filesystem info for
		// the root device /dev/vda.)
		var sum summary
		var last string
		deadline := time.Now().Add(30 * time.Second)
		for {
			body, err := n.get("/stats/summary?only_cpu_and_memory=true", false)
			last = fmt.Sprintf("%v %s", err, body)
			if err == nil {
				sum = summary{}
				if err = json.Unmarshal(body, &sum); err == nil {
					if err = sum.check(n.name, steady); err == nil {
						break
					}
				}
				last = fmt.Sprintf("%v\n%s", err, body)
			}
			if time.Now().After(deadline) {
				t.Fatalf("stats summary: %s", last)
			}
			time.Sleep(time.Second)
		}
	})
	t.Run("SharedPIDNamespace", func(t *testing.T) {
		n.waitLog(t, "sharedpid", "watcher", "saw-sleeper", 30*time.Second)
	})

	// floe dies with SIGKILL under running pods and comes back: the
	// kubelet must find the same sandboxes and containers, nothing
	// restarted or recreated.
	t.Run("KillFloe", func(t *testing.T) {
		before := n.waitPods(t, "steady pods before the kill", 30*time.Second, func(p map[string]*corev1.Pod) error {
			return allRunningReady(p, append(steady, "client")...)
		})
		d.Kill9()
		time.Sleep(2 * time.Second)
		d.Start()
		// Several PLEG relists and pod syncs (syncFrequency 5 s) later.
		time.Sleep(15 * time.Second)
		after := n.waitPods(t, "steady pods after floe restarted", 30*time.Second, func(p map[string]*corev1.Pod) error {
			return allRunningReady(p, append(steady, "client")...)
		})
		for _, name := range append(steady, "client") {
			for i, b := range before[name].Status.ContainerStatuses {
				a := after[name].Status.ContainerStatuses[i]
				if a.ContainerID != b.ContainerID || a.RestartCount != b.RestartCount {
					t.Errorf("%s/%s changed across the floe restart: %s (restarts %d) -> %s (restarts %d)",
						name, b.Name, b.ContainerID, b.RestartCount, a.ContainerID, a.RestartCount)
				}
			}
		}
		resp, err := d.Runtime.ListPodSandbox(harness.Ctx(t), &runtimeapi.ListPodSandboxRequest{})
		if err != nil {
			t.Fatal(err)
		}
		count := map[string]int{}
		for _, sb := range resp.Items {
			count[strings.TrimSuffix(sb.Metadata.Name, "-"+n.name)]++
		}
		for _, name := range append(steady, "client") {
			if count[name] != 1 {
				t.Errorf("pod %s has %d sandboxes after the floe restart, want 1", name, count[name])
			}
		}
		if body, err := httpGet(fmt.Sprintf("http://%s:8080/index.html", after["web"].Status.PodIP)); err != nil || !strings.Contains(body, "floe-web") {
			t.Errorf("web pod after the floe restart: %q, %v", body, err)
		}
	})

	// Deleting the manifests: the kubelet stops the pods and its garbage
	// collection (once a minute) removes containers and sandboxes. Nothing
	// may remain: netns, mounts, veths, conmon/runc, pod cgroups, IPs.
	t.Run("Removal", func(t *testing.T) {
		removed := time.Now()
		n.removeAllPods()
		n.waitPods(t, "the kubelet drops the deleted pods", 60*time.Second, func(p map[string]*corev1.Pod) error {
			if len(p) != 0 {
				return fmt.Errorf("%d pods left", len(p))
			}
			return nil
		})
		deadline := time.Now().Add(3 * time.Minute)
		for {
			var left []string
			ctx := harness.Ctx(t)
			sbs, err := d.Runtime.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
			if err != nil {
				t.Fatal(err)
			}
			if len(sbs.Items) > 0 {
				left = append(left, fmt.Sprintf("%d sandboxes in floe", len(sbs.Items)))
			}
			cs, err := d.Runtime.ListContainers(ctx, &runtimeapi.ListContainersRequest{})
			if err != nil {
				t.Fatal(err)
			}
			if len(cs.Containers) > 0 {
				left = append(left, fmt.Sprintf("%d containers in floe", len(cs.Containers)))
			}
			left = append(left, harness.SortedKinds(idle.Leaks(t))...)
			if len(left) == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("3 min after the pods were deleted:\n%s", strings.Join(left, "\n"))
			}
			time.Sleep(time.Second)
		}
		t.Logf("everything gone %v after the manifests were deleted", time.Since(removed).Round(time.Second))
	})
	// The kubelet retries what fails, so a failed RPC may not show in the
	// pods' state; floe logs every error it returns or swallows.
	var errs []string
	for _, line := range strings.Split(d.Log(), "\n") {
		if strings.Contains(line, "level=ERROR") {
			errs = append(errs, line)
		}
	}
	if len(errs) > 0 {
		t.Errorf("floe logged %d errors under the kubelet:\n%s", len(errs), strings.Join(errs, "\n"))
	}
	t.Logf("total %v", time.Since(start).Round(time.Second))
}

// floeMinOOMScoreAdj is the lowest oom_score_adj the floe process may give
// containers: -1000 with CAP_SYS_RESOURCE, its own value without.
func floeMinOOMScoreAdj(t *testing.T, pid int) int {
	t.Helper()
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			caps, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				t.Fatal(err)
			}
			if caps&(1<<24) != 0 { // CAP_SYS_RESOURCE
				return -1000
			}
		}
	}
	own, err := os.ReadFile(fmt.Sprintf("/proc/%d/oom_score_adj", pid))
	if err != nil {
		t.Fatal(err)
	}
	v, err := strconv.Atoi(strings.TrimSpace(string(own)))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// hostLinkName is a link that exists only in the host's network namespace
// (the first one with an address besides loopback).
func hostLinkName(t *testing.T) string {
	t.Helper()
	ifs, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range ifs {
		if i.Flags&net.FlagLoopback != 0 || i.Flags&net.FlagUp == 0 {
			continue
		}
		if addrs, _ := i.Addrs(); len(addrs) > 0 {
			return i.Name
		}
	}
	t.Fatal("no host interface with an address")
	return ""
}

// summary is the part of the kubelet's /stats/summary the test reads.
type summary struct {
	Pods []struct {
		PodRef struct {
			Name string `json:"name"`
		} `json:"podRef"`
		Containers []struct {
			Name string `json:"name"`
			CPU  *struct {
				UsageCoreNanoSeconds *uint64 `json:"usageCoreNanoSeconds"`
			} `json:"cpu"`
			Memory *struct {
				WorkingSetBytes *uint64 `json:"workingSetBytes"`
			} `json:"memory"`
		} `json:"containers"`
	} `json:"pods"`
}

// check wants every pod listed with CPU and memory usage for each of its
// containers.
func (s summary) check(node string, pods []string) error {
	byName := map[string]int{}
	for i, p := range s.Pods {
		byName[strings.TrimSuffix(p.PodRef.Name, "-"+node)] = i
	}
	for _, name := range pods {
		i, ok := byName[name]
		if !ok {
			return fmt.Errorf("pod %s not in the summary", name)
		}
		if len(s.Pods[i].Containers) == 0 {
			return fmt.Errorf("pod %s: no container stats", name)
		}
		for _, c := range s.Pods[i].Containers {
			if c.CPU == nil || c.CPU.UsageCoreNanoSeconds == nil || *c.CPU.UsageCoreNanoSeconds == 0 {
				return fmt.Errorf("pod %s container %s: no CPU usage", name, c.Name)
			}
			if c.Memory == nil || c.Memory.WorkingSetBytes == nil || *c.Memory.WorkingSetBytes == 0 {
				return fmt.Errorf("pod %s container %s: no memory working set", name, c.Name)
			}
		}
	}
	return nil
}
