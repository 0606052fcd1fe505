package daemon

import (
	"log/slog"

	"github.com/floe-cri/floe/internal/config"
	"github.com/floe-cri/floe/internal/ocifeatures"
	"github.com/floe-cri/floe/internal/userns"
)

// enableUserns reports user namespaces for every handler that answered
// its features probe, when the node supports them: floe makes the user
// namespace and the idmapped mounts itself, so the handler only has to
// join a namespace by path (runc 1.1 does; its own idmap extension,
// which the features document describes, is not needed).
func enableUserns(features map[string]ocifeatures.Features, support userns.Support, log *slog.Logger) {
	if !support.Enabled {
		log.Info("pod user namespaces unavailable", "reason", support.Reason)
		return
	}
	for name, f := range features {
		if f.Raw == nil {
			log.Info("pod user namespaces not offered on a handler that did not answer its features probe", "handler", name)
			continue
		}
		f.UserNamespaces = true
		features[name] = f
	}
	log.Info("pod user namespaces available", "mechanism", support.Mechanism)
}

// loadSubIDs reads the ranges io.kubernetes.cri-o.userns-mode=auto hands
// out; without them that annotation is refused with the reason.
func loadSubIDs(cfg config.UsernsConfig, log *slog.Logger) *userns.Allocator {
	a, err := userns.NewAllocator(cfg.SubIDUser, cfg.SubUIDFile, cfg.SubGIDFile)
	if err != nil {
		log.Info("automatic pod user namespaces (userns-mode=auto) unavailable", "reason", err)
	}
	return a
}
