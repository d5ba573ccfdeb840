package harness

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// registryConfig is a Distribution configuration: filesystem storage, plain
// HTTP on loopback, no auth, deletes allowed.
const registryConfig = `version: 0.1
log:
  level: info
  formatter: text
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: %s
`

// portAttempts is how often a daemon is started on a new port when the
// free port it was given was taken in the meantime.
const portAttempts = 3

// Registry is an OCI registry (Debian's docker-registry, the CNCF
// Distribution server) serving plain HTTP on 127.0.0.1.
type Registry struct {
	*Process
	// Addr is "127.0.0.1:port", usable in image references.
	Addr string
	Dir  string
}

// StartRegistry starts a registry storing under dir on a free port of
// 127.0.0.1 and returns once GET /v2/ answers 200.
func StartRegistry(ctx context.Context, dir string) (*Registry, error) {
	var lastErr error
	for range portAttempts {
		port, err := FreePort()
		if err != nil {
			return nil, err
		}
		r, err := StartRegistryAt(ctx, dir, fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			return r, nil
		}
		lastErr = err
		if !errors.Is(err, ErrAddressInUse) {
			break
		}
	}
	return nil, lastErr
}

// ErrAddressInUse is wrapped when a daemon could not bind its address.
var ErrAddressInUse = errors.New("address already in use")

// StartRegistryAt starts a registry storing under dir and serving addr
// (host:port), and returns once GET /v2/ answers 200.
func StartRegistryAt(ctx context.Context, dir, addr string) (*Registry, error) {
	bin, err := FindBinary("docker-registry")
	if err != nil {
		return nil, err
	}
	data := filepath.Join(dir, "data")
	if err := os.MkdirAll(data, 0o755); err != nil {
		return nil, fmt.Errorf("registry dir: %w", err)
	}
	cfgPath := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfgPath, []byte(fmt.Sprintf(registryConfig, data, addr)), 0o644); err != nil {
		return nil, fmt.Errorf("registry config: %w", err)
	}
	p, err := StartProcess("docker-registry", filepath.Join(dir, "registry.log"), bin, "serve", cfgPath)
	if err != nil {
		return nil, err
	}
	if err := p.WaitReady(ctx, registryCheck(addr)); err != nil {
		p.Stop()
		if strings.Contains(p.Logs(), "address already in use") {
			return nil, fmt.Errorf("start registry on %s: %w", addr, ErrAddressInUse)
		}
		return nil, fmt.Errorf("start registry: %w", err)
	}
	return &Registry{Process: p, Addr: addr, Dir: dir}, nil
}

// registryCheck succeeds once GET /v2/ returns 200.
func registryCheck(addr string) func(context.Context) error {
	client := &http.Client{Timeout: 2 * time.Second}
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/v2/", nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return errors.New("GET /v2/: " + resp.Status)
		}
		return nil
	}
}
