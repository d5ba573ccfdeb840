package harness

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// mosquittoConfig listens on loopback only, lets anyone in, keeps nothing on
// disk and logs to stderr (which the harness appends to the log file). Its
// queue per client is as docs/mosquitto sets it: the default 1,000 drops a
// fleet's burst to the hub.
const mosquittoConfig = `listener %d 127.0.0.1
allow_anonymous true
persistence false
max_queued_messages 100000
log_dest stderr
log_type error
log_type warning
log_type notice
log_type information
connection_messages true
`

// Mosquitto is an MQTT broker on 127.0.0.1, for interop tests.
type Mosquitto struct {
	*Process
	// URL is "tcp://127.0.0.1:port", as paho takes it.
	URL  string
	Addr string
	dir  string
}

// Restart stops the broker and starts it again on the same port. It
// keeps nothing across the restart (persistence is off), as a broker that
// lost its disk would not.
func (m *Mosquitto) Restart(ctx context.Context) error {
	if err := m.Stop(); err != nil {
		return err
	}
	return m.Start(ctx)
}

// Start starts the broker again after Stop, with the same configuration.
func (m *Mosquitto) Start(ctx context.Context) error {
	bin, err := FindBinary("mosquitto")
	if err != nil {
		return err
	}
	p, err := StartProcess("mosquitto", filepath.Join(m.dir, "mosquitto.log"), bin, "-c", filepath.Join(m.dir, "mosquitto.conf"))
	if err != nil {
		return err
	}
	if err := p.WaitReady(ctx, DialCheck("tcp", m.Addr)); err != nil {
		_ = p.Stop()
		return fmt.Errorf("restart mosquitto: %w", err)
	}
	m.Process = p
	return nil
}

// StartMosquitto starts a broker configured under dir and returns once it
// accepts TCP connections.
func StartMosquitto(ctx context.Context, dir string) (*Mosquitto, error) {
	bin, err := FindBinary("mosquitto")
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("mosquitto dir: %w", err)
	}
	var lastErr error
	for range portAttempts {
		port, err := FreePort()
		if err != nil {
			return nil, err
		}
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		conf := filepath.Join(dir, "mosquitto.conf")
		if err := os.WriteFile(conf, []byte(fmt.Sprintf(mosquittoConfig, port)), 0o644); err != nil {
			return nil, fmt.Errorf("mosquitto config: %w", err)
		}
		p, err := StartProcess("mosquitto", filepath.Join(dir, "mosquitto.log"), bin, "-c", conf)
		if err != nil {
			return nil, err
		}
		lastErr = p.WaitReady(ctx, DialCheck("tcp", addr))
		if lastErr == nil {
			return &Mosquitto{Process: p, URL: "tcp://" + addr, Addr: addr, dir: dir}, nil
		}
		p.Stop()
		if !strings.Contains(p.Logs(), "Address already in use") {
			break
		}
	}
	return nil, fmt.Errorf("start mosquitto: %w", lastErr)
}

// ModuleRoot returns the directory holding go.mod, above the working
// directory (a test's package directory).
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("go.mod not found above %s", dir)
		}
		dir = parent
	}
}

// DocumentedMosquitto is Mosquitto run with the TLS configuration and the
// ACL that docs/mosquitto gives operators, so that tests run what the
// documentation says.
type DocumentedMosquitto struct {
	*Process
	// URL is "ssl://127.0.0.1:port".
	URL, Addr string
	// Dir holds the configuration, its files and the persistence.
	Dir  string
	port int
}

// docsConfigEdits are the only changes made to the documented
// configuration: where its files are, the listener, the log, and the user
// (run as root, Mosquitto would drop to the mosquitto user, who cannot
// read the test's 0600 files).
func docsConfigEdits(dir string, port int) map[string]string {
	return map[string]string{
		"listener 8883": fmt.Sprintf("listener %d 127.0.0.1", port),
		"persistence_location /var/lib/mosquitto/": "persistence_location " + dir + "/",
		"per_listener_settings false":              "user root\nlog_dest stderr\nlog_type all\nper_listener_settings false",
	}
}

// writeDocumentedConfig writes docs/mosquitto/mosquitto-tls.conf (edited
// as docsConfigEdits says, and without its acl_file line unless acl) and
// flotilla.acl into dir, and returns the configuration's path.
func writeDocumentedConfig(dir string, port int, acl bool) (string, error) {
	root, err := ModuleRoot()
	if err != nil {
		return "", err
	}
	docs := filepath.Join(root, "docs", "mosquitto")
	aclText, err := os.ReadFile(filepath.Join(docs, "flotilla.acl"))
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, "flotilla.acl"), aclText, 0o600); err != nil {
		return "", err
	}
	conf, err := os.ReadFile(filepath.Join(docs, "mosquitto-tls.conf"))
	if err != nil {
		return "", err
	}
	text := strings.ReplaceAll(string(conf), "/etc/mosquitto/flotilla/", dir+"/")
	edits := docsConfigEdits(dir, port)
	if !acl {
		edits["acl_file "+dir+"/flotilla.acl\n"] = ""
	}
	for old, repl := range edits {
		if !strings.Contains(text, old) {
			return "", fmt.Errorf("docs/mosquitto/mosquitto-tls.conf has no %q any more: update the harness", old)
		}
		text = strings.Replace(text, old, repl, 1)
	}
	path := filepath.Join(dir, "mosquitto.conf")
	return path, os.WriteFile(path, []byte(text), 0o600)
}

// StartDocumentedMosquitto runs Mosquitto with docs/mosquitto's
// configuration and ACL on 127.0.0.1:port (0: a free port). dir must hold
// what the documentation says to copy into /etc/mosquitto/flotilla/:
// ca.crt, server.crt, server.key (for 127.0.0.1) and revoked.crl.
func StartDocumentedMosquitto(ctx context.Context, dir string, port int) (*DocumentedMosquitto, error) {
	var lastErr error
	for range portAttempts {
		p := port
		if p == 0 {
			var err error
			if p, err = FreePort(); err != nil {
				return nil, err
			}
		}
		m := &DocumentedMosquitto{Dir: dir, port: p, Addr: fmt.Sprintf("127.0.0.1:%d", p)}
		m.URL = "ssl://" + m.Addr
		if lastErr = m.start(ctx, true); lastErr == nil {
			return m, nil
		}
		if port != 0 || !strings.Contains(lastErr.Error(), "Address already in use") {
			break
		}
	}
	return nil, fmt.Errorf("start mosquitto: %w", lastErr)
}

// Restart stops the broker and starts it again on the same port, which is
// how Mosquitto rereads its CRL. Without acl, the broker runs without
// access control: what a misconfigured or compromised broker allows.
func (m *DocumentedMosquitto) Restart(ctx context.Context, acl bool) error {
	if err := m.Stop(); err != nil {
		return err
	}
	return m.start(ctx, acl)
}

func (m *DocumentedMosquitto) start(ctx context.Context, acl bool) error {
	bin, err := FindBinary("mosquitto")
	if err != nil {
		return err
	}
	conf, err := writeDocumentedConfig(m.Dir, m.port, acl)
	if err != nil {
		return err
	}
	p, err := StartProcess("mosquitto", filepath.Join(m.Dir, "mosquitto.log"), bin, "-c", conf)
	if err != nil {
		return err
	}
	if err := p.WaitReady(ctx, DialCheck("tcp", m.Addr)); err != nil {
		p.Stop()
		return err
	}
	m.Process = p
	return nil
}
