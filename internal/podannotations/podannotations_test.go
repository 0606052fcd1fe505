package podannotations

import "testing"

func TestFilter(t *testing.T) {
	ann := map[string]string{UsernsMode: "auto", ShmSize: "1Gi", Devices: "/dev/fuse", "other": "x"}
	kept, ignored := Filter(ann, []string{UsernsMode, "io.kubernetes.cri-o.Shm"})
	if len(kept) != 2 || kept[UsernsMode] != "auto" || kept[ShmSize] != "1Gi" {
		t.Errorf("kept %v", kept)
	}
	if len(ignored) != 1 || ignored[0] != Devices {
		t.Errorf("ignored %v", ignored)
	}
	if kept, ignored := Filter(ann, nil); len(kept) != 0 || len(ignored) != 3 {
		t.Errorf("nothing allowed: %v %v", kept, ignored)
	}
}

func TestParseUsernsMode(t *testing.T) {
	for v, want := range map[string]uint32{"auto": 65536, "auto:size=8192": 8192} {
		if got, err := ParseUsernsMode(v); err != nil || got != want {
			t.Errorf("%q: %d %v", v, got, err)
		}
	}
	for _, v := range []string{"keep-id", "host", "auto:size=0", "auto:size=x", "auto:uidmapping=0:1:2", "private"} {
		if _, err := ParseUsernsMode(v); err == nil {
			t.Errorf("%q accepted", v)
		}
	}
}

func TestParseShmSizeAndDevices(t *testing.T) {
	if n, err := ParseShmSize("128Mi"); err != nil || n != 128<<20 {
		t.Errorf("shm %d %v", n, err)
	}
	for _, v := range []string{"-1", "lots", "0"} {
		if _, err := ParseShmSize(v); err == nil {
			t.Errorf("shm %q accepted", v)
		}
	}
	d, err := ParseDevices("/dev/fuse, /dev/null:/dev/mynull:rw")
	if err != nil || len(d) != 2 || d[0] != (Device{"/dev/fuse", "/dev/fuse", "rwm"}) || d[1] != (Device{"/dev/null", "/dev/mynull", "rw"}) {
		t.Errorf("devices %+v %v", d, err)
	}
	for _, v := range []string{"dev/fuse", "/dev/fuse:rel", "/dev/fuse:/dev/fuse:x", "/a:/b:r:extra"} {
		if _, err := ParseDevices(v); err == nil {
			t.Errorf("devices %q accepted", v)
		}
	}
}
