package harness

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// mosquittoConfig listens on loopback only, lets anyone in, keeps nothing on
// disk and logs to stderr (which the harness appends to the log file).
const mosquittoConfig = `listener %d 127.0.0.1
allow_anonymous true
persistence false
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
			return &Mosquitto{Process: p, URL: "tcp://" + addr, Addr: addr}, nil
		}
		p.Stop()
		if !strings.Contains(p.Logs(), "Address already in use") {
			break
		}
	}
	return nil, fmt.Errorf("start mosquitto: %w", lastErr)
}
