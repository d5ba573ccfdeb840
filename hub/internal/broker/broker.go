// Package broker runs the hub's embedded MQTT 3.1.1 broker, so a small
// fleet needs nothing but the hub binary; larger fleets point the hub and
// agents at an external broker instead, and nothing else in the hub knows
// which one is in use. It is written for this one job, 10,000 mostly idle
// agents on a small machine: one goroutine per connection, no buffer held
// between packets, a writer goroutine only while there is something to
// write, and no periodic sweep. Packets are encoded and decoded with
// paho's codec. See docs/architecture.md ("Embedded broker") for what of
// MQTT it implements.
package broker

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Options configure the broker.
type Options struct {
	// Listen is the TCP address for MQTT clients (default ":1883").
	Listen string
	// MaxPacketSize bounds any packet, header included; a larger one
	// closes the connection before its body is read (default
	// DefaultMaxPacketSize).
	MaxPacketSize uint32
	// TLS, if set, makes the listener TLS (see pki.Credentials.MQTTServerTLS).
	TLS *tls.Config
	// Auth authenticates clients and checks their access (an *ACL); nil
	// allows everyone everything, as with --insecure.
	Auth Auth
	// WritesPending is how many packets may wait to be written to one
	// client, how many QoS 1 messages may be in flight to it (sent, not
	// acknowledged), and how many more may wait for room among those
	// (default DefaultWritesPending). Whoever would go over waits: the
	// client's own reader, or the publisher's (outbound.go).
	WritesPending int32
	// WriteTimeout bounds each write to a client, and how long a client
	// with QoS 1 messages waiting for it may go without acknowledging
	// one; a client over either is disconnected (default 30 s), and gets
	// its retained state back when it reconnects.
	WriteTimeout time.Duration
	// ConnectTimeout bounds the TLS handshake and the CONNECT packet of a
	// new connection (default 10 s).
	ConnectTimeout time.Duration
	Logger         *slog.Logger
}

const (
	// DefaultWritesPending is the default Options.WritesPending.
	DefaultWritesPending = 256
	// DefaultMaxPacketSize is the default Options.MaxPacketSize.
	DefaultMaxPacketSize = 1 << 20
)

// Broker is an embedded MQTT broker.
type Broker struct {
	opts     Options
	ln       net.Listener
	scheme   string
	log      *slog.Logger
	router   *router
	readPool *sync.Pool

	mu       sync.Mutex
	clients  map[string]*client   // connected, by client id
	conns    map[*client]struct{} // every open connection
	stopping bool

	connected atomic.Int64
	wg        sync.WaitGroup // connection goroutines
}

// New creates the broker and binds its listener, so a busy port fails here.
func New(opts Options) (*Broker, error) {
	if opts.Listen == "" {
		opts.Listen = ":1883"
	}
	if opts.MaxPacketSize == 0 {
		opts.MaxPacketSize = DefaultMaxPacketSize
	}
	if opts.WritesPending <= 0 {
		opts.WritesPending = DefaultWritesPending
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = 30 * time.Second
	}
	if opts.ConnectTimeout <= 0 {
		opts.ConnectTimeout = 10 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	ln, err := net.Listen("tcp", opts.Listen)
	if err != nil {
		return nil, fmt.Errorf("broker listen on %s: %w", opts.Listen, err)
	}
	scheme := "tcp"
	if opts.TLS != nil {
		scheme = "ssl"
	}
	return &Broker{
		opts:     opts,
		ln:       ln,
		scheme:   scheme,
		log:      opts.Logger.With("component", "broker"),
		router:   newRouter(),
		readPool: newReadPool(),
		clients:  map[string]*client{},
		conns:    map[*client]struct{}{},
	}, nil
}

// Addr returns the address the broker listens on.
func (b *Broker) Addr() string { return b.ln.Addr().String() }

// URL returns a client URL for the broker (ssl:// with TLS), with a
// wildcard host replaced by loopback.
func (b *Broker) URL() string {
	host, port, err := net.SplitHostPort(b.Addr())
	if err != nil {
		return b.scheme + "://" + b.Addr()
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return b.scheme + "://" + net.JoinHostPort(host, port)
}

// Clients returns the number of connected clients.
func (b *Broker) Clients() int { return int(b.connected.Load()) }

// Run accepts connections until ctx ends, then closes every connection
// and waits for their goroutines.
func (b *Broker) Run(ctx context.Context) error {
	var accepting sync.WaitGroup
	accepting.Go(func() { b.accept(ctx) })
	<-ctx.Done()
	_ = b.ln.Close()
	accepting.Wait()
	b.mu.Lock()
	b.stopping = true
	for c := range b.conns {
		c.closeFor("broker stopping")
	}
	b.mu.Unlock()
	b.wg.Wait()
	return nil
}

// accept accepts connections until the listener closes, backing off on
// errors such as running out of file descriptors.
func (b *Broker) accept(ctx context.Context) {
	delay := 5 * time.Millisecond
	for {
		nc, err := b.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || ctx.Err() != nil {
				return
			}
			b.log.Warn("accept", "err", err, "retry", delay)
			select {
			case <-ctx.Done():
				return
			case <-time.After(delay):
			}
			delay = min(2*delay, time.Second)
			continue
		}
		delay = 5 * time.Millisecond
		c := newClient(b, nc)
		if !b.track(c) {
			_ = nc.Close()
			continue
		}
		b.wg.Add(1)
		go b.open(c)
	}
}

// track records a new connection, unless the broker is stopping.
func (b *Broker) track(c *client) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.stopping {
		return false
	}
	b.conns[c] = struct{}{}
	return true
}

// register makes c the connected client of its id. A connection already
// using the id is closed, and its teardown (its will) waited for, so that
// what the new one publishes comes after.
func (b *Broker) register(c *client) {
	c.done = make(chan struct{})
	b.mu.Lock()
	old := b.clients[c.id]
	b.clients[c.id] = c
	b.mu.Unlock()
	b.connected.Add(1)
	if old == nil {
		return
	}
	old.closeFor("session taken over")
	select {
	case <-old.done:
	case <-time.After(b.opts.ConnectTimeout):
		b.log.Warn("session takeover: the old connection did not close in time", "client", c.id)
	}
}

// forget removes a closed connection; registered says whether it had
// been registered.
func (b *Broker) forget(c *client, registered bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.conns, c)
	if !registered {
		return
	}
	if b.clients[c.id] == c {
		delete(b.clients, c.id)
	}
	b.connected.Add(-1)
}

// isStopping reports whether Run is closing every connection.
func (b *Broker) isStopping() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.stopping
}

// DisconnectIdentity closes the connections of every client whose
// certificate names identity, as after `hub node revoke`: a revoked node
// loses its session at once instead of at its next reconnect. It returns
// how many it closed.
func (b *Broker) DisconnectIdentity(name string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, c := range b.clients {
		if c.identity.Name == name && c.closeFor("identity revoked") {
			n++
		}
	}
	return n
}
