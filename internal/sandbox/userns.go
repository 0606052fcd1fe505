package sandbox

import (
	"context"
	"fmt"
	"path/filepath"
	"syscall"
	"time"

	"github.com/floe-cri/floe/internal/nspin"
	"github.com/floe-cri/floe/internal/podinit"
	"github.com/floe-cri/floe/internal/userns"
)

// pinInUserns makes the pod's user namespace and, owned by it, its
// network, IPC and UTS namespaces, and pins them all. They are made by
// cloning the pod init into all of them at once (floe itself, being
// multithreaded, cannot enter a new user namespace). A pod that shares
// its PID namespace keeps that init, whose PID namespace is then owned by
// the user namespace too; any other pod's init is stopped once the
// namespaces are pinned.
func (m *Manager) pinInUserns(ctx context.Context, sb *Sandbox, hostname string) error {
	sb.UserPath = filepath.Join(sb.RunDir, "ns", "user")
	// Recorded before the init exists: a crash from here on finds the
	// init by its pod id and the pins by these paths.
	if err := m.save(sb); err != nil {
		return fmt.Errorf("record user namespace path: %w", err)
	}
	flags := uintptr(syscall.CLONE_NEWUSER)
	if sb.NetnsPath != "" {
		flags |= syscall.CLONE_NEWNET | syscall.CLONE_NEWUTS
	}
	if sb.IPCPath != "" {
		flags |= syscall.CLONE_NEWIPC
	}
	maps := sb.Spec.UserNS
	init, err := podinit.Start(ctx, podinit.Options{
		Programs: m.opts.PodInit, CgroupProcs: m.podCgroupProcs(sb), PodID: sb.ID,
		ExtraNamespaces: flags, UIDMap: sysIDMaps(maps.UIDs), GIDMap: sysIDMaps(maps.GIDs),
	})
	if err != nil {
		return fmt.Errorf("start pod init in a new user namespace: %w", err)
	}
	stopInit := func() {
		if err := init.Stop(ctx, 5*time.Second); err != nil {
			m.log.Error("stop the pod init that made the pod's namespaces", "pod", sb.ID, "err", err)
		}
	}
	req := nspin.Request{UserPath: sb.UserPath, NetPath: sb.NetnsPath, IPCPath: sb.IPCPath, UTSPath: sb.UTSPath, Hostname: hostname}
	if err := nspin.PinProcess(init.Pid, req); err != nil {
		stopInit()
		return err
	}
	if sb.Spec.PIDMode != ModePod {
		stopInit()
		return nil
	}
	sb.PodInit = init
	if err := m.save(sb); err != nil {
		return fmt.Errorf("record pod init: %w", err)
	}
	m.log.Info("pod init started in the pod's user namespace", "pod", sb.ID, "pid", init.Pid, "uidMap", maps.UIDs, "gidMap", maps.GIDs)
	return nil
}

func sysIDMaps(maps []userns.IDMap) []syscall.SysProcIDMap {
	out := make([]syscall.SysProcIDMap, len(maps))
	for i, mp := range maps {
		out[i] = syscall.SysProcIDMap{ContainerID: int(mp.ContainerID), HostID: int(mp.HostID), Size: int(mp.Size)}
	}
	return out
}

// UserNamespaces returns the mappings of every pod floe knows, unclaimed
// ones included, so ids handed out automatically never overlap a live
// pod's.
func (m *Manager) UserNamespaces() []*userns.Mappings {
	var out []*userns.Mappings
	for _, sb := range m.table.All(func(sb *Sandbox) bool { return sb.Spec.UserNS != nil }) {
		out = append(out, sb.Spec.UserNS)
	}
	return out
}
