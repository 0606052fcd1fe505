// Package images pulls, stores and manages container images on
// containers/storage through containers/image, so a node's podman sees the
// same images. It also prepares container root filesystems (a writable
// layer on top of an image). It knows nothing of gRPC or the CRI: errors
// carry errdefs kinds and the server translates.
package images

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"go.podman.io/image/v5/pkg/sysregistriesv2"
	"go.podman.io/image/v5/signature"
	"go.podman.io/image/v5/types"
	"go.podman.io/storage"
	"golang.org/x/sys/unix"
)

// Options configure the image service. They mirror the [storage],
// [images] and [registries] tables of floe's configuration.
type Options struct {
	StorageRoot    string
	StorageRunRoot string
	Driver         string
	// MountOptions are overlay mount options; "metacopy=on" is dropped
	// with a warning when the kernel refuses it.
	MountOptions []string

	// RegistriesConf is the system registries.conf; RegistriesConfDir its
	// drop-in directory; RegistriesOverride floe's own file applied last.
	RegistriesConf     string
	RegistriesConfDir  string
	RegistriesOverride string
	// DefaultSearchRegistries resolve short names when registries.conf
	// sets no unqualified-search-registries.
	DefaultSearchRegistries []string

	AuthFile            string
	SignaturePolicy     string
	PullProgressTimeout time.Duration
	Pinned              []string

	// StateDir holds floe's blob-info cache; RunDir the effective
	// registries.conf.d assembled at startup.
	StateDir  string
	RunDir    string
	UserAgent string
	Log       *slog.Logger
}

// Service is the image store of one daemon. It is safe for concurrent use.
type Service struct {
	opts  Options
	store storage.Store
	// mountOpts are the overlay options in effect (metacopy may have been
	// dropped), for reports.
	mountOpts []string
	// reloads counts ReloadRegistries calls; guarded by mu, like sys
	// after startup.
	reloads int
	sys     *types.SystemContext
	log     *slog.Logger

	// ctx bounds every pull; Close cancels it and waits for wg.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	flights map[string]*flight

	// layerGC is held shared by every running pull and exclusively while
	// the layers a failed pull left behind are removed, so the removal
	// never takes a layer another pull has just committed.
	layerGC sync.RWMutex

	layerUsage layerUsageCache // see ContainerLayerUsage

	// removeMu serialises RemoveImage: the kubelet's image GC and a user
	// may remove the same image at once, and a lookup racing a delete in
	// containers/storage sees a half-removed image ("identifier is not an
	// image") instead of one that is simply gone.
	removeMu sync.Mutex

	// imageMountMu guards holds and serialises image volume mounts and
	// unmounts, so a release's look at the store's count and its
	// decrement are one step (see imagemount.go).
	imageMountMu sync.Mutex
	holds        imageHolds
}

// currentSys is the SystemContext in force; ReloadRegistries swaps it.
func (s *Service) currentSys() *types.SystemContext {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sys
}

// ReloadRegistries re-reads registries.conf, its drop-ins and floe's
// override (on SIGHUP). The new drop-in directory is assembled next to the
// old one and swapped in, so pulls in flight keep a consistent view; a
// configuration containers/image cannot parse is refused and the old one
// stays.
func (s *Service) ReloadRegistries() error {
	s.mu.Lock()
	s.reloads++
	n := s.reloads
	s.mu.Unlock()
	dest := filepath.Join(s.opts.RunDir, fmt.Sprintf("registries.conf.d.%d", n))
	dropIns, err := assembleRegistriesDir(s.opts.RegistriesConfDir, s.opts.RegistriesOverride, dest)
	if err != nil {
		return err
	}
	next := *s.currentSys()
	next.SystemRegistriesConfDirPath = dropIns
	sysregistriesv2.InvalidateCache()
	if _, err := sysregistriesv2.GetRegistries(&next); err != nil {
		os.RemoveAll(dest)
		sysregistriesv2.InvalidateCache()
		return fmt.Errorf("registries configuration not reloaded: %w", err)
	}
	s.mu.Lock()
	old := s.sys.SystemRegistriesConfDirPath
	s.sys = &next
	s.mu.Unlock()
	// The directory before the previous one is no longer used by any pull
	// that started after the previous reload; keep just the last two.
	if n > 1 {
		os.RemoveAll(filepath.Join(s.opts.RunDir, fmt.Sprintf("registries.conf.d.%d", n-2)))
	}
	s.log.Info("registries configuration reloaded", "dropIns", dropIns, "previous", old)
	return nil
}

// StoreInfo describes the store for operators (floe status, /info).
type StoreInfo struct {
	Driver       string   `json:"driver"`
	Root         string   `json:"root"`
	RunRoot      string   `json:"runRoot"`
	MountOptions []string `json:"mountOptions,omitempty"`
}

// Info reports the store in use.
func (s *Service) Info() StoreInfo {
	return StoreInfo{Driver: s.store.GraphDriverName(), Root: s.store.GraphRoot(), RunRoot: s.store.RunRoot(), MountOptions: s.mountOpts}
}

// New opens the store (once per daemon) and prepares registry resolution.
func New(opts Options) (*Service, error) {
	log := opts.Log
	if log == nil {
		log = slog.Default()
	}
	opts.Log = log
	if opts.PullProgressTimeout <= 0 {
		opts.PullProgressTimeout = time.Minute
	}
	if err := os.MkdirAll(opts.StorageRoot, 0o700); err != nil {
		return nil, fmt.Errorf("create storage root %s: %w", opts.StorageRoot, err)
	}
	mountOpts := opts.MountOptions
	if opts.Driver == "overlay" && slices.Contains(mountOpts, "metacopy=on") {
		if err := probeMetacopy(opts.StorageRoot); err != nil {
			log.Warn("overlay metacopy=on is not supported here; mounting layers without it", "err", err)
			mountOpts = slices.DeleteFunc(slices.Clone(mountOpts), func(o string) bool { return o == "metacopy=on" })
		}
	}
	storeOpts := storage.StoreOptions{
		GraphRoot:       opts.StorageRoot,
		RunRoot:         opts.StorageRunRoot,
		GraphDriverName: opts.Driver,
	}
	if opts.Driver == "overlay" && len(mountOpts) > 0 {
		storeOpts.GraphDriverOptions = []string{"overlay.mountopt=" + strings.Join(mountOpts, ",")}
	}
	store, err := storage.GetStore(storeOpts)
	if err != nil {
		return nil, fmt.Errorf("open image store %s (driver %s): %w", opts.StorageRoot, opts.Driver, err)
	}
	dropIns, err := assembleRegistriesDir(opts.RegistriesConfDir, opts.RegistriesOverride, filepath.Join(opts.RunDir, "registries.conf.d"))
	if err != nil {
		store.Shutdown(false)
		return nil, err
	}
	regConf, err := existingOrEmpty(opts.RegistriesConf, filepath.Join(opts.RunDir, "registries.conf.empty"))
	if err != nil {
		store.Shutdown(false)
		return nil, err
	}
	if removed, err := sweepTempFiles(opts.StorageRoot, opts.StorageRunRoot, store.GraphDriverName()); err != nil {
		log.Warn("cannot remove the temporary files of interrupted image store writes", "err", err)
	} else if len(removed) > 0 {
		log.Info("removed the temporary files of image store writes a crash interrupted", "files", removed)
	}
	// The pull temp dir is in the state dir (on disk, unlike the run dir),
	// so it is this daemon's own (the state lock keeps a second one away,
	// whereas the image store may be shared): what a pull cut short by a
	// crash left there is garbage.
	tmp := filepath.Join(opts.StateDir, "pull-tmp")
	if err := os.RemoveAll(tmp); err != nil {
		log.Warn("cannot empty the pull temp dir", "dir", tmp, "err", err)
	}
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		store.Shutdown(false)
		return nil, fmt.Errorf("create pull temp dir: %w", err)
	}
	sys := &types.SystemContext{
		SystemRegistriesConfPath:    regConf,
		SystemRegistriesConfDirPath: dropIns,
		AuthFilePath:                opts.AuthFile,
		SignaturePolicyPath:         opts.SignaturePolicy,
		BigFilesTemporaryDir:        tmp,
		BlobInfoCacheDir:            filepath.Join(opts.StateDir, "blob-info-cache"),
		DockerRegistryUserAgent:     opts.UserAgent,
	}
	if err := os.MkdirAll(sys.BlobInfoCacheDir, 0o700); err != nil {
		store.Shutdown(false)
		return nil, fmt.Errorf("create blob info cache dir: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Service{
		opts:      opts,
		store:     store,
		mountOpts: mountOpts,
		sys:       sys,
		log:       log,
		ctx:       ctx,
		cancel:    cancel,
		flights:   map[string]*flight{},
	}
	log.Info("image store open", "root", opts.StorageRoot, "runRoot", opts.StorageRunRoot, "driver", store.GraphDriverName(), "mountOptions", strings.Join(mountOpts, ","))
	return s, nil
}

// Close aborts running pulls, waits for them and shuts the store down,
// unmounting its layers. Layers still mounted for running containers are
// left mounted: the containers keep running across a daemon restart.
func (s *Service) Close() error {
	s.cancel()
	s.wg.Wait()
	mounted, err := s.store.Shutdown(false)
	if errors.Is(err, storage.ErrLayerUsedByContainer) {
		s.log.Info("image store shut down; container layers stay mounted", "layers", len(mounted))
		return nil
	}
	if err != nil {
		return fmt.Errorf("shut down image store: %w", err)
	}
	s.log.Info("image store shut down")
	return nil
}

// policyContext returns the signature policy: the configured file, or
// accept-anything when none is configured.
func (s *Service) policyContext() (*signature.PolicyContext, error) {
	var policy *signature.Policy
	if s.opts.SignaturePolicy != "" {
		p, err := signature.NewPolicyFromFile(s.opts.SignaturePolicy)
		if err != nil {
			return nil, fmt.Errorf("signature policy %s: %w", s.opts.SignaturePolicy, err)
		}
		policy = p
	} else {
		policy = &signature.Policy{Default: []signature.PolicyRequirement{signature.NewPRInsecureAcceptAnything()}}
	}
	return signature.NewPolicyContext(policy)
}

// probeMetacopy mounts a throwaway overlay with metacopy=on under dir: the
// only reliable way to learn whether this kernel accepts the option.
func probeMetacopy(dir string) error {
	probe, err := os.MkdirTemp(dir, "metacopy-probe-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(probe)
	var paths [4]string
	for i, n := range []string{"lower", "upper", "work", "merged"} {
		paths[i] = filepath.Join(probe, n)
		if err := os.Mkdir(paths[i], 0o700); err != nil {
			return err
		}
	}
	data := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s,metacopy=on", paths[0], paths[1], paths[2])
	if err := unix.Mount("overlay", paths[3], "overlay", 0, data); err != nil {
		return fmt.Errorf("mount overlay with metacopy=on: %w", err)
	}
	return unix.Unmount(paths[3], unix.MNT_DETACH)
}

// existingOrEmpty returns path when it exists, else an empty file at
// fallback: containers/image refuses a configured registries.conf that is
// missing, and a node without one should just have no registry settings.
func existingOrEmpty(path, fallback string) (string, error) {
	if _, err := os.Stat(path); err == nil || !errors.Is(err, os.ErrNotExist) {
		return path, nil
	}
	if err := os.WriteFile(fallback, nil, 0o644); err != nil {
		return "", fmt.Errorf("write empty registries.conf: %w", err)
	}
	return fallback, nil
}

// assembleRegistriesDir builds the drop-in directory floe hands to
// containers/image: copies of the system drop-ins, then floe's override
// named to sort last, so the override wins as a later drop-in does.
func assembleRegistriesDir(systemDir, override, dest string) (string, error) {
	if err := os.RemoveAll(dest); err != nil {
		return "", fmt.Errorf("reset %s: %w", dest, err)
	}
	if err := os.MkdirAll(dest, 0o755); err != nil {
		return "", fmt.Errorf("create %s: %w", dest, err)
	}
	copyFile := func(src, name string) error {
		data, err := os.ReadFile(src)
		if err != nil {
			return fmt.Errorf("read registries drop-in: %w", err)
		}
		return os.WriteFile(filepath.Join(dest, name), data, 0o644)
	}
	if systemDir != "" {
		entries, err := os.ReadDir(systemDir)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("read %s: %w", systemDir, err)
		}
		for _, e := range entries {
			if strings.HasSuffix(e.Name(), ".conf") && !e.IsDir() {
				if err := copyFile(filepath.Join(systemDir, e.Name()), e.Name()); err != nil {
					return "", err
				}
			}
		}
	}
	if override != "" {
		if _, err := os.Stat(override); err == nil {
			// "~" sorts after every letter and digit.
			if err := copyFile(override, "~floe-override.conf"); err != nil {
				return "", err
			}
		} else if !errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("registries override %s: %w", override, err)
		}
	}
	return dest, nil
}
