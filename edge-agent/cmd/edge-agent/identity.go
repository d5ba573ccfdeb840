package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/viper"

	"github.com/flotilla-edge/flotilla/edge-agent/internal/enrol"
	"github.com/flotilla-edge/flotilla/pkg/wire"
)

// bootstrapToken is --token (or FLOTILLA_TOKEN), or the content of
// --token-file. A file (or the environment) keeps the token off the
// command line, which every user of the board can read in ps; the file
// is read only while the node is not enrolled, so it may go once it is.
func bootstrapToken(v *viper.Viper, log *slog.Logger) (string, error) {
	token, file := v.GetString("token"), v.GetString("token-file")
	if file == "" {
		return token, nil
	}
	if token != "" {
		return "", errors.New("give the bootstrap token with --token or --token-file, not both")
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("--token-file: %w", err)
	}
	if fi, err := os.Stat(file); err == nil && fi.Mode().Perm()&0o077 != 0 {
		log.Warn("the bootstrap token file is readable by other users: chmod 600 it", "file", file, "mode", fmt.Sprintf("%04o", fi.Mode().Perm()))
	}
	token = strings.TrimSpace(string(b))
	if token == "" || strings.ContainsAny(token, " \t\r\n") {
		return "", fmt.Errorf("--token-file %s: want the token alone on one line, as hub token create prints it", file)
	}
	return token, nil
}

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
			return linkSecurity{}, fmt.Errorf("node %s is not enrolled (no identity in %s): give --hub, --token (or --token-file) and --ca-fingerprint to enrol, or --insecure", node, dir)
		}
		var token string
		if token, err = bootstrapToken(v, log); err != nil {
			return linkSecurity{}, err
		}
		log.Info("enrolling with the hub", "hub", hub)
		id, err = enrol.Enrol(ctx, enrol.Config{
			Hub: hub, Token: token, CAFingerprint: v.GetString("ca-fingerprint"),
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
