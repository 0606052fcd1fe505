package integration

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/floe-cri/floe/test/fixtures"
	"github.com/floe-cri/floe/test/harness"
)

// checkImageLeaks is the leak check for image tests. It does not use
// harness.CheckLeaks: image tests create no netns or veths, and the
// host-wide snapshot it takes also sees pods of other test runs on the
// same host. Each daemon's cleanup checks its own dir for mounts; here
// the test registries (killed by PID) must be gone.
func checkImageLeaks(t *testing.T) {
	t.Helper()
	before := registryProcesses()
	t.Cleanup(func() {
		for _, p := range registryProcesses() {
			if !slices.Contains(before, p) {
				t.Errorf("leaked registry process: %s", p)
			}
		}
	})
}

// registryProcesses lists docker-registry processes by pid and cmdline.
func registryProcesses() []string {
	var out []string
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		argv0, _, _ := strings.Cut(string(b), "\x00")
		if err == nil && filepath.Base(argv0) == "docker-registry" {
			out = append(out, e.Name()+" "+strings.ReplaceAll(string(b), "\x00", " "))
		}
	}
	return out
}

func pull(t *testing.T, d *harness.Daemon, ref string, auth *runtimeapi.AuthConfig) (string, error) {
	t.Helper()
	resp, err := d.Images.PullImage(harness.Ctx(t), &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: ref}, Auth: auth})
	if err != nil {
		return "", err
	}
	return resp.ImageRef, nil
}

func mustPull(t *testing.T, d *harness.Daemon, ref string) string {
	t.Helper()
	id, err := pull(t, d, ref, nil)
	if err != nil {
		t.Fatalf("PullImage %s: %v", ref, err)
	}
	if len(id) != 64 {
		t.Fatalf("PullImage %s: image ref %q is not an image id", ref, id)
	}
	return id
}

type imageInfo struct {
	ID             string   `json:"id"`
	RepoTags       []string `json:"repoTags"`
	RepoDigests    []string `json:"repoDigests"`
	ManifestDigest string   `json:"manifestDigest"`
	Pinned         bool     `json:"pinned"`
	Layers         []struct {
		ID               string `json:"id"`
		CompressedDigest string `json:"compressedDigest"`
	} `json:"layers"`
	ImageSpec struct {
		Architecture string `json:"architecture"`
		Config       struct {
			User       string            `json:"User"`
			Env        []string          `json:"Env"`
			Cmd        []string          `json:"Cmd"`
			WorkingDir string            `json:"WorkingDir"`
			Labels     map[string]string `json:"Labels"`
		} `json:"config"`
	} `json:"imageSpec"`
}

func imageStatus(t *testing.T, d *harness.Daemon, ref string) (*runtimeapi.Image, imageInfo) {
	t.Helper()
	resp, err := d.Images.ImageStatus(harness.Ctx(t), &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: ref}, Verbose: true})
	if err != nil {
		t.Fatalf("ImageStatus %s: %v", ref, err)
	}
	var info imageInfo
	if resp.Image != nil {
		if err := json.Unmarshal([]byte(resp.Info["info"]), &info); err != nil {
			t.Fatalf("verbose info is not JSON: %v: %q", err, resp.Info["info"])
		}
	}
	return resp.Image, info
}

func listImages(t *testing.T, d *harness.Daemon, filter string) []*runtimeapi.Image {
	t.Helper()
	req := &runtimeapi.ListImagesRequest{}
	if filter != "" {
		req.Filter = &runtimeapi.ImageFilter{Image: &runtimeapi.ImageSpec{Image: filter}}
	}
	resp, err := d.Images.ListImages(harness.Ctx(t), req)
	if err != nil {
		t.Fatalf("ListImages: %v", err)
	}
	return resp.Images
}

func removeImage(t *testing.T, d *harness.Daemon, ref string) error {
	t.Helper()
	_, err := d.Images.RemoveImage(harness.Ctx(t), &runtimeapi.RemoveImageRequest{Image: &runtimeapi.ImageSpec{Image: ref}})
	return err
}

func fsInfo(t *testing.T, d *harness.Daemon) (imgBytes, imgInodes, ctrBytes uint64) {
	t.Helper()
	resp, err := d.Images.ImageFsInfo(harness.Ctx(t), &runtimeapi.ImageFsInfoRequest{})
	if err != nil {
		t.Fatalf("ImageFsInfo: %v", err)
	}
	if len(resp.ImageFilesystems) != 1 || len(resp.ContainerFilesystems) != 1 {
		t.Fatalf("ImageFsInfo: %d image and %d container filesystems", len(resp.ImageFilesystems), len(resp.ContainerFilesystems))
	}
	fs := resp.ImageFilesystems[0]
	if fs.FsId.GetMountpoint() != d.StorageRoot {
		t.Errorf("image fs mountpoint %q, want %q", fs.FsId.GetMountpoint(), d.StorageRoot)
	}
	return fs.UsedBytes.GetValue(), fs.InodesUsed.GetValue(), resp.ContainerFilesystems[0].UsedBytes.GetValue()
}

// podman runs podman against the daemon's store.
func podman(t *testing.T, d *harness.Daemon, args ...string) string {
	t.Helper()
	base := []string{"--root", d.StorageRoot, "--runroot", d.StorageRunRoot, "--storage-driver", "overlay",
		"--tmpdir", filepath.Join(d.Dir, "podman-tmp"), "--cgroup-manager", "cgroupfs", "--events-backend", "none"}
	return harness.MustRun(t, "podman", append(base, args...)...)
}

func TestImagePullListStatusRemoveAndPodman(t *testing.T) {
	checkImageLeaks(t)
	reg := fixtures.StartRegistry(t, fixtures.RegistryOptions{})
	bb := reg.PushBusybox(t, "busybox:1.0")
	alias := reg.PushBusybox(t, "busybox:alias")
	s2img := fixtures.Busybox(t)
	s2img.DockerSchema2 = true
	s2img.Config.Labels["variant"] = "schema2"
	s2 := reg.Push(t, "schema2/busybox:v2", s2img)
	pinned := reg.Push(t, "pinned/tool:1", fixtures.RandomLayers(1, 1<<20, 7))
	d := harness.StartDaemon(t, harness.Options{
		RegistriesConf: reg.RegistriesConf(true),
		ConfigTOML:     fmt.Sprintf("[images]\npinned = [%q]\n", reg.Host+"/pinned/*"),
	})

	bytes0, inodes0, _ := fsInfo(t, d)
	id := mustPull(t, d, bb.Ref)
	img, info := imageStatus(t, d, bb.Ref)
	if img == nil || img.Id != id {
		t.Fatalf("ImageStatus after pull = %v, want id %s", img, id)
	}
	if !slices.Contains(img.RepoTags, bb.Ref) || !slices.Contains(img.RepoDigests, bb.DigestRef()) {
		t.Errorf("tags %v digests %v; want %s and %s", img.RepoTags, img.RepoDigests, bb.Ref, bb.DigestRef())
	}
	if img.Uid.GetValue() != fixtures.BusyboxUID || img.Size == 0 || img.Pinned {
		t.Errorf("uid %v size %d pinned %v", img.Uid, img.Size, img.Pinned)
	}
	if len(info.Layers) != 1 || info.Layers[0].CompressedDigest != bb.Layers[0].String() {
		t.Errorf("verbose layers %+v, want the pushed layer %s", info.Layers, bb.Layers[0])
	}
	if c := info.ImageSpec.Config; c.WorkingDir != "/home/floe" || !slices.Contains(c.Env, "FIXTURE=busybox") || c.User != "1000" {
		t.Errorf("verbose image config %+v", c)
	}
	bytes1, inodes1, _ := fsInfo(t, d)
	if bytes1 <= bytes0+500_000 || inodes1 <= inodes0 {
		t.Errorf("ImageFsInfo did not grow with the pull: %d→%d bytes, %d→%d inodes", bytes0, bytes1, inodes0, inodes1)
	}

	// The same image by digest, by short name through the search
	// registry, and under a second tag.
	if got := mustPull(t, d, bb.DigestRef()); got != id {
		t.Errorf("pull by digest gave %s, want %s", got, id)
	}
	if got := mustPull(t, d, "busybox:1.0"); got != id {
		t.Errorf("pull by short name gave %s, want %s", got, id)
	}
	if got := mustPull(t, d, alias.Ref); got != id {
		t.Errorf("pull of second tag gave %s, want %s", got, id)
	}
	for _, ref := range []string{bb.DigestRef(), id[:12], "sha256:" + id, "busybox:alias", "busybox:1.0"} {
		if img, _ := imageStatus(t, d, ref); img == nil || img.Id != id {
			t.Errorf("ImageStatus(%s) = %v, want %s", ref, img, id)
		}
	}
	if imgs := listImages(t, d, id[:10]); len(imgs) != 1 || imgs[0].Id != id {
		t.Errorf("ListImages filtered by id prefix = %v", imgs)
	}

	// Docker v2 schema 2 and a pinned image.
	s2id := mustPull(t, d, s2.Ref)
	if _, info := imageStatus(t, d, s2.Ref); info.ImageSpec.Config.Labels["variant"] != "schema2" {
		t.Errorf("schema2 image config labels %v", info.ImageSpec.Config.Labels)
	}
	pinID := mustPull(t, d, pinned.Ref)
	if img, _ := imageStatus(t, d, pinID); !img.Pinned {
		t.Errorf("image matching images.pinned is not reported pinned")
	}
	if n := len(listImages(t, d, "")); n != 3 {
		t.Errorf("ListImages = %d images, want 3", n)
	}
	stream, err := d.Images.StreamImages(harness.Ctx(t), &runtimeapi.StreamImagesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := stream.Recv(); err != nil || len(resp.Images) != 3 {
		t.Errorf("StreamImages: %v, %v", resp, err)
	}
	if imgs := listImages(t, d, reg.Ref("nothere:1")); len(imgs) != 0 {
		t.Errorf("ListImages filtered by an unknown image = %v", imgs)
	}

	// podman on the same store sees what floe pulled.
	out := podman(t, d, "images", "--format", "{{.ID}} {{.Repository}}:{{.Tag}}")
	if !strings.Contains(out, id[:12]) || !strings.Contains(out, reg.Host+"/busybox") {
		t.Errorf("podman images does not list floe's image %s:\n%s", id[:12], out)
	}

	// Removing one tag of a two-tag image only untags it.
	if err := removeImage(t, d, alias.Ref); err != nil {
		t.Fatalf("RemoveImage tag: %v", err)
	}
	img, _ = imageStatus(t, d, id)
	if img == nil || slices.Contains(img.RepoTags, alias.Ref) || !slices.Contains(img.RepoTags, bb.Ref) {
		t.Fatalf("after untagging: %v", img)
	}
	if img, _ := imageStatus(t, d, alias.Ref); img != nil {
		t.Errorf("removed tag still resolves to %s", img.Id)
	}
	// By id prefix, by digest and by tag remove the images.
	if err := removeImage(t, d, id[:12]); err != nil {
		t.Fatalf("RemoveImage by id prefix: %v", err)
	}
	if err := removeImage(t, d, s2.DigestRef()); err != nil {
		t.Fatalf("RemoveImage by digest: %v", err)
	}
	if err := removeImage(t, d, pinned.Ref); err != nil {
		t.Fatalf("RemoveImage by tag: %v", err)
	}
	for _, ref := range []string{id, s2id, pinID} {
		if img, _ := imageStatus(t, d, ref); img != nil {
			t.Errorf("image %s still present after removal", ref)
		}
	}
	if err := removeImage(t, d, id); err != nil {
		t.Errorf("RemoveImage of a removed image must succeed (idempotent): %v", err)
	}
	bytes2, _, _ := fsInfo(t, d)
	if bytes2 >= bytes1 {
		t.Errorf("ImageFsInfo did not shrink after removal: %d → %d bytes", bytes1, bytes2)
	}

	// The other way round: podman writes to the store and floe sees it.
	// (A tag, not a pull: podman has no flag to move root's blob-info
	// cache off the host's /var/lib/containers.)
	id = mustPull(t, d, bb.Ref)
	podman(t, d, "tag", id, "localhost/from-podman:1")
	if img, _ := imageStatus(t, d, "localhost/from-podman:1"); img == nil || img.Id != id {
		t.Errorf("floe does not see the tag podman added: %v", img)
	}
	if err := removeImage(t, d, "localhost/from-podman:1"); err != nil {
		t.Fatal(err)
	}
	if out := podman(t, d, "images", "--format", "{{.Repository}}:{{.Tag}}"); strings.Contains(out, "from-podman") || !strings.Contains(out, reg.Host+"/busybox:1.0") {
		t.Errorf("after floe removed podman's tag, podman lists:\n%s", out)
	}
	if _, err := pull(t, d, "", nil); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "image.image") {
		t.Errorf("empty image: %v", err)
	}
	d.Stop()
}

func TestImagePullMultiArchAndZstd(t *testing.T) {
	checkImageLeaks(t)
	reg := fixtures.StartRegistry(t, fixtures.RegistryOptions{})
	host := fixtures.Busybox(t)
	host.Config.Labels["arch"] = runtime.GOARCH
	other := fixtures.Busybox(t)
	other.Arch = "arm64"
	if runtime.GOARCH == "arm64" {
		other.Arch = "amd64"
	}
	other.Config.Labels["arch"] = other.Arch
	idx := reg.PushIndex(t, "multi/busybox:1", other, host)
	zimg := fixtures.Busybox(t)
	zimg.Compression = fixtures.Zstd
	// Distinct content, or the store reuses the gzip image's layer.
	zimg.Layers[0] = append(zimg.Layers[0], fixtures.File{Path: "etc/zstd", Mode: 0o644, Data: []byte("zstd\n")})
	zimg.Config.Labels["compression"] = "zstd"
	z := reg.Push(t, "zstd/busybox:1", zimg)
	d := harness.StartDaemon(t, harness.Options{RegistriesConf: reg.RegistriesConf(false)})

	mustPull(t, d, idx.Ref)
	img, info := imageStatus(t, d, idx.Ref)
	if info.ImageSpec.Architecture != runtime.GOARCH || info.ImageSpec.Config.Labels["arch"] != runtime.GOARCH {
		t.Errorf("index pull picked %s (label %s), want the host's %s", info.ImageSpec.Architecture, info.ImageSpec.Config.Labels["arch"], runtime.GOARCH)
	}
	if !slices.Contains(img.RepoDigests, idx.DigestRef()) && len(img.RepoDigests) == 0 {
		t.Errorf("repo digests %v", img.RepoDigests)
	}
	mustPull(t, d, z.Ref)
	if _, info := imageStatus(t, d, z.Ref); len(info.Layers) != 1 || info.Layers[0].CompressedDigest != z.Layers[0].String() {
		t.Errorf("zstd image layers %+v, want %s", info.Layers, z.Layers[0])
	}
	// Images survive a daemon restart (SIGTERM shut the store down
	// cleanly; the harness checks it left no mounts).
	d.Stop()
	d.Start()
	if n := len(listImages(t, d, "")); n != 2 {
		t.Errorf("after restart ListImages = %d images, want 2", n)
	}
	d.Stop()
}

func TestImagePullAuth(t *testing.T) {
	checkImageLeaks(t)
	reg := fixtures.StartRegistry(t, fixtures.RegistryOptions{Username: "floe", Password: "s3cret"})
	bb := reg.PushBusybox(t, "private/busybox:1")
	d := harness.StartDaemon(t, harness.Options{RegistriesConf: reg.RegistriesConf(false)})

	_, err := pull(t, d, bb.Ref, nil)
	if err == nil || !strings.Contains(err.Error(), "credentials") {
		t.Errorf("pull without credentials: %v, want a clear credentials error", err)
	}
	_, err = pull(t, d, bb.Ref, &runtimeapi.AuthConfig{Username: "floe", Password: "wrong"})
	if err == nil || !strings.Contains(err.Error(), "credentials") {
		t.Errorf("pull with a wrong password: %v, want a clear credentials error", err)
	}
	if len(listImages(t, d, "")) != 0 {
		t.Errorf("a failed pull left an image")
	}
	if _, err := pull(t, d, bb.Ref, &runtimeapi.AuthConfig{Username: "floe", Password: "s3cret"}); err != nil {
		t.Fatalf("pull with username/password: %v", err)
	}
	if err := removeImage(t, d, bb.Ref); err != nil {
		t.Fatal(err)
	}
	encoded := base64.StdEncoding.EncodeToString([]byte("floe:s3cret"))
	if _, err := pull(t, d, bb.Ref, &runtimeapi.AuthConfig{Auth: encoded}); err != nil {
		t.Fatalf("pull with an auth string: %v", err)
	}
	d.Stop()

	// The daemon's auth file is used when the request carries none.
	authFile := fixtures.WriteFile(t, t.TempDir(), "auth.json", fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`, reg.Host, encoded))
	d2 := harness.StartDaemon(t, harness.Options{
		RegistriesConf: reg.RegistriesConf(false),
		ConfigTOML:     fmt.Sprintf("[images]\nauth_file = %q\n", authFile),
	})
	mustPull(t, d2, bb.Ref)
	d2.Stop()
}

func TestImagePullMirrorsSearchAndBlocked(t *testing.T) {
	checkImageLeaks(t)
	reg := fixtures.StartRegistry(t, fixtures.RegistryOptions{})
	bb := reg.PushBusybox(t, "mirrored/busybox:1")
	// example.invalid never resolves: the image can only come from the
	// mirror on 127.0.0.1.
	conf := fmt.Sprintf(`
unqualified-search-registries = ["example.invalid"]

[[registry]]
location = "example.invalid"
[[registry.mirror]]
location = %q
insecure = true

[[registry]]
location = "blocked.invalid"
blocked = true
`, reg.Host)
	d := harness.StartDaemon(t, harness.Options{RegistriesConf: conf})

	id := mustPull(t, d, "example.invalid/mirrored/busybox:1")
	if got := mustPull(t, d, "mirrored/busybox:1"); got != id {
		t.Errorf("short name through search registry + mirror gave %s, want %s", got, id)
	}
	if img, _ := imageStatus(t, d, "mirrored/busybox:1"); img == nil || !slices.Contains(img.RepoTags, "example.invalid/mirrored/busybox:1") {
		t.Errorf("status by short name: %v", img)
	}
	_, err := pull(t, d, "blocked.invalid/busybox:1", nil)
	if err == nil || !strings.Contains(err.Error(), "blocked") {
		t.Errorf("pull from a blocked registry: %v", err)
	}
	_ = bb
	d.Stop()
}

func TestImageShortNameDefaultsAndErrors(t *testing.T) {
	checkImageLeaks(t)
	reg := fixtures.StartRegistry(t, fixtures.RegistryOptions{})
	reg.PushBusybox(t, "library/busybox:latest")
	// registries.conf lists no search registries: "busybox" must become
	// docker.io/library/busybox:latest through floe's default, and come
	// from a docker.io mirror on 127.0.0.1.
	conf := fmt.Sprintf("[[registry]]\nlocation = \"docker.io\"\n[[registry.mirror]]\nlocation = %q\ninsecure = true\n", reg.Host)
	d := harness.StartDaemon(t, harness.Options{RegistriesConf: conf})
	id := mustPull(t, d, "busybox")
	if img, _ := imageStatus(t, d, "busybox"); img == nil || img.Id != id || !slices.Contains(img.RepoTags, "docker.io/library/busybox:latest") {
		t.Errorf("short name did not resolve to docker.io/library/busybox:latest: %v", img)
	}
	d.Stop()

	// Without any search registry a short name fails and says where to
	// configure one.
	d2 := harness.StartDaemon(t, harness.Options{ConfigTOML: "[registries]\ndefault_search_registries = []\n"})
	_, err := pull(t, d2, "busybox", nil)
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "unqualified-search-registries") || !strings.Contains(err.Error(), d2.RegistriesConf) {
		t.Errorf("short name without search registries: %v", err)
	}
	d2.Stop()
}

// readLayerCount counts the layers in a store's layers.json.
func readLayerCount(t *testing.T, d *harness.Daemon) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(d.StorageRoot, "overlay-layers", "layers.json"))
	if os.IsNotExist(err) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	var layers []json.RawMessage
	if err := json.Unmarshal(b, &layers); err != nil {
		t.Fatal(err)
	}
	return len(layers)
}

func TestImagePullStallAbortsWithoutPartialImage(t *testing.T) {
	checkImageLeaks(t)
	reg := fixtures.StartRegistry(t, fixtures.RegistryOptions{})
	big := reg.Push(t, "big/random:1", fixtures.RandomLayers(3, 4<<20, 1))
	proxy := fixtures.StartProxy(t, reg.Host)
	proxy.StallBlob(big.Layers[1], 64<<10)
	conf := fmt.Sprintf("[[registry]]\nlocation = %q\ninsecure = true\n\n[[registry]]\nlocation = %q\ninsecure = true\n", reg.Host, proxy.Host)
	d := harness.StartDaemon(t, harness.Options{
		RegistriesConf: conf,
		ConfigTOML:     "[images]\npull_progress_timeout = \"2s\"\n",
	})

	start := time.Now()
	_, err := pull(t, d, proxy.Host+"/big/random:1", nil)
	if err == nil || !strings.Contains(err.Error(), "no progress") || !strings.Contains(err.Error(), "pull_progress_timeout") {
		t.Fatalf("stalled pull: %v, want a progress timeout error", err)
	}
	if took := time.Since(start); took > 30*time.Second {
		t.Errorf("stalled pull took %s to abort with a 2s timeout", took)
	}
	if imgs := listImages(t, d, ""); len(imgs) != 0 {
		t.Errorf("stalled pull left images: %v", imgs)
	}
	if n := readLayerCount(t, d); n != 0 {
		t.Errorf("stalled pull left %d layers in the store", n)
	}
	// The first layer was complete and committed before the stall: the
	// cleanup, not luck, is what left the store empty.
	if !strings.Contains(d.Log(), "removed layer of a failed pull") {
		t.Errorf("no committed layer was cleaned up; the test did not exercise the cleanup")
	}
	// The store is healthy: the same image pulls from the registry.
	mustPull(t, d, big.Ref)
	if n := readLayerCount(t, d); n != 3 {
		t.Errorf("store has %d layers after a good pull, want 3", n)
	}
	d.Stop()
}

func TestImageConcurrentPullsCoalesce(t *testing.T) {
	checkImageLeaks(t)
	reg := fixtures.StartRegistry(t, fixtures.RegistryOptions{})
	img := reg.Push(t, "shared/random:1", fixtures.RandomLayers(2, 2<<20, 2))
	proxy := fixtures.StartProxy(t, reg.Host)
	// Slow blobs keep the first pull running while the others arrive.
	proxy.DelayBlobs(time.Second)
	d := harness.StartDaemon(t, harness.Options{RegistriesConf: fmt.Sprintf("[[registry]]\nlocation = %q\ninsecure = true\n", proxy.Host)})

	ref := proxy.Host + "/shared/random:1"
	const n = 4
	ids := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ids[i], errs[i] = pull(t, d, ref, nil)
		}()
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil || ids[i] != ids[0] {
			t.Fatalf("pull %d: id %s err %v (first id %s)", i, ids[i], errs[i], ids[0])
		}
	}
	if got := proxy.Count("GET", "/manifests/"); got != 1 {
		t.Errorf("%d concurrent pulls fetched the manifest %d times, want 1 (coalesced)", n, got)
	}
	for _, l := range img.Layers {
		if got := proxy.Count("GET", l.String()); got != 1 {
			t.Errorf("layer %s fetched %d times, want 1", l, got)
		}
	}
	if joined := strings.Count(d.Log(), "joining in-flight pull"); joined != n-1 {
		t.Errorf("log shows %d joined pulls, want %d", joined, n-1)
	}
	d.Stop()
}
