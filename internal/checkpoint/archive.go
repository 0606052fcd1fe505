package checkpoint

import (
	"archive/tar"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/floe-cri/floe/internal/errdefs"
)

// The archive CheckpointContainer writes, modelled on CRI-O's so the
// same tools can read it: a plain tar holding
//
//	config.dump      Config: who the container was (JSON)
//	spec.dump        the container's OCI runtime spec (its config.json)
//	status.dump      Status: its state at the checkpoint (JSON)
//	checkpoint/      criu's images: the processes, their memory and files
//	rootfs-diff.tar  files the container added or changed in its rootfs
//	deleted.files    paths it deleted from the image's files (JSON list)
const (
	ConfigFile     = "config.dump"
	SpecFile       = "spec.dump"
	StatusFile     = "status.dump"
	ImagesDir      = "checkpoint"
	RootfsDiffFile = "rootfs-diff.tar"
	DeletedFile    = "deleted.files"
)

// FormatVersion is written in config.dump; a restore refuses others.
const FormatVersion = 1

// Config is config.dump: what a restore needs to make the container
// again besides criu's images.
type Config struct {
	Format  int    `json:"format"`
	Runtime string `json:"runtime"` // "floe"
	ID      string `json:"id"`
	Name    string `json:"name"`
	PodID   string `json:"podId"`
	// PodName and PodNamespace are the pod's metadata at the checkpoint.
	PodName      string `json:"podName,omitempty"`
	PodNamespace string `json:"podNamespace,omitempty"`
	// Image is the image the container was created from (as requested),
	// ImageID the image's id: a restore needs that image on the node.
	Image          string    `json:"image"`
	ImageID        string    `json:"imageId"`
	ImageRef       string    `json:"imageRef,omitempty"`
	ImageName      string    `json:"imageName,omitempty"`
	Handler        string    `json:"handler"`
	CreatedAt      time.Time `json:"createdAt"`
	CheckpointedAt time.Time `json:"checkpointedAt"`
	CRIUVersion    string    `json:"criuVersion,omitempty"`
	// Container is floe's translated CRI container config (its
	// container.Spec), from which a restore builds the new container.
	Container json.RawMessage `json:"container"`
}

// Status is status.dump.
type Status struct {
	State        string    `json:"state"`
	Pid          int       `json:"pid"`
	StartedAt    time.Time `json:"startedAt"`
	LeftRunning  bool      `json:"leftRunning"`
	DumpDuration string    `json:"dumpDuration"`
}

// WriteJSON writes v as dir/name.
func WriteJSON(dir, name string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", name, err)
	}
	return os.WriteFile(filepath.Join(dir, name), data, 0o600)
}

// WriteArchive writes the staged directory dir as a tar at location,
// config.dump first (IsArchive looks for it). It writes a temporary file
// next to location and renames it, so a failure leaves no partial
// archive behind. It returns the archive's size.
func WriteArchive(dir, location string) (size int64, err error) {
	tmp, err := os.CreateTemp(filepath.Dir(location), "."+filepath.Base(location)+".partial-")
	if err != nil {
		return 0, fmt.Errorf("checkpoint archive: %w", err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	tw := tar.NewWriter(tmp)
	first := []string{ConfigFile, SpecFile, StatusFile}
	for _, name := range first {
		if err := addFile(tw, dir, name); err != nil {
			return 0, err
		}
	}
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." || (d.Type().IsRegular() && (rel == ConfigFile || rel == SpecFile || rel == StatusFile)) {
			return nil
		}
		return addFile(tw, dir, rel)
	})
	if err != nil {
		return 0, fmt.Errorf("checkpoint archive: %w", err)
	}
	if err := tw.Close(); err != nil {
		return 0, fmt.Errorf("checkpoint archive: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return 0, fmt.Errorf("checkpoint archive: %w", err)
	}
	st, err := tmp.Stat()
	if err != nil {
		return 0, fmt.Errorf("checkpoint archive: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return 0, fmt.Errorf("checkpoint archive: %w", err)
	}
	if err := os.Rename(tmp.Name(), location); err != nil {
		return 0, fmt.Errorf("checkpoint archive: %w", err)
	}
	return st.Size(), nil
}

// addFile adds dir/rel, a regular file or directory (all a checkpoint
// holds: criu writes only regular image files).
func addFile(tw *tar.Writer, dir, rel string) error {
	p := filepath.Join(dir, rel)
	fi, err := os.Lstat(p)
	if err != nil {
		return fmt.Errorf("checkpoint archive: %w", err)
	}
	h := &tar.Header{Name: filepath.ToSlash(rel), Mode: int64(fi.Mode().Perm()), ModTime: fi.ModTime(), Format: tar.FormatPAX}
	switch {
	case fi.IsDir():
		h.Typeflag, h.Name = tar.TypeDir, h.Name+"/"
		return tw.WriteHeader(h)
	case fi.Mode().IsRegular():
		h.Typeflag, h.Size = tar.TypeReg, fi.Size()
	default:
		return fmt.Errorf("checkpoint archive: %s is neither a file nor a directory (%v)", rel, fi.Mode().Type())
	}
	if err := tw.WriteHeader(h); err != nil {
		return fmt.Errorf("checkpoint archive: %s: %w", rel, err)
	}
	f, err := os.Open(p)
	if err != nil {
		return fmt.Errorf("checkpoint archive: %w", err)
	}
	defer f.Close()
	if _, err := io.CopyN(tw, f, fi.Size()); err != nil {
		return fmt.Errorf("checkpoint archive: %s: %w", rel, err)
	}
	return nil
}

// IsArchive reports whether path is a tar whose first entry is
// config.dump: a checkpoint archive, as a CreateContainer image may name
// one. A file that is not a tar is not one (and no error).
func IsArchive(p string) bool {
	f, err := os.Open(p)
	if err != nil {
		return false
	}
	defer f.Close()
	h, err := tar.NewReader(f).Next()
	return err == nil && h.Name == ConfigFile && h.Typeflag == tar.TypeReg
}

// ReadArchiveConfig reads config.dump, the first entry of a checkpoint
// archive, without unpacking the rest, and checks it.
func ReadArchiveConfig(archive string) (*Config, error) {
	f, err := os.Open(archive)
	if err != nil {
		return nil, errdefs.InvalidArgument("config.image.image", "checkpoint archive: %v", err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	h, err := tr.Next()
	if err != nil || h.Name != ConfigFile || h.Typeflag != tar.TypeReg {
		return nil, errdefs.InvalidArgument("config.image.image", "%s is not a checkpoint archive (a tar starting with %s)", archive, ConfigFile)
	}
	data, err := io.ReadAll(io.LimitReader(tr, maxMetadata+1))
	if err != nil || len(data) > maxMetadata {
		return nil, errdefs.InvalidArgument("config.image.image", "checkpoint archive %s: unreadable %s (%v)", archive, ConfigFile, err)
	}
	return parseConfig(archive, data)
}

// maxMetadata bounds the JSON files read into memory from an archive.
const maxMetadata = 16 << 20

// Extract unpacks a checkpoint archive into dst (a new, private
// directory): only regular files and directories, only below dst. It
// checks the layout and returns config.dump.
func Extract(archive, dst string) (*Config, error) {
	f, err := os.Open(archive)
	if err != nil {
		return nil, fmt.Errorf("open checkpoint archive: %w", err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, errdefs.InvalidArgument("config.image.image", "%s is not a readable checkpoint archive: %v", archive, err)
		}
		name := path.Clean(h.Name)
		if path.IsAbs(name) || name == ".." || strings.HasPrefix(name, "../") {
			return nil, errdefs.InvalidArgument("config.image.image", "checkpoint archive %s holds an entry outside itself: %q", archive, h.Name)
		}
		target := filepath.Join(dst, filepath.FromSlash(name))
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, 0o700); err != nil {
				return nil, fmt.Errorf("extract checkpoint: %w", err)
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(target), 0o700); err != nil {
				return nil, fmt.Errorf("extract checkpoint: %w", err)
			}
			out, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscallNoFollow, 0o600)
			if err != nil {
				return nil, fmt.Errorf("extract checkpoint: %w", err)
			}
			_, err = io.Copy(out, tr)
			if cerr := out.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return nil, fmt.Errorf("extract checkpoint %s: %w", name, err)
			}
		default:
			return nil, errdefs.InvalidArgument("config.image.image", "checkpoint archive %s holds %q, neither a file nor a directory", archive, h.Name)
		}
	}
	return ReadConfig(archive, dst)
}

// ReadConfig checks an extracted checkpoint's layout and reads its
// config.dump.
func ReadConfig(archive, dir string) (*Config, error) {
	for _, need := range []string{ConfigFile, SpecFile, ImagesDir} {
		if _, err := os.Stat(filepath.Join(dir, need)); err != nil {
			return nil, errdefs.InvalidArgument("config.image.image", "%s is not a checkpoint archive: it has no %s", archive, need)
		}
	}
	data, err := readSmall(filepath.Join(dir, ConfigFile))
	if err != nil {
		return nil, err
	}
	return parseConfig(archive, data)
}

func parseConfig(archive string, data []byte) (*Config, error) {
	var c Config
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, errdefs.InvalidArgument("config.image.image", "checkpoint archive %s: bad %s: %v", archive, ConfigFile, err)
	}
	if c.Format != FormatVersion || c.Runtime != "floe" {
		return nil, errdefs.InvalidArgument("config.image.image", "checkpoint archive %s was written by %q in format %d; floe restores its own format %d", archive, c.Runtime, c.Format, FormatVersion)
	}
	if c.ImageID == "" || len(c.Container) == 0 {
		return nil, errdefs.InvalidArgument("config.image.image", "checkpoint archive %s: %s names no image or container config", archive, ConfigFile)
	}
	return &c, nil
}

func readSmall(p string) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxMetadata+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxMetadata {
		return nil, fmt.Errorf("%s is larger than %d bytes", p, maxMetadata)
	}
	return data, nil
}
