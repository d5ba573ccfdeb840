// Package images builds the small OCI images Flotilla's tests run, in
// memory from a static busybox binary, and pushes them (or a multi-arch
// index of them) to a plain-HTTP registry. Nothing is fetched from outside:
// the amd64 image is made from the host's /bin/busybox, others from a
// busybox binary the caller supplies.
package images

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	goruntime "runtime"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// DefaultPath is the image's PATH, as in Docker's default.
const DefaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// HostBusybox is the static busybox Debian's busybox-static installs.
const HostBusybox = "/bin/busybox"

// pushTimeout bounds one push when the caller's ctx has no deadline.
const pushTimeout = 2 * time.Minute

// applets get a symlink in /bin. (trap is a shell builtin, not an applet.)
func applets() []string {
	return []string{
		"sh", "ls", "cat", "echo", "sleep", "uname", "env", "pwd", "id", "date",
		"true", "false", "kill", "ps", "nc", "httpd", "wget", "mkdir", "rm",
		"touch", "grep", "head", "tail", "wc", "yes", "dd", "seq", "hostname",
		"printf", "test", "[", "cp", "mv", "ln", "chmod", "sed", "awk", "tr",
		"sort", "uniq", "cut", "tee", "timeout", "basename", "dirname", "stat",
		"find", "xargs", "free", "df", "ip", "netstat", "nslookup", "ping",
		"mount", "nproc", "whoami", "sync", "usleep",
	}
}

// layerTime is every file's mtime and the image's creation time, so that
// the same busybox gives the same digest.
func layerTime() time.Time { return time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC) }

// Option changes how BuildBusybox builds.
type Option func(*options)

type options struct {
	busybox string
}

// WithBusybox takes the busybox binary from path instead of the host's,
// which a foreign architecture needs.
func WithBusybox(path string) Option {
	return func(o *options) { o.busybox = path }
}

// Platform parses "amd64", "arm64", "arm64/v8", "arm/v7" into a linux
// platform.
func Platform(arch string) (v1.Platform, error) {
	a, variant, _ := strings.Cut(arch, "/")
	if a == "" || strings.Contains(variant, "/") {
		return v1.Platform{}, fmt.Errorf("bad architecture %q: want ARCH or ARCH/VARIANT", arch)
	}
	return v1.Platform{OS: "linux", Architecture: a, Variant: variant}, nil
}

// BuildBusybox builds a one-layer busybox image for arch: /bin/busybox with
// applet symlinks, /tmp, /root, /etc/passwd and /etc/group with root, PATH
// set and Cmd ["sh"]. For an architecture other than the host's, pass
// WithBusybox.
func BuildBusybox(arch string, opts ...Option) (v1.Image, error) {
	plat, err := Platform(arch)
	if err != nil {
		return nil, err
	}
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if o.busybox == "" {
		if plat.Architecture != goruntime.GOARCH {
			return nil, fmt.Errorf("busybox image for %s: the host is %s; pass WithBusybox(path to a %s busybox)", arch, goruntime.GOARCH, arch)
		}
		o.busybox = HostBusybox
	}
	bin, err := os.ReadFile(o.busybox)
	if err != nil {
		return nil, fmt.Errorf("busybox image for %s: %w (apt-get install busybox-static)", arch, err)
	}
	layerTar, err := busyboxLayer(bin)
	if err != nil {
		return nil, fmt.Errorf("busybox image for %s: %w", arch, err)
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, fmt.Errorf("busybox image for %s: layer: %w", arch, err)
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.AppendLayers(img, layer)
	if err != nil {
		return nil, fmt.Errorf("busybox image for %s: %w", arch, err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("busybox image for %s: %w", arch, err)
	}
	cfg = cfg.DeepCopy()
	cfg.OS = plat.OS
	cfg.Architecture = plat.Architecture
	cfg.Variant = plat.Variant
	cfg.Created = v1.Time{Time: layerTime()}
	cfg.Config.Env = []string{DefaultPath}
	cfg.Config.Cmd = []string{"sh"}
	img, err = mutate.ConfigFile(img, cfg)
	if err != nil {
		return nil, fmt.Errorf("busybox image for %s: %w", arch, err)
	}
	return img, nil
}

// busyboxLayer writes the layer's uncompressed tar.
func busyboxLayer(busybox []byte) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	hdr := func(h *tar.Header) error {
		h.ModTime = layerTime()
		h.Format = tar.FormatPAX
		return tw.WriteHeader(h)
	}
	file := func(name string, mode int64, data []byte) error {
		if err := hdr(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data))}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	for _, d := range []struct {
		name string
		mode int64
	}{{"bin/", 0o755}, {"etc/", 0o755}, {"root/", 0o700}, {"tmp/", 0o1777}, {"usr/", 0o755}, {"usr/bin/", 0o755}, {"var/", 0o755}} {
		if err := hdr(&tar.Header{Typeflag: tar.TypeDir, Name: d.name, Mode: d.mode}); err != nil {
			return nil, err
		}
	}
	if err := file("bin/busybox", 0o755, busybox); err != nil {
		return nil, err
	}
	for _, a := range applets() {
		if err := hdr(&tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/" + a, Linkname: "busybox", Mode: 0o777}); err != nil {
			return nil, err
		}
	}
	if err := file("etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")); err != nil {
		return nil, err
	}
	if err := file("etc/group", 0o644, []byte("root:x:0:\nnobody:x:65534:\n")); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Push writes img to ref on a plain-HTTP registry and returns the manifest
// digest.
func Push(ctx context.Context, img v1.Image, ref string) (string, error) {
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		return "", fmt.Errorf("push %s: %w", ref, err)
	}
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	if err := remote.Write(r, img, remote.WithContext(ctx), remote.WithTransport(transport())); err != nil {
		return "", fmt.Errorf("push %s: %w", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		return "", fmt.Errorf("push %s: digest: %w", ref, err)
	}
	return d.String(), nil
}

// Index makes an OCI image index of imgs, each described by the platform in
// its config.
func Index(imgs ...v1.Image) (v1.ImageIndex, error) {
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	adds := make([]mutate.IndexAddendum, 0, len(imgs))
	for _, img := range imgs {
		cfg, err := img.ConfigFile()
		if err != nil {
			return nil, fmt.Errorf("index: %w", err)
		}
		adds = append(adds, mutate.IndexAddendum{
			Add: img,
			Descriptor: v1.Descriptor{Platform: &v1.Platform{
				OS: cfg.OS, Architecture: cfg.Architecture, Variant: cfg.Variant,
			}},
		})
	}
	return mutate.AppendManifests(idx, adds...), nil
}

// PushIndex writes a multi-arch index and its images to ref on a plain-HTTP
// registry and returns the index digest.
func PushIndex(ctx context.Context, idx v1.ImageIndex, ref string) (string, error) {
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		return "", fmt.Errorf("push index %s: %w", ref, err)
	}
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	if err := remote.WriteIndex(r, idx, remote.WithContext(ctx), remote.WithTransport(transport())); err != nil {
		return "", fmt.Errorf("push index %s: %w", ref, err)
	}
	d, err := idx.Digest()
	if err != nil {
		return "", fmt.Errorf("push index %s: digest: %w", ref, err)
	}
	return d.String(), nil
}

func withDefaultTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, pushTimeout)
}

// transport bounds every network wait of a push.
func transport() http.RoundTripper {
	return &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
		IdleConnTimeout:       30 * time.Second,
	}
}
