package server

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/floe-cri/floe/internal/errdefs"
	"github.com/floe-cri/floe/internal/images"
)

// PullImage pulls an image and returns its id as the image ref.
func (s *Server) PullImage(ctx context.Context, req *runtimeapi.PullImageRequest) (*runtimeapi.PullImageResponse, error) {
	name := req.GetImage().GetImage()
	if name == "" {
		return nil, invalid("image.image", "must not be empty")
	}
	var auth *images.Auth
	if a := req.GetAuth(); a != nil {
		auth = &images.Auth{
			Username:      a.Username,
			Password:      a.Password,
			Auth:          a.Auth,
			IdentityToken: a.IdentityToken,
			RegistryToken: a.RegistryToken,
		}
	}
	start := time.Now()
	id, err := s.deps.Images.Pull(ctx, name, auth)
	if m := s.deps.Metrics; m != nil {
		var size uint64
		if err == nil {
			if img, serr := s.deps.Images.Status(id); serr == nil {
				size = img.Size
			}
		}
		m.ObservePull(time.Since(start), size, err)
	}
	if err != nil {
		return nil, err
	}
	return &runtimeapi.PullImageResponse{ImageRef: id}, nil
}

// ListImages lists images, or the one the filter names.
func (s *Server) ListImages(ctx context.Context, req *runtimeapi.ListImagesRequest) (*runtimeapi.ListImagesResponse, error) {
	imgs, err := s.deps.Images.List(req.GetFilter().GetImage().GetImage())
	if err != nil {
		return nil, err
	}
	resp := &runtimeapi.ListImagesResponse{Images: make([]*runtimeapi.Image, 0, len(imgs))}
	for _, img := range imgs {
		resp.Images = append(resp.Images, toCRIImage(img))
	}
	return resp, nil
}

// StreamImages is ListImages in chunks, for nodes with many images.
func (s *Server) StreamImages(req *runtimeapi.StreamImagesRequest, stream grpc.ServerStreamingServer[runtimeapi.StreamImagesResponse]) error {
	imgs, err := s.deps.Images.List(req.GetFilter().GetImage().GetImage())
	if err != nil {
		return toStatus(err)
	}
	const chunk = 100
	for start := 0; start < len(imgs); start += chunk {
		resp := &runtimeapi.StreamImagesResponse{}
		for _, img := range imgs[start:min(start+chunk, len(imgs))] {
			resp.Images = append(resp.Images, toCRIImage(img))
		}
		if err := stream.Send(resp); err != nil {
			return err
		}
	}
	return nil
}

// ImageStatus describes one image; an unknown image is an empty answer,
// not an error, as the CRI requires.
func (s *Server) ImageStatus(ctx context.Context, req *runtimeapi.ImageStatusRequest) (*runtimeapi.ImageStatusResponse, error) {
	name := req.GetImage().GetImage()
	if name == "" {
		return nil, invalid("image.image", "must not be empty")
	}
	img, err := s.deps.Images.Status(name)
	if errdefs.KindOf(err) == errdefs.KindNotFound {
		return &runtimeapi.ImageStatusResponse{}, nil
	}
	if err != nil {
		return nil, err
	}
	resp := &runtimeapi.ImageStatusResponse{Image: toCRIImage(img)}
	if req.Verbose {
		info, err := json.Marshal(verboseImageInfo{
			ID:             img.ID,
			RepoTags:       img.RepoTags,
			RepoDigests:    img.RepoDigests,
			ManifestDigest: img.ManifestDigest.String(),
			Size:           img.Size,
			Pinned:         img.Pinned,
			Created:        img.Created.UTC().Format("2006-01-02T15:04:05Z"),
			Layers:         img.Layers,
			ImageSpec:      img.Config,
		})
		if err != nil {
			return nil, fmt.Errorf("encode image info: %w", err)
		}
		resp.Info = map[string]string{"info": string(info)}
	}
	return resp, nil
}

// verboseImageInfo is ImageStatus's verbose "info" JSON.
type verboseImageInfo struct {
	ID             string         `json:"id"`
	RepoTags       []string       `json:"repoTags"`
	RepoDigests    []string       `json:"repoDigests"`
	ManifestDigest string         `json:"manifestDigest"`
	Size           uint64         `json:"size"`
	Pinned         bool           `json:"pinned"`
	Created        string         `json:"created"`
	Layers         []images.Layer `json:"layers"`
	ImageSpec      any            `json:"imageSpec"`
}

// RemoveImage removes an image or, for one tag of a multi-tag image, only
// that tag.
func (s *Server) RemoveImage(ctx context.Context, req *runtimeapi.RemoveImageRequest) (*runtimeapi.RemoveImageResponse, error) {
	name := req.GetImage().GetImage()
	if name == "" {
		return nil, invalid("image.image", "must not be empty")
	}
	// A container removed just before may still have its layer on the
	// image, which the store would not let go.
	if s.deps.Containers != nil {
		if err := s.deps.Containers.FinishRemovals(); err != nil {
			s.log.Warn("RemoveImage: finishing container removals first", "image", name, "err", err)
		}
	}
	if err := s.deps.Images.Remove(name); err != nil {
		return nil, err
	}
	return &runtimeapi.RemoveImageResponse{}, nil
}

// ImageFsInfo reports the image store's use, and the containers' writable
// layers separately.
func (s *Server) ImageFsInfo(ctx context.Context, req *runtimeapi.ImageFsInfoRequest) (*runtimeapi.ImageFsInfoResponse, error) {
	imgs, ctrs, err := s.deps.Images.FsInfo()
	if err != nil {
		return nil, err
	}
	return &runtimeapi.ImageFsInfoResponse{
		ImageFilesystems:     []*runtimeapi.FilesystemUsage{toCRIUsage(imgs)},
		ContainerFilesystems: []*runtimeapi.FilesystemUsage{toCRIUsage(ctrs)},
	}, nil
}

func toCRIUsage(u images.FsUsage) *runtimeapi.FilesystemUsage {
	return &runtimeapi.FilesystemUsage{
		Timestamp:  u.Timestamp.UnixNano(),
		FsId:       &runtimeapi.FilesystemIdentifier{Mountpoint: u.Mountpoint},
		UsedBytes:  &runtimeapi.UInt64Value{Value: u.UsedBytes},
		InodesUsed: &runtimeapi.UInt64Value{Value: u.InodesUsed},
	}
}

func toCRIImage(img *images.Image) *runtimeapi.Image {
	out := &runtimeapi.Image{
		Id:          img.ID,
		RepoTags:    img.RepoTags,
		RepoDigests: img.RepoDigests,
		Size:        img.Size,
		Pinned:      img.Pinned,
		Spec:        &runtimeapi.ImageSpec{Image: img.ID},
	}
	if img.Config != nil {
		// The kubelet checks runAsNonRoot against these: a numeric user
		// goes in Uid, a name in Username.
		user, _, _ := strings.Cut(img.Config.Config.User, ":")
		if uid, err := strconv.ParseInt(user, 10, 64); err == nil {
			out.Uid = &runtimeapi.Int64Value{Value: uid}
		} else {
			out.Username = user
		}
		out.Spec.Annotations = img.Config.Config.Labels
	}
	return out
}
