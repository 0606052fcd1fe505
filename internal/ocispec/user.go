package ocispec

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/floe-cri/floe/internal/errdefs"
	"golang.org/x/sys/unix"
)

// ResolvedUser is who the container process runs as.
type ResolvedUser struct {
	UID, GID       uint32
	AdditionalGids []uint32 // primary gid first, then memberships, then supplemental groups
	Name           string   // empty when the uid has no passwd entry
	Home           string   // "/" when unknown
}

type passwdEntry struct {
	name     string
	uid, gid uint32
	home     string
}

type groupEntry struct {
	name    string
	gid     uint32
	members []string
}

// ResolveUser works out uid, gid and groups for a container from the CRI
// request, falling back to the image's User, looking names up in the
// container's own /etc/passwd and /etc/group (never the host's):
//   - RunAsUsername: must exist in /etc/passwd;
//   - RunAsUser: used as is; its passwd entry, if any, gives gid and name;
//   - otherwise the image User: "name", "uid", "name:group" or "uid:gid";
//     names must exist, numbers need not;
//   - RunAsGroup overrides the primary gid; it needs RunAsUser or
//     RunAsUsername (CRI: the runtime MUST refuse it alone);
//   - additional gids are the primary gid, every /etc/group entry listing
//     the user as a member (GroupsMerge only), and the supplemental groups,
//     without repeats.
//
// The additional gids always hold the primary gid: runc hands the list to
// setgroups(2) as is, and CRI's LinuxContainerUser.supplemental_groups (what
// `id -G` shows) includes it.
func ResolveUser(rootfs string, img ImageConfig, req User) (*ResolvedUser, error) {
	if err := req.Validate(); err != nil {
		return nil, err
	}
	passwd, err := readPasswd(rootfs)
	if err != nil {
		return nil, err
	}
	groups, err := readGroups(rootfs)
	if err != nil {
		return nil, err
	}
	u := &ResolvedUser{Home: "/"}
	apply := func(e *passwdEntry) {
		u.UID, u.GID, u.Name, u.Home = e.uid, e.gid, e.name, e.home
		if u.Home == "" {
			u.Home = "/"
		}
	}
	switch {
	case req.RunAsUsername != "":
		e := lookupName(passwd, req.RunAsUsername)
		if e == nil {
			return nil, errdefs.InvalidArgument("security_context.run_as_username", "user %q not found in the container's /etc/passwd", req.RunAsUsername)
		}
		apply(e)
	case req.RunAsUser != nil:
		u.UID = uint32(*req.RunAsUser)
		if e := lookupUID(passwd, u.UID); e != nil {
			apply(e)
		}
	default:
		userPart, groupPart, hasGroup := strings.Cut(img.User, ":")
		if userPart == "" {
			userPart = "0" // no user anywhere: root
		}
		if n, ok := parseID(userPart); ok {
			u.UID = n
			if e := lookupUID(passwd, n); e != nil {
				apply(e)
			}
		} else {
			e := lookupName(passwd, userPart)
			if e == nil {
				return nil, errdefs.InvalidArgument("image.config.user", "user %q not found in the container's /etc/passwd", userPart)
			}
			apply(e)
		}
		if hasGroup && groupPart != "" {
			if n, ok := parseID(groupPart); ok {
				u.GID = n
			} else {
				g := lookupGroup(groups, groupPart)
				if g == nil {
					return nil, errdefs.InvalidArgument("image.config.user", "group %q not found in the container's /etc/group", groupPart)
				}
				u.GID = g.gid
			}
		}
	}
	if req.RunAsGroup != nil {
		u.GID = uint32(*req.RunAsGroup)
	}
	seen := map[uint32]bool{}
	addGid := func(g uint32) {
		if !seen[g] {
			seen[g] = true
			u.AdditionalGids = append(u.AdditionalGids, g)
		}
	}
	addGid(u.GID)
	if req.GroupsPolicy == GroupsMerge && u.Name != "" {
		for _, g := range groups {
			if slices.Contains(g.members, u.Name) {
				addGid(g.gid)
			}
		}
	}
	for _, g := range req.SupplementalGroups {
		addGid(uint32(g))
	}
	return u, nil
}

// MaxID is the largest uid or gid floe hands to runc. The kernel would
// take up to 2^32-2 ((uid_t)-1 means "no change" to setresuid(2)), but
// runc's user lookup keeps ids within int32 for 32-bit systems (its
// libcontainer/user MaxID, 2^31-1) and fails the container's init with
// "uids and gids must be in range" above that, after the rootfs, bundle
// and cgroup exist. Refusing here keeps that from ever starting.
const MaxID = 1<<31 - 1

// maxUsernameLen bounds run_as_username; useradd stops at 32 bytes, and a
// passwd line is far below this.
const maxUsernameLen = 256

// Validate checks a user request on its own, without the image, so a bad
// one can be refused before anything is created. Fields are named as in
// CRI's LinuxContainerSecurityContext.
func (req User) Validate() error {
	const field = "security_context."
	if req.RunAsUser != nil && (*req.RunAsUser < 0 || *req.RunAsUser > MaxID) {
		return errdefs.InvalidArgument(field+"run_as_user", "uid %d out of range [0, %d]", *req.RunAsUser, int64(MaxID))
	}
	if req.RunAsGroup != nil {
		if *req.RunAsGroup < 0 || *req.RunAsGroup > MaxID {
			return errdefs.InvalidArgument(field+"run_as_group", "gid %d out of range [0, %d]", *req.RunAsGroup, int64(MaxID))
		}
		// The group alone would pair with whatever user the image names,
		// which the requester did not pick; CRI says to refuse it.
		if req.RunAsUser == nil && req.RunAsUsername == "" {
			return errdefs.InvalidArgument(field+"run_as_group", "is set without run_as_user or run_as_username")
		}
	}
	if req.RunAsUsername != "" {
		// A name holding ':' or a line break could never match a single
		// passwd field, and would make the lookup (and the logs) parse
		// something the requester wrote.
		if len(req.RunAsUsername) > maxUsernameLen {
			return errdefs.InvalidArgument(field+"run_as_username", "is %d bytes; at most %d are allowed", len(req.RunAsUsername), maxUsernameLen)
		}
		if i := strings.IndexFunc(req.RunAsUsername, func(r rune) bool { return r == ':' || r == '/' || r < ' ' || r == 0x7f }); i >= 0 {
			return errdefs.InvalidArgument(field+"run_as_username", "%q holds %q at byte %d; a user name has no ':', '/' or control characters", req.RunAsUsername, req.RunAsUsername[i], i)
		}
	}
	for i, g := range req.SupplementalGroups {
		if g < 0 || g > MaxID {
			return errdefs.InvalidArgument(fmt.Sprintf("%ssupplemental_groups[%d]", field, i), "gid %d out of range [0, %d]", g, int64(MaxID))
		}
	}
	if req.GroupsPolicy != GroupsMerge && req.GroupsPolicy != GroupsStrict {
		return errdefs.InvalidArgument(field+"supplemental_groups_policy", "unknown policy %d (want Merge or Strict)", int(req.GroupsPolicy))
	}
	return nil
}

func parseID(s string) (uint32, bool) {
	n, err := strconv.ParseUint(s, 10, 32)
	return uint32(n), err == nil
}

func lookupName(entries []passwdEntry, name string) *passwdEntry {
	for i := range entries {
		if entries[i].name == name {
			return &entries[i]
		}
	}
	return nil
}

func lookupUID(entries []passwdEntry, uid uint32) *passwdEntry {
	for i := range entries {
		if entries[i].uid == uid {
			return &entries[i]
		}
	}
	return nil
}

func lookupGroup(entries []groupEntry, name string) *groupEntry {
	for i := range entries {
		if entries[i].name == name {
			return &entries[i]
		}
	}
	return nil
}

// readInRoot reads a file of the container rootfs with every path component,
// symlinks included, resolved inside the rootfs, so an image cannot make
// floe read a host file through a symlink. A missing file reads as empty.
func readInRoot(rootfs, name string) ([]byte, error) {
	root, err := os.Open(rootfs)
	if err != nil {
		return nil, fmt.Errorf("open container rootfs: %w", err)
	}
	defer root.Close()
	fd, err := unix.Openat2(int(root.Fd()), name, &unix.OpenHow{
		Flags:   unix.O_RDONLY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	})
	if errors.Is(err, unix.ENOENT) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("open %s in container rootfs: %w", name, err)
	}
	f := os.NewFile(uintptr(fd), filepath.Join(rootfs, name))
	defer f.Close()
	// /etc/passwd of any sane image is small; a bound keeps a hostile one
	// from making the daemon read gigabytes.
	return io.ReadAll(io.LimitReader(f, 16<<20))
}

func colonLines(data []byte, fields int, fn func([]string)) {
	sc := bufio.NewScanner(strings.NewReader(string(data)))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		parts := strings.Split(line, ":")
		if len(parts) < fields {
			continue
		}
		fn(parts)
	}
}

func readPasswd(rootfs string) ([]passwdEntry, error) {
	data, err := readInRoot(rootfs, "etc/passwd")
	if err != nil {
		return nil, err
	}
	var out []passwdEntry
	colonLines(data, 7, func(p []string) {
		uid, ok1 := parseID(p[2])
		gid, ok2 := parseID(p[3])
		if ok1 && ok2 {
			out = append(out, passwdEntry{name: p[0], uid: uid, gid: gid, home: p[5]})
		}
	})
	return out, nil
}

func readGroups(rootfs string) ([]groupEntry, error) {
	data, err := readInRoot(rootfs, "etc/group")
	if err != nil {
		return nil, err
	}
	var out []groupEntry
	colonLines(data, 4, func(p []string) {
		gid, ok := parseID(p[2])
		if !ok {
			return
		}
		var members []string
		for _, m := range strings.Split(p[3], ",") {
			if m = strings.TrimSpace(m); m != "" {
				members = append(members, m)
			}
		}
		out = append(out, groupEntry{name: p[0], gid: gid, members: members})
	})
	return out, nil
}
