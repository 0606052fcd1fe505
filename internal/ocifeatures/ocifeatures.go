// Package ocifeatures asks an OCI runtime what it supports (`<runtime>
// features`, the OCI features document) so floe reports to the kubelet only
// what the handler can really do: recursive read-only mounts need the
// "rro" mount option, pod user namespaces need idmapped mounts.
package ocifeatures

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"slices"
	"time"
)

// Features floe derives from the runtime's document.
type Features struct {
	RecursiveReadOnlyMounts bool `json:"recursiveReadOnlyMounts"`
	UserNamespaces          bool `json:"userNamespaces"`
	// Raw keeps the document for Status(verbose) and inspect.
	Raw json.RawMessage `json:"raw,omitempty"`
}

// document is the part of the OCI features document floe reads.
type document struct {
	MountOptions []string `json:"mountOptions"`
	Linux        struct {
		MountExtensions struct {
			IDMap struct {
				Enabled *bool `json:"enabled"`
			} `json:"idmap"`
		} `json:"mountExtensions"`
	} `json:"linux"`
}

// Probe runs `runtimePath features` with a timeout. A runtime without the
// command supports neither feature as far as floe can tell.
func Probe(ctx context.Context, runtimePath string) (Features, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, runtimePath, "features").Output()
	if err != nil {
		return Features{}, fmt.Errorf("%s features: %w", runtimePath, err)
	}
	return Parse(out)
}

// Parse reads a features document.
func Parse(doc []byte) (Features, error) {
	var d document
	if err := json.Unmarshal(doc, &d); err != nil {
		return Features{}, fmt.Errorf("parse OCI features document: %w", err)
	}
	f := Features{
		RecursiveReadOnlyMounts: slices.Contains(d.MountOptions, "rro"),
		Raw:                     json.RawMessage(doc),
	}
	if e := d.Linux.MountExtensions.IDMap.Enabled; e != nil && *e {
		f.UserNamespaces = true
	}
	return f, nil
}
