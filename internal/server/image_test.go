package server

import (
	"testing"

	ociv1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/floe-cri/floe/internal/images"
)

func TestImageUserGoesToUidOrUsername(t *testing.T) {
	for user, want := range map[string]struct {
		uid  int64
		name string
	}{
		"1000":      {uid: 1000},
		"1000:1000": {uid: 1000},
		"0":         {uid: 0},
		"floe":      {name: "floe"},
		"floe:grp":  {name: "floe"},
		"":          {name: ""},
	} {
		img := toCRIImage(&images.Image{ID: "abc", Config: &ociv1.Image{Config: ociv1.ImageConfig{User: user}}})
		if want.name == "" && user != "" {
			if img.Uid == nil || img.Uid.Value != want.uid || img.Username != "" {
				t.Errorf("user %q: uid %v username %q", user, img.Uid, img.Username)
			}
			continue
		}
		if img.Uid != nil || img.Username != want.name {
			t.Errorf("user %q: uid %v username %q, want username %q", user, img.Uid, img.Username, want.name)
		}
	}
}
