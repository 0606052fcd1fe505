package inspect

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/floe-cri/floe/internal/config"
	"github.com/floe-cri/floe/internal/container"
	"github.com/floe-cri/floe/internal/errdefs"
	"github.com/floe-cri/floe/internal/sandbox"
)

// defaultRuncRoot is where runc keeps state for root when --root is not
// given; floe leaves it alone unless a handler sets runtime_root.
const defaultRuncRoot = "/run/runc"

// Container is GET /containers/<id>.
type Container struct {
	ID           string    `json:"id"`
	Name         string    `json:"name"`
	Attempt      uint32    `json:"attempt"`
	PodID        string    `json:"podId"`
	PodName      string    `json:"podName"`
	PodNamespace string    `json:"podNamespace"`
	State        string    `json:"state"`
	Image        string    `json:"image"`
	ImageRef     string    `json:"imageRef"`
	CreatedAt    time.Time `json:"createdAt"`
	StartedAt    time.Time `json:"startedAt,omitzero"`
	FinishedAt   time.Time `json:"finishedAt,omitzero"`
	ExitCode     int32     `json:"exitCode"`
	Reason       string    `json:"reason,omitempty"`
	Handler      string    `json:"runtimeHandler"`
	RuntimePath  string    `json:"runtimePath"`
	// RuntimeRoot is the state root runc really uses; RuntimeState is
	// the command that shows the container with runc itself.
	RuntimeRoot  string   `json:"runtimeRoot"`
	RuntimeState string   `json:"runtimeStateCommand"`
	Pid          int      `json:"pid,omitempty"`
	ConmonPid    int      `json:"conmonPid,omitempty"`
	Pids         []int    `json:"pids,omitempty"`
	CgroupsPath  string   `json:"cgroupsPath,omitempty"`
	LogPath      string   `json:"logPath"`
	Bundle       string   `json:"bundle"`
	Rootfs       string   `json:"rootfs,omitempty"`
	Mounts       []string `json:"mounts,omitempty"`
}

// ContainerReport builds the report of one container.
func ContainerReport(cfg *config.Config, c *container.Container, sb *sandbox.Sandbox) *Container {
	r := &Container{
		ID: c.ID, Name: c.Spec.Name, Attempt: c.Spec.Attempt, PodID: c.SandboxID,
		State: string(c.State), Image: c.ReportedImage(), ImageRef: c.ImageRef,
		CreatedAt: time.Unix(0, c.CreatedAt).UTC(), ExitCode: c.ExitCode, Reason: c.Reason,
		Handler: c.Handler, LogPath: c.LogPath, Bundle: c.Bundle, Rootfs: c.Rootfs,
	}
	if c.StartedAt != 0 {
		r.StartedAt = time.Unix(0, c.StartedAt).UTC()
	}
	if c.FinishedAt != 0 {
		r.FinishedAt = time.Unix(0, c.FinishedAt).UTC()
	}
	if sb != nil {
		r.PodName, r.PodNamespace = sb.Spec.Name, sb.Spec.Namespace
	}
	rt := cfg.Runtimes[c.Handler]
	r.RuntimePath, r.RuntimeRoot = rt.RuntimePath, rt.RuntimeRoot
	rootFlag := ""
	if rt.RuntimeRoot != "" {
		rootFlag = " --root " + rt.RuntimeRoot
	} else if filepath.Base(rt.RuntimePath) == "runc" {
		r.RuntimeRoot = defaultRuncRoot
	}
	r.RuntimeState = rt.RuntimePath + rootFlag + " state " + c.ID
	if m := c.Monitor; m != nil {
		r.ConmonPid = m.ConmonPid
		if c.State == container.StateRunning || c.State == container.StateCreated {
			r.Pid = m.Pid
			r.Pids = cgroupPids(m.MemoryCgroup)
		}
	}
	for _, m := range c.Spec.OCI.Mounts {
		ro := "rw"
		if m.Readonly {
			ro = "ro"
		}
		src := m.HostPath
		if m.Image != "" {
			src = "image " + m.Image
			if id := c.ImageVolumeID(m.Image); id != "" {
				src += " (" + id + ")"
			}
			if m.ImageSubPath != "" {
				src += " sub path " + m.ImageSubPath
			}
		}
		r.Mounts = append(r.Mounts, src+" -> "+m.ContainerPath+" ("+ro+")")
	}
	r.CgroupsPath = c.CgroupsPath
	return r
}

// cgroupPids lists the processes of the container's cgroup.
func cgroupPids(cgroupDir string) []int {
	if cgroupDir == "" {
		return nil
	}
	data, err := os.ReadFile(filepath.Join(cgroupDir, "cgroup.procs"))
	if err != nil {
		return nil
	}
	var pids []int
	for _, f := range strings.Fields(string(data)) {
		if p, err := strconv.Atoi(f); err == nil {
			pids = append(pids, p)
		}
	}
	return pids
}

// findContainer accepts an id, a unique id prefix, a container name that
// is unique on the node, or "namespace/pod/name".
func findContainer(cm *container.Manager, sm *sandbox.Manager, ref string) (*container.Container, error) {
	if c, err := cm.Get(ref); err == nil || errdefs.KindOf(err) != errdefs.KindNotFound {
		return c, err
	}
	parts := strings.Split(ref, "/")
	name := parts[len(parts)-1]
	var matches []*container.Container
	for _, c := range cm.List(container.Filter{}) {
		if c.Spec.Name != name {
			continue
		}
		if len(parts) == 3 {
			sb, err := sm.Get(c.SandboxID)
			if err != nil || sb.Spec.Namespace != parts[0] || sb.Spec.Name != parts[1] {
				continue
			}
		}
		matches = append(matches, c)
	}
	switch len(matches) {
	case 0:
		return nil, errdefs.NotFound("no container with id, id prefix or name %q", ref)
	case 1:
		return matches[0], nil
	}
	return nil, errdefs.InvalidArgument("container", "%q names %d containers; write namespace/pod/name or an id", ref, len(matches))
}
