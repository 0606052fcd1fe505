package images

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.podman.io/image/v5/copy"
	"go.podman.io/image/v5/docker"
	"go.podman.io/image/v5/docker/reference"
	"go.podman.io/image/v5/manifest"
	istorage "go.podman.io/image/v5/storage"
	"go.podman.io/image/v5/types"
	"go.podman.io/storage"

	"github.com/floe-cri/floe/internal/errdefs"
	"github.com/floe-cri/floe/internal/tracing"
)

// Auth is the credential a pull request carries. Auth is the base64
// "user:password" form of docker config files.
type Auth struct {
	Username      string
	Password      string
	Auth          string
	IdentityToken string
	RegistryToken string
}

func (a *Auth) empty() bool {
	return a == nil || *a == Auth{}
}

// ErrPullStalled marks a pull aborted because no data arrived for
// images.pull_progress_timeout.
var ErrPullStalled = errors.New("pull made no progress")

// flight is one download that concurrent pulls of the same reference and
// credentials share.
type flight struct {
	done chan struct{}
	id   string
	err  error
}

// Pull pulls name (a short name, a tagged or a digest reference) and
// returns the stored image's id. Short names are tried against each search
// registry in turn.
func (s *Service) Pull(ctx context.Context, name string, auth *Auth) (id string, err error) {
	ctx, span := tracing.Start(ctx, "image.pull", tracing.AttrImage.String(name))
	defer func() { tracing.End(span, err) }()
	cands, err := s.candidates(name)
	if err != nil {
		return "", err
	}
	var errs []string
	for _, ref := range cands {
		id, err := s.pullShared(ctx, ref, auth)
		if err == nil {
			return id, nil
		}
		if len(cands) == 1 || ctx.Err() != nil || errors.Is(err, ErrPullStalled) {
			return "", err
		}
		errs = append(errs, err.Error())
	}
	return "", fmt.Errorf("pull %s: no search registry has it: %s", name, strings.Join(errs, "; "))
}

// pullShared joins an in-flight pull of the same reference with the same
// credentials, or starts one. The download runs on the service's context,
// not the caller's, so one caller giving up does not fail the others; it
// is bounded by the progress timeout instead.
func (s *Service) pullShared(ctx context.Context, ref reference.Named, auth *Auth) (string, error) {
	key := ref.String() + "\x00" + authKey(auth)
	s.mu.Lock()
	f, joined := s.flights[key]
	if !joined {
		f = &flight{done: make(chan struct{})}
		s.flights[key] = f
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			f.id, f.err = s.pullOne(ref, auth)
			s.mu.Lock()
			delete(s.flights, key)
			s.mu.Unlock()
			close(f.done)
		}()
	}
	s.mu.Unlock()
	if joined {
		s.log.Info("joining in-flight pull", "image", ref.String())
	}
	select {
	case <-f.done:
		return f.id, f.err
	case <-ctx.Done():
		return "", fmt.Errorf("pull %s: %w", ref, ctx.Err())
	}
}

func authKey(a *Auth) string {
	if a.empty() {
		return ""
	}
	h := sha256.Sum256([]byte(a.Username + "\x00" + a.Password + "\x00" + a.Auth + "\x00" + a.IdentityToken + "\x00" + a.RegistryToken))
	return hex.EncodeToString(h[:])
}

// systemContext returns the base context with the request's credentials.
func (s *Service) systemContext(auth *Auth) (*types.SystemContext, error) {
	sys := *s.currentSys()
	if auth.empty() {
		return &sys, nil
	}
	user, pass := auth.Username, auth.Password
	if auth.Auth != "" {
		raw, err := base64.StdEncoding.DecodeString(auth.Auth)
		if err != nil {
			return nil, errdefs.InvalidArgument("auth.auth", "not base64: %v", err)
		}
		u, p, ok := strings.Cut(string(raw), ":")
		if !ok {
			return nil, errdefs.InvalidArgument("auth.auth", "not base64 of \"user:password\"")
		}
		user, pass = u, p
	}
	sys.DockerAuthConfig = &types.DockerAuthConfig{Username: user, Password: pass, IdentityToken: auth.IdentityToken}
	sys.DockerBearerRegistryToken = auth.RegistryToken
	return &sys, nil
}

// pullOne copies ref into the store, aborting when no data arrives for the
// progress timeout, and removes the layers of a failed pull.
func (s *Service) pullOne(ref reference.Named, auth *Auth) (string, error) {
	log := s.log.With("image", ref.String())
	sys, err := s.systemContext(auth)
	if err != nil {
		return "", err
	}
	srcRef, err := docker.NewReference(ref)
	if err != nil {
		return "", errdefs.InvalidArgument("image", "%s: %v", ref, err)
	}
	dstRef, err := istorage.Transport.NewStoreReference(s.store, ref, "")
	if err != nil {
		return "", fmt.Errorf("pull %s: storage reference: %w", ref, err)
	}
	policy, err := s.policyContext()
	if err != nil {
		return "", err
	}
	defer policy.Destroy()

	s.layerGC.RLock()
	before, err := s.layerIDs()
	if err != nil {
		s.layerGC.RUnlock()
		return "", fmt.Errorf("pull %s: %w", ref, err)
	}
	ctx, cancel := context.WithCancelCause(s.ctx)
	defer cancel(nil)
	progress := make(chan types.ProgressProperties, 16)
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		s.watchProgress(ref, progress, cancel)
	}()
	start := time.Now()
	log.Info("pulling image")
	manifestBytes, err := copy.Image(ctx, policy, dstRef, srcRef, &copy.Options{
		SourceCtx:          sys,
		DestinationCtx:     sys,
		ImageListSelection: copy.CopySystemImage,
		Progress:           progress,
		ProgressInterval:   progressInterval(s.opts.PullProgressTimeout),
	})
	close(progress)
	<-watched
	s.layerGC.RUnlock()
	if err != nil {
		if cause := context.Cause(ctx); errors.Is(cause, ErrPullStalled) {
			err = cause
		}
		s.removeOrphanLayers(before)
		log.Warn("pull failed", "took", time.Since(start), "err", err)
		return "", describePullError(ref, err)
	}
	img, err := istorage.Transport.GetStoreImage(s.store, dstRef)
	if err != nil {
		return "", fmt.Errorf("pull %s: find pulled image: %w", ref, err)
	}
	dig, _ := manifest.Digest(manifestBytes)
	log.Info("pulled image", "id", img.ID, "digest", dig.String(), "took", time.Since(start))
	return img.ID, nil
}

// progressInterval is how often containers/image reports bytes read: often
// enough that a healthy slow pull always resets the stall timer in time.
func progressInterval(timeout time.Duration) time.Duration {
	return max(min(timeout/4, 5*time.Second), 50*time.Millisecond)
}

// watchProgress logs progress and cancels the pull with ErrPullStalled when
// no event arrives within the timeout. It drains events until the channel
// is closed, so the copy never blocks sending after the cancellation.
func (s *Service) watchProgress(ref reference.Named, events <-chan types.ProgressProperties, cancel context.CancelCauseFunc) {
	timeout := s.opts.PullProgressTimeout
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	var total uint64
	lastLog := time.Now()
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				return
			}
			timer.Reset(timeout)
			switch ev.Event {
			case types.ProgressEventRead:
				total += ev.OffsetUpdate
				if time.Since(lastLog) >= 5*time.Second {
					s.log.Info("pull progress", "image", ref.String(), "bytes", total)
					lastLog = time.Now()
				}
			case types.ProgressEventNewArtifact:
				s.log.Debug("pull blob", "image", ref.String(), "digest", ev.Artifact.Digest.String(), "size", ev.Artifact.Size)
			case types.ProgressEventDone:
				s.log.Debug("pulled blob", "image", ref.String(), "digest", ev.Artifact.Digest.String())
			case types.ProgressEventSkipped:
				s.log.Debug("blob already present", "image", ref.String(), "digest", ev.Artifact.Digest.String())
			}
		case <-timer.C:
			cancel(fmt.Errorf("pull %s: %w for %s (images.pull_progress_timeout); aborted", ref, ErrPullStalled, timeout))
		}
	}
}

// describePullError adds what a user needs to act on common failures.
func describePullError(ref reference.Named, err error) error {
	if errors.Is(err, ErrPullStalled) {
		return err
	}
	var unauth docker.ErrUnauthorizedForCredentials
	if errors.As(err, &unauth) {
		return fmt.Errorf("pull %s: the registry rejected the credentials: %w", ref, err)
	}
	if strings.Contains(err.Error(), "authentication required") {
		return fmt.Errorf("pull %s: the registry requires credentials (none given or not accepted): %w", ref, err)
	}
	if strings.Contains(err.Error(), "is blocked in") {
		return errdefs.FailedPrecondition("pull %s: the registry is blocked by registries.conf: %v", ref, err)
	}
	return fmt.Errorf("pull %s: %w", ref, err)
}

func (s *Service) layerIDs() (map[string]bool, error) {
	layers, err := s.store.Layers()
	if err != nil {
		return nil, fmt.Errorf("list layers: %w", err)
	}
	ids := make(map[string]bool, len(layers))
	for _, l := range layers {
		ids[l.ID] = true
	}
	return ids, nil
}

// removeOrphanLayers deletes layers created since before that no image or
// container uses: what a failed pull committed before it failed. It waits
// until no other pull runs, so those pulls' layers are never taken.
func (s *Service) removeOrphanLayers(before map[string]bool) {
	s.layerGC.Lock()
	defer s.layerGC.Unlock()
	for {
		layers, err := s.store.Layers()
		if err != nil {
			s.log.Warn("cannot list layers to clean up a failed pull", "err", err)
			return
		}
		used, err := s.usedLayers(layers)
		if err != nil {
			s.log.Warn("cannot clean up a failed pull", "err", err)
			return
		}
		removed := 0
		for _, l := range layers {
			if before[l.ID] || used[l.ID] {
				continue
			}
			if err := s.store.DeleteLayer(l.ID); err != nil && !errors.Is(err, storage.ErrLayerUnknown) {
				s.log.Warn("cannot remove a failed pull's layer", "layer", l.ID, "err", err)
				continue
			}
			s.log.Info("removed layer of a failed pull", "layer", l.ID)
			removed++
		}
		if removed == 0 {
			return
		}
	}
}

// usedLayers returns layers images or containers use, and every layer that
// is a parent of another layer (so removal goes top-down).
func (s *Service) usedLayers(layers []storage.Layer) (map[string]bool, error) {
	used := map[string]bool{}
	imgs, err := s.store.Images()
	if err != nil {
		return nil, fmt.Errorf("list images: %w", err)
	}
	for _, img := range imgs {
		used[img.TopLayer] = true
		for _, l := range img.MappedTopLayers {
			used[l] = true
		}
	}
	ctrs, err := s.store.Containers()
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	for _, c := range ctrs {
		used[c.LayerID] = true
	}
	for _, l := range layers {
		if l.Parent != "" {
			used[l.Parent] = true
		}
	}
	return used, nil
}
