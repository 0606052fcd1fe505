package sandbox

import (
	"context"
	"fmt"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// UpdateResources carries out a CRI UpdatePodSandboxResources: the hooks
// (NRI plugins) hear of the pod-level resources first and may refuse
// them, then update records them in the pod's stored configuration, then
// the hooks hear it is done. A refusal leaves the record as it was.
func (m *Manager) UpdateResources(ctx context.Context, idOrPrefix string, overhead, resources *specs.LinuxResources, update func(raw []byte) ([]byte, error)) error {
	sb, err := m.Get(idOrPrefix)
	if err != nil {
		return err
	}
	if err := m.hooks.UpdatePodSandbox(ctx, sb, overhead, resources); err != nil {
		return fmt.Errorf("update resources of pod %s: %w", sb.ID, err)
	}
	if err := m.UpdateConfig(sb.ID, update); err != nil {
		return err
	}
	m.hooks.PostUpdatePodSandbox(ctx, sb)
	return nil
}
