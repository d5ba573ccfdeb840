// Package broker runs the hub's embedded MQTT broker (mochi-mqtt), so a
// small fleet needs nothing but the hub binary. Larger fleets point the hub
// and agents at an external broker instead; nothing else in the hub knows
// which one is in use.
package broker

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"sync/atomic"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
)

// Options configure the broker.
type Options struct {
	// Listen is the TCP address for MQTT clients (default ":1883").
	Listen string
	// MaxPacketSize bounds any packet; larger ones close the connection.
	MaxPacketSize uint32
	// TLS, if set, makes the listener TLS (see pki.Credentials.MQTTServerTLS).
	TLS *tls.Config
	// Auth authenticates clients and checks their access (an *ACL); nil
	// allows everyone everything, as with --insecure.
	Auth mqtt.Hook
	// WritesPending is how many packets may wait to be written to one
	// client (default 256). The queue is allocated at this size for every
	// connection, and a QoS 1 message for a client whose queue is full is
	// dropped. Agents receive only their desired snapshot and log
	// requests; the hub itself subscribes inline (Session), unqueued.
	WritesPending int32
	Logger        *slog.Logger
}

// DefaultWritesPending is the default Options.WritesPending.
const DefaultWritesPending = 256

// Broker is an embedded MQTT broker.
type Broker struct {
	srv    *mqtt.Server
	addr   string
	scheme string
}

// New creates the broker and binds its listener, so a busy port fails here.
func New(opts Options) (*Broker, error) {
	if opts.Listen == "" {
		opts.Listen = ":1883"
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumPacketSize = opts.MaxPacketSize
	// mochi's default (8,192) is 64 KiB of channel per connection: 640 MiB
	// at 10,000 agents.
	caps.MaximumClientWritesPending = DefaultWritesPending
	if opts.WritesPending > 0 {
		caps.MaximumClientWritesPending = opts.WritesPending
	}
	// Agents run MQTT 3.1.1 (paho); keep sessions of vanished clients short.
	caps.MaximumSessionExpiryInterval = 3600
	srv := mqtt.New(&mqtt.Options{
		Capabilities:             caps,
		Logger:                   opts.Logger.With("component", "broker"),
		InlineClient:             true,
		SysTopicResendInterval:   3600, // nothing reads $SYS; each round reads the Go memory statistics
		ClientNetWriteBufferSize: 4096,
		ClientNetReadBufferSize:  4096,
	})
	var hook mqtt.Hook = new(auth.AllowHook)
	if opts.Auth != nil {
		hook = opts.Auth
	}
	if err := srv.AddHook(hook, nil); err != nil {
		return nil, fmt.Errorf("broker auth hook: %w", err)
	}
	ln := listeners.NewTCP(listeners.Config{ID: "mqtt", Address: opts.Listen, TLSConfig: opts.TLS})
	if err := srv.AddListener(ln); err != nil {
		return nil, fmt.Errorf("broker listen on %s: %w", opts.Listen, err)
	}
	scheme := "tcp"
	if opts.TLS != nil {
		scheme = "ssl"
	}
	return &Broker{srv: srv, addr: ln.Address(), scheme: scheme}, nil
}

// Addr returns the address the broker listens on.
func (b *Broker) Addr() string { return b.addr }

// URL returns a client URL for the broker (ssl:// with TLS), with a
// wildcard host replaced by loopback.
func (b *Broker) URL() string {
	host, port, err := net.SplitHostPort(b.addr)
	if err != nil {
		return b.scheme + "://" + b.addr
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return b.scheme + "://" + net.JoinHostPort(host, port)
}

// Clients returns the number of connected clients.
func (b *Broker) Clients() int {
	return int(atomic.LoadInt64(&b.srv.Info.ClientsConnected))
}

// Run serves until ctx ends, then closes every connection.
func (b *Broker) Run(ctx context.Context) error {
	if err := b.srv.Serve(); err != nil {
		return fmt.Errorf("broker: %w", err)
	}
	<-ctx.Done()
	return b.srv.Close()
}
