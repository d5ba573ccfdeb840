// Package runtime is the edge agent's containerd adapter: it satisfies
// reconcile.Runtime by pulling images, creating containers with an OCI spec
// built Kubernetes-style, running their tasks and reporting their exits, all
// in one containerd namespace. containerd's errors are classified here, once,
// into the reconcile package's sentinel errors.
package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/containerd/containerd"
	"github.com/containerd/containerd/errdefs"
	"github.com/containerd/containerd/namespaces"
	"github.com/containerd/containerd/remotes"
	"github.com/containerd/containerd/remotes/docker"
	"github.com/containerd/platforms"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/singleflight"

	"github.com/flotilla-edge/flotilla/edge-agent/internal/reconcile"
)

var _ reconcile.Runtime = (*Containerd)(nil)

// Defaults for Options.
const (
	DefaultNamespace   = "flotilla"
	DefaultSnapshotter = "overlayfs"
	DefaultDialTimeout = 5 * time.Second
	DefaultPullTimeout = 10 * time.Minute

	// defaultRuntime is the shim every task runs under.
	defaultRuntime = "io.containerd.runc.v2"
)

// Options configures New. Zero fields take the defaults above.
type Options struct {
	// Socket is containerd's gRPC address, e.g. /run/containerd/containerd.sock.
	Socket string
	// Namespace is the containerd namespace the agent owns.
	Namespace string
	// InsecureRegistries are registry hosts ("host:port") reached over plain
	// HTTP instead of HTTPS.
	InsecureRegistries []string
	// Snapshotter unpacks images and holds container filesystems.
	Snapshotter string
	// Logger receives the adapter's own diagnostics (resubscriptions).
	Logger *slog.Logger
	// DialTimeout bounds the connection to containerd in New.
	DialTimeout time.Duration
	// PullTimeout bounds one image pull, which is shared by every caller
	// waiting for the same ref.
	PullTimeout time.Duration
	// Platform is what images are pulled, unpacked and run for, matched
	// the way containerd's platforms.Only does (linux/arm/v7 also takes
	// v6 and v5, never v8). The agent passes the platform it was built
	// for; zero means platforms.DefaultSpec(), which on ARM reads the
	// variant from /proc/cpuinfo, wrong under qemu-user.
	Platform ocispec.Platform
	// SeccompProfileRoot is the directory Localhost seccomp profiles are
	// read from (default DefaultSeccompProfileRoot).
	SeccompProfileRoot string
	// UnconfinedByDefault runs the containers whose securityContext names
	// no seccomp profile without one, instead of under the runtime's
	// default (the agent's --seccomp-default=false).
	UnconfinedByDefault bool
}

// Containerd drives one containerd namespace. Its methods are safe for
// concurrent use.
type Containerd struct {
	client   *containerd.Client
	opts     Options
	log      *slog.Logger
	resolver remotes.Resolver
	pulls    singleflight.Group
	platform platforms.MatchComparer
	// fifoDir is where Exec makes the FIFOs of exec'd processes; empty
	// means containerd's default (/run/containerd/fifo). Tests point it
	// at a temporary directory to check that nothing is left behind.
	fifoDir string

	// base is the parent of the shared pulls, which outlive any single
	// caller's context; Close cancels it.
	base   context.Context
	cancel context.CancelFunc
}

// New connects to containerd. It fails, rather than waits, when containerd is
// not serving: the caller owns the retry.
func New(ctx context.Context, opts Options) (*Containerd, error) {
	if opts.Socket == "" {
		return nil, errors.New("containerd: no socket given")
	}
	if opts.Namespace == "" {
		opts.Namespace = DefaultNamespace
	}
	if opts.Snapshotter == "" {
		opts.Snapshotter = DefaultSnapshotter
	}
	if opts.DialTimeout <= 0 {
		opts.DialTimeout = DefaultDialTimeout
	}
	if opts.PullTimeout <= 0 {
		opts.PullTimeout = DefaultPullTimeout
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Platform.OS == "" {
		opts.Platform = platforms.DefaultSpec()
	}
	platform := platforms.Only(opts.Platform)
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("connect containerd %s: %w", opts.Socket, err)
	}
	client, err := containerd.New(opts.Socket,
		containerd.WithDefaultNamespace(opts.Namespace),
		// Naming the runtime skips the client's namespace-label lookup,
		// which New would make without a deadline.
		containerd.WithDefaultRuntime(defaultRuntime),
		// Images got by name (GetImage) resolve an index with it too.
		containerd.WithDefaultPlatform(platform),
		containerd.WithTimeout(opts.DialTimeout))
	if err != nil {
		return nil, fmt.Errorf("connect containerd %s: %w", opts.Socket, err)
	}
	vctx, cancel := context.WithTimeout(ctx, opts.DialTimeout)
	defer cancel()
	if _, err := client.Version(vctx); err != nil {
		client.Close()
		return nil, fmt.Errorf("connect containerd %s: version: %w", opts.Socket, err)
	}
	base, stop := context.WithCancel(context.Background())
	return &Containerd{
		client:   client,
		opts:     opts,
		log:      opts.Logger.With("component", "runtime", "namespace", opts.Namespace),
		resolver: newResolver(opts.InsecureRegistries),
		platform: platform,
		base:     base,
		cancel:   stop,
	}, nil
}

// Close cancels pulls in flight and closes the connection to containerd.
func (c *Containerd) Close() error {
	c.cancel()
	if err := c.client.Close(); err != nil {
		return fmt.Errorf("close containerd client: %w", err)
	}
	return nil
}

// Version returns the containerd daemon's version.
func (c *Containerd) Version(ctx context.Context) (string, error) {
	v, err := c.client.Version(ctx)
	if err != nil {
		return "", fmt.Errorf("containerd version: %w", classify(err))
	}
	return v.Version, nil
}

// ns puts the adapter's namespace on ctx.
func (c *Containerd) ns(ctx context.Context) context.Context {
	return namespaces.WithNamespace(ctx, c.opts.Namespace)
}

// classify maps containerd's error kinds onto the reconcile sentinels while
// keeping the original cause in the chain. It is applied once, at the edge
// of this package.
func classify(err error) error {
	switch {
	case err == nil:
		return nil
	case errdefs.IsNotFound(err):
		return fmt.Errorf("%w: %w", reconcile.ErrNotFound, err)
	case errdefs.IsAlreadyExists(err):
		return fmt.Errorf("%w: %w", reconcile.ErrAlreadyExists, err)
	}
	return err
}

// newResolver builds a registry resolver whose HTTP waits are bounded and
// that speaks plain HTTP to the insecure registries.
func newResolver(insecure []string) remotes.Resolver {
	plain := make(map[string]bool, len(insecure))
	for _, h := range insecure {
		plain[h] = true
	}
	transport := &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{
			Timeout:   10 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
		ExpectContinueTimeout: 5 * time.Second,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConns:          10,
	}
	httpClient := &http.Client{Transport: transport}
	return docker.NewResolver(docker.ResolverOptions{
		Hosts: docker.ConfigureDefaultRegistries(
			docker.WithClient(httpClient),
			docker.WithAuthorizer(docker.NewDockerAuthorizer(docker.WithAuthClient(httpClient))),
			docker.WithPlainHTTP(func(host string) (bool, error) { return plain[host], nil }),
		),
	})
}
