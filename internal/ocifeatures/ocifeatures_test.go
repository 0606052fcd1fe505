package ocifeatures

import (
	"context"
	"testing"

	"github.com/floe-cri/floe/test/needs"
)

func TestParse(t *testing.T) {
	f, err := Parse([]byte(`{"mountOptions":["ro","rro"],"linux":{"mountExtensions":{"idmap":{"enabled":true}}}}`))
	if err != nil || !f.RecursiveReadOnlyMounts || !f.UserNamespaces {
		t.Errorf("full document: %+v %v", f, err)
	}
	f, err = Parse([]byte(`{"mountOptions":["ro"]}`))
	if err != nil || f.RecursiveReadOnlyMounts || f.UserNamespaces {
		t.Errorf("minimal document: %+v %v", f, err)
	}
	if _, err := Parse([]byte("runc: unknown command")); err == nil {
		t.Errorf("garbage accepted")
	}
}

func TestProbeRealRunc(t *testing.T) {
	path := needs.Binary(t, "runc")
	f, err := Probe(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	// Debian's runc 1.1 has rro but no idmapped mounts.
	if !f.RecursiveReadOnlyMounts {
		t.Errorf("runc at %s does not report rro: %+v", path, f)
	}
}
