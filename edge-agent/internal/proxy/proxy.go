package proxy

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/flotilla-edge/flotilla/pkg/wire"
)

// ErrInvalid marks a Service or endpoint that Sync left out because it
// cannot be programmed (a bad address, protocol or port, or a clash with
// another Service). The rest of the table was programmed.
var ErrInvalid = errors.New("not programmed")

// socketBuffer bounds the netlink socket's buffers. A first Sync of a
// thousand Services is one batch of some 40,000 messages, each acked by
// the kernel before the batch returns; the default buffers (about 200 KiB)
// would refuse the batch or drop the acks. It is a bound, not an
// allocation.
const socketBuffer = 64 << 20

// Proxy programs the node's Service rules into the kernel's nftables
// table inet flotilla. It is safe for concurrent use; Syncs are applied
// one at a time.
type Proxy struct {
	cfg   Config
	log   *slog.Logger
	netns int

	mu    sync.Mutex
	conn  *nftables.Conn
	have  *state            // what the table holds; nil when it must be read back
	cache map[string]*built // each Service's part of have, by namespace/name
}

// Option changes how New builds a Proxy.
type Option func(*Proxy)

// WithNetNS programs the network namespace fd refers to instead of the
// caller's own (tests run a node in a namespace of its own).
func WithNetNS(fd int) Option { return func(p *Proxy) { p.netns = fd } }

// WithLogger sets the logger Sync reports its changes to (at debug).
func WithLogger(l *slog.Logger) Option { return func(p *Proxy) { p.log = l } }

// New checks cfg and returns a Proxy. It does not touch the kernel: the
// first Sync reads what the table holds (left by an earlier run of the
// agent, whose rules kept serving meanwhile) and changes only what differs.
func New(cfg Config, opts ...Option) (*Proxy, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg.NodeIPs = slices.Clone(cfg.NodeIPs)
	p := &Proxy{cfg: cfg, log: slog.Default()}
	for _, o := range opts {
		o(p)
	}
	return p, nil
}

// Sync makes the table match services: ClusterIP and NodePort traffic is
// translated to the ready endpoints. Only the chains, sets and map
// elements that differ from what the table holds change, in one atomic
// transaction, so connections already translated and unchanged Services
// are not disturbed. With no Service to program the table is deleted.
//
// If err wraps ErrInvalid, the table holds every other Service. Any other
// error means nothing changed; the next Sync reads the table back and
// tries again.
func (p *Proxy) Sync(services []wire.Service) (Summary, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	start := time.Now()
	want, cache, invalid := build(p.cfg, services, p.cache)
	if err := p.connect(); err != nil {
		return Summary{}, err
	}
	if p.have == nil {
		have, err := read(p.conn)
		if err != nil {
			p.reset()
			return Summary{}, fmt.Errorf("read table inet %s: %w", tableName, err)
		}
		p.have = have
	}
	pl := diff(p.have, want)
	if !pl.complete() {
		want, cache, invalid = build(p.cfg, services, nil)
		pl = diff(p.have, want)
	}
	if invalid != nil {
		invalid = fmt.Errorf("%w: %w", ErrInvalid, invalid)
	}
	sum := pl.summary()
	if sum.Empty() {
		p.cache = cache
		return sum, invalid
	}
	sets := make(map[string]setSpec, len(want.sets)+len(p.have.sets))
	for _, m := range []map[string]setSpec{p.have.sets, want.sets} {
		for k, v := range m {
			sets[k] = v
		}
	}
	if err := queue(p.conn, pl, sets); err != nil {
		p.reset()
		return Summary{}, fmt.Errorf("program table inet %s: %w", tableName, err)
	}
	if err := p.conn.Flush(); err != nil {
		p.reset()
		return Summary{}, fmt.Errorf("program table inet %s: %w", tableName, err)
	}
	p.have = want.forget()
	p.cache = cache
	p.log.Debug("service rules programmed", "services", len(services),
		"chainsAdded", sum.ChainsAdded, "chainsChanged", sum.ChainsChanged, "chainsRemoved", sum.ChainsRemoved,
		"elementsAdded", sum.ElementsAdded, "elementsRemoved", sum.ElementsRemoved,
		"tableCreated", sum.TableCreated, "tableDeleted", sum.TableDeleted,
		"took", time.Since(start))
	return sum, invalid
}

// Remove deletes the table inet flotilla, and nothing else: other tables
// (a firewall's, Docker's, iptables-nft's) are not touched.
func (p *Proxy) Remove() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.connect(); err != nil {
		return err
	}
	have, err := read(p.conn)
	if err != nil {
		p.reset()
		return fmt.Errorf("read table inet %s: %w", tableName, err)
	}
	if have.exists {
		p.conn.DelTable(table())
		if err := p.conn.Flush(); err != nil && !errors.Is(err, unix.ENOENT) {
			p.reset()
			return fmt.Errorf("delete table inet %s: %w", tableName, err)
		}
	}
	p.have, p.cache = newState(), nil
	return nil
}

// Close releases the netlink socket. The rules stay in the kernel and keep
// serving: a restarted agent takes them over with its first Sync.
func (p *Proxy) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.reset()
	return nil
}

func (p *Proxy) connect() error {
	if p.conn != nil {
		return nil
	}
	opts := []nftables.ConnOption{nftables.AsLasting(), nftables.WithSockOptions(bigBuffers)}
	if p.netns != 0 {
		opts = append(opts, nftables.WithNetNSFd(p.netns))
	}
	c, err := nftables.New(opts...)
	if err != nil {
		return fmt.Errorf("open nftables netlink socket: %w", err)
	}
	p.conn = c
	return nil
}

// reset drops the connection (a failed batch may leave replies unread in
// it) and what we believed the table holds.
func (p *Proxy) reset() {
	if p.conn != nil {
		_ = p.conn.CloseLasting()
	}
	// A part reused from the cache has no rules: it must match what
	// the table holds, which is known again only once read back.
	p.conn, p.have, p.cache = nil, nil, nil
}

func bigBuffers(c *netlink.Conn) error {
	raw, err := c.SyscallConn()
	if err != nil {
		return fmt.Errorf("netlink socket: %w", err)
	}
	var serr error
	err = raw.Control(func(fd uintptr) {
		for _, opt := range []int{unix.SO_SNDBUFFORCE, unix.SO_RCVBUFFORCE} {
			if e := unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, opt, socketBuffer); e != nil {
				serr = fmt.Errorf("netlink socket buffer: %w", e)
			}
		}
	})
	return errors.Join(err, serr)
}
