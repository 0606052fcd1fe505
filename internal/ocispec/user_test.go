package ocispec

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/floe-cri/floe/internal/errdefs"
)

func testRootfs(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(dir, "etc"), 0o755))
	must(os.WriteFile(filepath.Join(dir, "etc/passwd"), []byte(`root:x:0:0:root:/root:/bin/sh
# comment
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
app:x:1000:1000:App:/home/app:/bin/sh
nohome:x:1001:1001:::/bin/sh
broken:line
`), 0o644))
	must(os.WriteFile(filepath.Join(dir, "etc/group"), []byte(`root:x:0:
daemon:x:1:
app:x:1000:
video:x:44:app,other
audio:x:29:other, app
staff:x:50:
`), 0o644))
	return dir
}

func i64(v int64) *int64 { return &v }

func TestResolveUser(t *testing.T) {
	root := testRootfs(t)
	for _, tc := range []struct {
		name    string
		img     string
		req     User
		uid     uint32
		gid     uint32
		gids    []uint32
		user    string
		home    string
		errHas  string
		errKind errdefs.Kind
	}{
		{name: "default root", uid: 0, gid: 0, gids: []uint32{0}, user: "root", home: "/root"},
		{name: "group only", img: ":staff", uid: 0, gid: 50, gids: []uint32{50}, user: "root", home: "/root"},
		{name: "image name", img: "app", uid: 1000, gid: 1000, gids: []uint32{1000, 44, 29}, user: "app", home: "/home/app"},
		{name: "image uid", img: "1000", uid: 1000, gid: 1000, gids: []uint32{1000, 44, 29}, user: "app", home: "/home/app"},
		{name: "image unknown uid", img: "4242", uid: 4242, gid: 0, gids: []uint32{0}, home: "/"},
		{name: "image uid:gid", img: "1000:50", uid: 1000, gid: 50, gids: []uint32{50, 44, 29}, user: "app", home: "/home/app"},
		{name: "image user:group", img: "app:staff", uid: 1000, gid: 50, gids: []uint32{50, 44, 29}, user: "app", home: "/home/app"},
		{name: "image numeric unknown group", img: "app:777", uid: 1000, gid: 777, gids: []uint32{777, 44, 29}, user: "app", home: "/home/app"},
		{name: "image missing user", img: "ghost", errHas: `user "ghost" not found`, errKind: errdefs.KindInvalidArgument},
		{name: "image missing group", img: "app:ghosts", errHas: `group "ghosts" not found`, errKind: errdefs.KindInvalidArgument},
		{name: "run_as_user overrides image", img: "app", req: User{RunAsUser: i64(1)}, uid: 1, gid: 1, gids: []uint32{1}, user: "daemon", home: "/usr/sbin"},
		{name: "run_as_user unknown", req: User{RunAsUser: i64(5000)}, uid: 5000, gid: 0, gids: []uint32{0}, home: "/"},
		{name: "run_as_username", req: User{RunAsUsername: "app"}, uid: 1000, gid: 1000, gids: []uint32{1000, 44, 29}, user: "app", home: "/home/app"},
		{name: "run_as_username missing", req: User{RunAsUsername: "ghost"}, errHas: "run_as_username", errKind: errdefs.KindInvalidArgument},
		{name: "run_as_group", req: User{RunAsUser: i64(1000), RunAsGroup: i64(3000)}, uid: 1000, gid: 3000, gids: []uint32{3000, 44, 29}, user: "app", home: "/home/app"},
		{name: "supplemental", req: User{RunAsUser: i64(1000), SupplementalGroups: []int64{44, 9000}}, uid: 1000, gid: 1000, gids: []uint32{1000, 44, 29, 9000}, user: "app", home: "/home/app"},
		{name: "empty home", img: "nohome", uid: 1001, gid: 1001, gids: []uint32{1001}, user: "nohome", home: "/"},
		{name: "negative uid", req: User{RunAsUser: i64(-1)}, errHas: "out of range"},
		// KEP-3619: Merge (the default) adds the image's /etc/group
		// memberships, Strict keeps only the primary gid and what was asked.
		{name: "merge memberships and supplemental", req: User{RunAsUser: i64(1000), SupplementalGroups: []int64{1234}, GroupsPolicy: GroupsMerge},
			uid: 1000, gid: 1000, gids: []uint32{1000, 44, 29, 1234}, user: "app", home: "/home/app"},
		{name: "strict drops memberships", req: User{RunAsUser: i64(1000), SupplementalGroups: []int64{1234}, GroupsPolicy: GroupsStrict},
			uid: 1000, gid: 1000, gids: []uint32{1000, 1234}, user: "app", home: "/home/app"},
		{name: "strict by username", req: User{RunAsUsername: "app", GroupsPolicy: GroupsStrict},
			uid: 1000, gid: 1000, gids: []uint32{1000}, user: "app", home: "/home/app"},
		{name: "strict keeps a requested group the image also lists", req: User{RunAsUser: i64(1000), SupplementalGroups: []int64{44}, GroupsPolicy: GroupsStrict},
			uid: 1000, gid: 1000, gids: []uint32{1000, 44}, user: "app", home: "/home/app"},
		{name: "strict with run_as_group", req: User{RunAsUser: i64(1000), RunAsGroup: i64(3000), SupplementalGroups: []int64{4000}, GroupsPolicy: GroupsStrict},
			uid: 1000, gid: 3000, gids: []uint32{3000, 4000}, user: "app", home: "/home/app"},
		{name: "merge with run_as_group keeps memberships, not the passwd gid", req: User{RunAsUser: i64(1000), RunAsGroup: i64(3000), SupplementalGroups: []int64{4000}},
			uid: 1000, gid: 3000, gids: []uint32{3000, 44, 29, 4000}, user: "app", home: "/home/app"},
		{name: "strict with the image user", img: "app", req: User{GroupsPolicy: GroupsStrict},
			uid: 1000, gid: 1000, gids: []uint32{1000}, user: "app", home: "/home/app"},
		{name: "supplemental repeats the primary gid", req: User{RunAsUser: i64(1000), SupplementalGroups: []int64{1000, 1000}, GroupsPolicy: GroupsStrict},
			uid: 1000, gid: 1000, gids: []uint32{1000}, user: "app", home: "/home/app"},
		{name: "run_as_group alone", img: "app", req: User{RunAsGroup: i64(3000)}, errHas: "run_as_group: is set without run_as_user", errKind: errdefs.KindInvalidArgument},
		{name: "run_as_group with username", req: User{RunAsUsername: "daemon", RunAsGroup: i64(3000)},
			uid: 1, gid: 3000, gids: []uint32{3000}, user: "daemon", home: "/usr/sbin"},
	} {
		u, err := ResolveUser(root, ImageConfig{User: tc.img}, tc.req)
		if tc.errHas != "" {
			if err == nil || !strings.Contains(err.Error(), tc.errHas) {
				t.Errorf("%s: got %+v, %v; want error containing %q", tc.name, u, err, tc.errHas)
			} else if tc.errKind != 0 && errdefs.KindOf(err) != tc.errKind {
				t.Errorf("%s: kind %v", tc.name, errdefs.KindOf(err))
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if u.UID != tc.uid || u.GID != tc.gid || !slices.Equal(u.AdditionalGids, tc.gids) || u.Name != tc.user || u.Home != tc.home {
			t.Errorf("%s: got %+v; want uid %d gid %d gids %v name %q home %q", tc.name, u, tc.uid, tc.gid, tc.gids, tc.user, tc.home)
		}
	}
}

func TestResolveUserNoPasswd(t *testing.T) {
	root := t.TempDir()
	u, err := ResolveUser(root, ImageConfig{User: "123:456"}, User{})
	if err != nil || u.UID != 123 || u.GID != 456 {
		t.Errorf("numeric user without /etc/passwd: %+v, %v", u, err)
	}
	if _, err := ResolveUser(root, ImageConfig{User: "app"}, User{}); err == nil {
		t.Error("named user without /etc/passwd accepted")
	}
}

// An image whose /etc/passwd is a symlink to an absolute path must be read
// inside the rootfs, not from the host.
func TestResolveUserSymlinkStaysInRootfs(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, "other"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "other/passwd"), []byte("inner:x:77:77::/:/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/other/passwd", filepath.Join(root, "etc/passwd")); err != nil {
		t.Fatal(err)
	}
	u, err := ResolveUser(root, ImageConfig{User: "inner"}, User{})
	if err != nil || u.UID != 77 {
		t.Fatalf("symlinked passwd: %+v, %v", u, err)
	}
	// The host's root user is not visible: "root" must not resolve.
	if _, err := ResolveUser(root, ImageConfig{User: "root"}, User{}); err == nil {
		t.Error("host /etc/passwd was read through the symlink")
	}
}

func TestUserValidate(t *testing.T) {
	for _, tc := range []struct {
		name  string
		req   User
		field string // empty: valid
	}{
		{name: "empty", req: User{}},
		{name: "uid and gid", req: User{RunAsUser: i64(0), RunAsGroup: i64(0)}},
		{name: "username and gid", req: User{RunAsUsername: "app", RunAsGroup: i64(5)}},
		{name: "largest id runc takes", req: User{RunAsUser: i64(1<<31 - 1), RunAsGroup: i64(1<<31 - 1), SupplementalGroups: []int64{1<<31 - 1}}},
		{name: "uid 2^31", req: User{RunAsUser: i64(1 << 31)}, field: "security_context.run_as_user"},
		{name: "gid 2^31", req: User{RunAsUser: i64(0), RunAsGroup: i64(1 << 31)}, field: "security_context.run_as_group"},
		{name: "supplemental 2^31", req: User{SupplementalGroups: []int64{0, 1 << 31}}, field: "security_context.supplemental_groups[1]"},
		{name: "username", req: User{RunAsUsername: "www-data"}},
		{name: "username with colon", req: User{RunAsUsername: "root:x:0:0"}, field: "security_context.run_as_username"},
		{name: "username with newline", req: User{RunAsUsername: "app\nroot"}, field: "security_context.run_as_username"},
		{name: "username too long", req: User{RunAsUsername: strings.Repeat("a", 257)}, field: "security_context.run_as_username"},
		{name: "strict", req: User{GroupsPolicy: GroupsStrict}},
		{name: "gid alone", req: User{RunAsGroup: i64(5)}, field: "security_context.run_as_group"},
		{name: "uid -1", req: User{RunAsUser: i64(-1)}, field: "security_context.run_as_user"},
		{name: "uid 2^32-1", req: User{RunAsUser: i64(1<<32 - 1)}, field: "security_context.run_as_user"},
		{name: "gid out of range", req: User{RunAsUser: i64(0), RunAsGroup: i64(1 << 32)}, field: "security_context.run_as_group"},
		{name: "supplemental out of range", req: User{SupplementalGroups: []int64{1, -3}}, field: "security_context.supplemental_groups[1]"},
		{name: "unknown policy", req: User{GroupsPolicy: 7}, field: "security_context.supplemental_groups_policy"},
	} {
		err := tc.req.Validate()
		switch {
		case tc.field == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.field != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.field+":") || errdefs.KindOf(err) != errdefs.KindInvalidArgument):
			t.Errorf("%s: %v; want InvalidArgument naming %s", tc.name, err, tc.field)
		}
	}
}
