package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"path/filepath"

	"github.com/spf13/viper"

	"github.com/flotilla-edge/flotilla/edge-agent/internal/enrol"
	"github.com/flotilla-edge/flotilla/pkg/wire"
)

// linkSecurity is how the agent talks to the hub.
type linkSecurity struct {
	broker   string
	tls      *tls.Config
	verifier *wire.Verifier
}

// setUpIdentity loads the node's identity from {state-dir}/pki, enrolling
// first with --hub, --token and --ca-fingerprint if there is none. A node
// with an identity connects over TLS with its certificate and verifies
// every snapshot with the hub key it pinned. Without one, it runs
// insecure (plaintext, unsigned snapshots accepted) only with --insecure
// or a tcp:// --broker.
func setUpIdentity(ctx context.Context, v *viper.Viper, brokerSet bool, node, stateDir string, log *slog.Logger) (linkSecurity, error) {
	broker, hub := v.GetString("broker"), v.GetString("hub")
	plain := false
	if u, err := url.Parse(broker); err == nil && (u.Scheme == "tcp" || u.Scheme == "mqtt") {
		plain = true
	}
	if v.GetBool("insecure") {
		log.Warn("--insecure: plaintext MQTT, no identity, unsigned snapshots accepted")
		return linkSecurity{broker: broker}, nil
	}
	dir := filepath.Join(stateDir, "pki")
	id, err := enrol.Load(dir, node)
	if errors.Is(err, enrol.ErrNotEnrolled) {
		if hub == "" {
			if brokerSet && plain {
				log.Warn("not enrolled and --broker is plaintext: running insecure (plaintext MQTT, unsigned snapshots accepted)")
				return linkSecurity{broker: broker}, nil
			}
			return linkSecurity{}, fmt.Errorf("node %s is not enrolled (no identity in %s): give --hub, --token and --ca-fingerprint to enrol, or --insecure", node, dir)
		}
		log.Info("enrolling with the hub", "hub", hub)
		id, err = enrol.Enrol(ctx, enrol.Config{
			Hub: hub, Token: v.GetString("token"), CAFingerprint: v.GetString("ca-fingerprint"),
			NodeName: node, Dir: dir, Logger: log,
		})
		if err != nil {
			return linkSecurity{}, fmt.Errorf("enrol with %s: %w", hub, err)
		}
		log.Info("enrolled; identity kept", "dir", dir, "serial", id.Certificate.Leaf.SerialNumber.Text(16))
	}
	if err != nil {
		return linkSecurity{}, err
	}
	if !brokerSet {
		u, err := url.Parse(hub)
		if hub == "" || err != nil || u.Hostname() == "" {
			return linkSecurity{}, fmt.Errorf("node %s is enrolled: give --broker ssl://HUB:8883 or --hub https://HUB:8443", node)
		}
		broker = "ssl://" + net.JoinHostPort(u.Hostname(), "8883")
	}
	u, err := url.Parse(broker)
	if err != nil || (u.Scheme != "ssl" && u.Scheme != "tls" && u.Scheme != "mqtts") || u.Hostname() == "" {
		return linkSecurity{}, fmt.Errorf("--broker %q: an enrolled node connects over TLS: use ssl://host:port", broker)
	}
	verifier, err := id.Verifier()
	if err != nil {
		return linkSecurity{}, err
	}
	return linkSecurity{broker: broker, tls: id.TLSConfig(u.Hostname()), verifier: verifier}, nil
}
