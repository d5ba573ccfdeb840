package services

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/flotilla-edge/flotilla/edge-agent/internal/dns"
	"github.com/flotilla-edge/flotilla/edge-agent/internal/proxy"
	"github.com/flotilla-edge/flotilla/pkg/api"
	"github.com/flotilla-edge/flotilla/pkg/link"
	"github.com/flotilla-edge/flotilla/pkg/wire"
)

// Defaults of Config.
const (
	DefaultDebounce        = 20 * time.Millisecond
	DefaultResync          = 30 * time.Second
	DefaultFirstReportWait = 5 * time.Second
)

// Rules is the kernel's Service rules, as *proxy.Proxy provides them.
type Rules interface {
	Sync([]wire.Service) (proxy.Summary, error)
	Remove() error
	Close() error
}

// Resolver is the cluster DNS server, as *dns.Server provides it.
type Resolver interface {
	Update(domain string, services []wire.Service) error
	Listen() error
	Serve(ctx context.Context) error
}

// Backends make what a Programmer drives. A nil NewRules or NewDNS turns
// that part off (the agent's --service-proxy=false, --cluster-dns=false).
type Backends struct {
	// NewRules makes the node's Service rules for cfg (KernelRules).
	NewRules func(cfg proxy.Config) (Rules, error)
	// NewDNS makes the cluster DNS server that answers on addr, the
	// bridge address and port 53 (ClusterDNS).
	NewDNS func(addr string) (Resolver, error)
	// Prepare readies the node for the Service rules once its bridge
	// exists (PrepareNode); it returns an error wrapping ErrNoBridge
	// until then. nil: nothing to prepare.
	Prepare func(bridge netip.Addr, serviceCIDR netip.Prefix) error
}

// KernelRules makes the Service rules in the kernel's nftables table
// inet flotilla (proxy.New).
func KernelRules(log *slog.Logger) func(proxy.Config) (Rules, error) {
	return func(cfg proxy.Config) (Rules, error) {
		p, err := proxy.New(cfg, proxy.WithLogger(log))
		if err != nil {
			return nil, err
		}
		return p, nil
	}
}

// ClusterDNS makes the cluster DNS server (dns.New), forwarding other
// names to the resolvers of resolvConf ("/etc/resolv.conf").
func ClusterDNS(resolvConf string, log *slog.Logger) func(addr string) (Resolver, error) {
	return func(addr string) (Resolver, error) {
		s, err := dns.New(dns.Config{Addr: addr, ResolvConf: resolvConf, Logger: log})
		if err != nil {
			return nil, err
		}
		return s, nil
	}
}

// Config configures a Programmer.
type Config struct {
	// NodeName is this node's name: endpoints on it are its own.
	NodeName string
	// NodeIPs are the node's addresses NodePorts answer on.
	NodeIPs []netip.Addr
	// Snapshot reads the newest persisted snapshot.
	Snapshot func() (wire.Snapshot, error)
	Backends
	// Event reports what went wrong (or right again) as a node event.
	Event func(typ api.EventType, reason, message string)
	// Debounce is how long a change waits for the next before the rules
	// are programmed (DefaultDebounce); Resync how often they are
	// programmed anyway, read back from the kernel (DefaultResync).
	Debounce, Resync time.Duration
	// FirstReportWait is how long the first programming waits for the
	// first report of the node's pods (DefaultFirstReportWait): the rules
	// a previous run of the agent left serve meanwhile, rather than the
	// hub's view of this node's pods, which may be stale.
	FirstReportWait time.Duration
	// DNSPort is the cluster DNS server's port (53).
	DNSPort uint16
	Logger  *slog.Logger
}

// Event reasons.
const (
	ReasonNotProgrammed = "ServiceNotProgrammed" // a Service the rules leave out
	ReasonRulesFailed   = "ServiceRulesFailed"   // the rules could not be programmed at all
	ReasonRulesRestored = "ServiceRulesRestored" // the table was changed outside the agent
	ReasonDNSFailed     = "ClusterDNSFailed"     // a name the DNS server leaves out, or the server failed
	ReasonNetworkFailed = "ServiceNetworkFailed" // the node could not be prepared
	ReasonProgrammed    = "ServicesProgrammed"   // all is well again
)

// Programmer keeps the node's Services programmed: whenever the snapshot
// or the local pod state changes (a little later, to take changes that
// come together in one go), and every Resync. It runs in Run; the other
// methods may be called from any goroutine.
type Programmer struct {
	cfg Config
	log *slog.Logger

	mu     sync.Mutex
	report *wire.PodStatusReport
	gen    uint64        // generation of the inputs: bumped by every change
	done   uint64        // generation the last pass started from
	passed chan struct{} // closed (and replaced) when a pass ends
	wake   chan struct{}
}

// New returns a Programmer for cfg; Run runs it.
func New(cfg Config) (*Programmer, error) {
	if cfg.NodeName == "" {
		return nil, errors.New("services: node name is empty")
	}
	if cfg.Snapshot == nil {
		return nil, errors.New("services: no snapshot source")
	}
	if cfg.Debounce <= 0 {
		cfg.Debounce = DefaultDebounce
	}
	if cfg.Resync <= 0 {
		cfg.Resync = DefaultResync
	}
	if cfg.FirstReportWait <= 0 {
		cfg.FirstReportWait = DefaultFirstReportWait
	}
	if cfg.DNSPort == 0 {
		cfg.DNSPort = 53
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Event == nil {
		cfg.Event = func(api.EventType, string, string) {}
	}
	cfg.NodeIPs = slices.Clone(cfg.NodeIPs)
	return &Programmer{
		cfg: cfg, log: cfg.Logger.With("component", "services"),
		passed: make(chan struct{}), wake: make(chan struct{}, 1),
	}, nil
}

// Changed says the snapshot changed; it returns the generation of the
// inputs that includes the change, for Programmed.
func (p *Programmer) Changed() uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.bump()
}

// SetReport hands over the reconciler's newest pod status report; it
// returns the generation of the inputs that includes it, for Programmed.
func (p *Programmer) SetReport(r wire.PodStatusReport) uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.report = &r
	return p.bump()
}

// bump counts a change and wakes Run. The caller holds mu.
func (p *Programmer) bump() uint64 {
	p.gen++
	select {
	case p.wake <- struct{}{}:
	default:
	}
	return p.gen
}

// Programmed waits until a pass that saw the inputs of generation gen
// (or newer) has ended, or ctx ends: the changes up to gen are then in
// the rules and the DNS table, unless the pass reported that it could not
// put them there.
func (p *Programmer) Programmed(ctx context.Context, gen uint64) error {
	for {
		p.mu.Lock()
		done, passed := p.done, p.passed
		p.mu.Unlock()
		if done >= gen {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-passed:
		}
	}
}

// run is what one Run keeps between passes.
type run struct {
	rules    Rules
	rulesCfg proxy.Config
	// removed: the rules were removed for a snapshot without a network,
	// and need not be again until they are programmed.
	removed bool
	// applied is what the last pass programmed without a problem; a pass
	// that would program the same skips it, unless it is a resync.
	applied *applied

	dns        Resolver
	dnsAddr    string
	serving    bool
	stopServe  context.CancelFunc
	serveEnded chan error

	// problems are those the last pass reported, so a problem is
	// reported once, not at every pass, and its end is said once.
	problems map[string]bool
	// rulesNotes and dnsNotes are the problems of the last Sync and DNS
	// update (Services left out): they stand while a pass skips them.
	rulesNotes, dnsNotes map[string]bool
	// retry: something failed, or waits for the node (its bridge), and
	// is tried again soon; failed: the pass did not program everything
	// it could, so the next must not skip it.
	retry, failed bool
	attempt       int
}

type applied struct {
	network  wire.Network
	services []wire.Service
}

// Run programs the node's Services until ctx ends. Then it stops the DNS
// server (waiting for it) and lets go of the rules, which stay in the
// kernel and keep serving until the agent is back.
func (p *Programmer) Run(ctx context.Context) error {
	r := &run{problems: map[string]bool{}, serveEnded: make(chan error, 1)}
	defer func() {
		p.stopDNS(r)
		if r.rules != nil {
			_ = r.rules.Close()
		}
	}()
	resync := time.NewTicker(p.cfg.Resync)
	defer resync.Stop()
	firstReport := time.NewTimer(p.cfg.FirstReportWait)
	defer firstReport.Stop()
	waited := false
	var retry <-chan time.Time
	for {
		full := false
		select {
		case <-ctx.Done():
			return nil
		case <-p.wake:
			// A little later: a snapshot and the report that follows it,
			// or several pods turning Ready, go in one pass.
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(p.cfg.Debounce):
			}
		case <-resync.C:
			full = true
		case <-firstReport.C:
			waited = true
		case <-retry:
		case err := <-r.serveEnded:
			r.serving = false
			if ctx.Err() != nil {
				return nil // it stopped because Run is stopping
			}
			p.problem(r, ReasonDNSFailed, fmt.Sprintf("cluster DNS stopped answering: %v", err))
		}
		select {
		case <-p.wake: // taken by this pass
		default:
		}
		p.mu.Lock()
		gen, haveReport := p.gen, p.report != nil
		p.mu.Unlock()
		if !haveReport && !waited {
			continue
		}
		now := map[string]bool{}
		r.retry, r.failed = false, false
		p.pass(ctx, r, full, now)
		p.reportProblems(r, now)
		p.mu.Lock()
		p.done = gen
		close(p.passed)
		p.passed = make(chan struct{})
		p.mu.Unlock()
		retry = nil
		if r.retry {
			r.attempt++
			retry = time.After(link.Backoff(r.attempt, 250*time.Millisecond, 5*time.Second))
		} else {
			r.attempt = 0
		}
	}
}

// pass programs the newest snapshot and report once, noting each problem
// in problems.
func (p *Programmer) pass(ctx context.Context, r *run, full bool, problems map[string]bool) {
	snap, err := p.cfg.Snapshot()
	if err != nil {
		p.fail(r, problems, ReasonRulesFailed, fmt.Sprintf("read the desired snapshot: %v", err))
		return
	}
	if snap.Network == nil {
		p.teardown(r, problems)
		return
	}
	nw := *snap.Network
	podCIDR, err := netip.ParsePrefix(nw.PodCIDR)
	if err != nil || !podCIDR.Addr().Is4() {
		p.note(problems, ReasonRulesFailed, fmt.Sprintf("network.podCIDR %q: not an IPv4 prefix; Services left as they were", nw.PodCIDR))
		return
	}
	podCIDR = podCIDR.Masked()
	bridge := podCIDR.Addr().Next()
	p.mu.Lock()
	report := p.report
	p.mu.Unlock()
	services := Merge(p.cfg.NodeName, &snap, report)
	changed := r.applied == nil || !reflect.DeepEqual(r.applied.network, nw) || !reflect.DeepEqual(r.applied.services, services)

	if p.cfg.NewRules != nil {
		p.program(r, podCIDR, services, changed, full, problems)
		if p.cfg.Prepare != nil && (changed || full || r.attempt > 0) {
			p.prepare(r, bridge, nw.ServiceCIDR, problems)
		}
	}
	if p.cfg.NewDNS != nil {
		p.serveDNS(ctx, r, bridge, nw.ClusterDomain, services, changed || full, problems)
	}
	if r.failed {
		r.applied = nil
	} else {
		r.applied = &applied{network: nw, services: services}
	}
}

// program syncs the Service rules, made anew for a new pod CIDR, and on
// a resync (so that the first Sync reads the table back from the kernel
// and repairs what was changed behind the agent's back).
func (p *Programmer) program(r *run, podCIDR netip.Prefix, services []wire.Service, changed, full bool, problems map[string]bool) {
	cfg := proxy.Config{NodeName: p.cfg.NodeName, NodeIPs: p.cfg.NodeIPs, PodCIDR: podCIDR}
	if r.rules == nil || full || !reflect.DeepEqual(cfg, r.rulesCfg) {
		if r.rules != nil {
			_ = r.rules.Close()
			r.rules = nil
		}
		rules, err := p.cfg.NewRules(cfg)
		if err != nil {
			p.fail(r, problems, ReasonRulesFailed, fmt.Sprintf("service rules: %v", err))
			return
		}
		r.rules, r.rulesCfg = rules, cfg
	} else if !changed {
		copyKeys(problems, r.rulesNotes)
		return
	}
	start := time.Now()
	sum, err := r.rules.Sync(services)
	r.removed = false
	if err != nil && !errors.Is(err, proxy.ErrInvalid) {
		p.fail(r, problems, ReasonRulesFailed, fmt.Sprintf("program service rules: %v", err))
		return
	}
	r.rulesNotes = map[string]bool{}
	for _, leaf := range leaves(err) {
		if leaf != proxy.ErrInvalid {
			p.note(r.rulesNotes, ReasonNotProgrammed, "service rules: "+oneLine(leaf.Error()))
		}
	}
	copyKeys(problems, r.rulesNotes)
	if full && !changed && !sum.Empty() {
		p.log.Warn("service rules had been changed outside the agent; restored", "summary", fmt.Sprintf("%+v", sum))
		p.cfg.Event(api.EventWarning, ReasonRulesRestored,
			fmt.Sprintf("the nftables table inet flotilla had been changed outside the agent; restored (%+v)", sum))
	}
	p.log.Debug("service rules programmed", "services", len(services), "took", time.Since(start), "summary", fmt.Sprintf("%+v", sum))
}

// prepare readies the node once its bridge is there; until then it is
// tried again at every pass.
func (p *Programmer) prepare(r *run, bridge netip.Addr, serviceCIDR string, problems map[string]bool) {
	var svcCIDR netip.Prefix
	if serviceCIDR != "" {
		var err error
		if svcCIDR, err = netip.ParsePrefix(serviceCIDR); err != nil {
			p.note(problems, ReasonNetworkFailed, fmt.Sprintf("network.serviceCIDR %q: not a prefix; no route to the Services from the node itself", serviceCIDR))
			return
		}
		svcCIDR = svcCIDR.Masked()
	}
	err := p.cfg.Prepare(bridge, svcCIDR)
	switch {
	case errors.Is(err, ErrNoBridge):
		r.retry = true
		p.log.Debug("no pod bridge yet; preparing the node for Services later", "bridge", bridge)
	case err != nil:
		p.fail(r, problems, ReasonNetworkFailed, err.Error())
	}
}

// serveDNS updates the DNS table, and starts the server on the bridge
// address once the bridge holds it.
func (p *Programmer) serveDNS(ctx context.Context, r *run, bridge netip.Addr, domain string, services []wire.Service, changed bool, problems map[string]bool) {
	addr := net.JoinHostPort(bridge.String(), strconv.Itoa(int(p.cfg.DNSPort)))
	if r.dns != nil && r.dnsAddr != addr {
		p.stopDNS(r)
	}
	if r.dns == nil {
		srv, err := p.cfg.NewDNS(addr)
		if err != nil {
			p.fail(r, problems, ReasonDNSFailed, fmt.Sprintf("cluster DNS: %v", err))
			return
		}
		r.dns, r.dnsAddr, changed = srv, addr, true
	}
	if changed {
		// Update's error is "dns update: " and the names it left out.
		err := r.dns.Update(domain, services)
		if inner := errors.Unwrap(err); inner != nil {
			err = inner
		}
		r.dnsNotes = map[string]bool{}
		for _, leaf := range leaves(err) {
			p.note(r.dnsNotes, ReasonDNSFailed, "cluster DNS: "+oneLine(leaf.Error()))
		}
	}
	copyKeys(problems, r.dnsNotes)
	if r.serving {
		return
	}
	if err := r.dns.Listen(); err != nil {
		if errors.Is(err, syscall.EADDRNOTAVAIL) {
			// The bridge does not hold its address yet: the pod network
			// makes it with the first pod.
			r.retry = true
			p.log.Debug("no pod bridge yet; cluster DNS starts later", "addr", addr)
			return
		}
		p.fail(r, problems, ReasonDNSFailed, fmt.Sprintf("cluster DNS: %v", err))
		return
	}
	sctx, cancel := context.WithCancel(ctx)
	r.stopServe, r.serving = cancel, true
	srv := r.dns
	go func() {
		err := srv.Serve(sctx)
		if err == nil && sctx.Err() == nil {
			err = errors.New("stopped")
		}
		r.serveEnded <- err
	}()
	p.log.Info("cluster DNS started", "addr", addr)
}

// stopDNS stops the DNS server, if it runs, and waits for it.
func (p *Programmer) stopDNS(r *run) {
	if r.serving {
		r.stopServe()
		<-r.serveEnded
		r.serving = false
	}
	r.dns, r.dnsAddr = nil, ""
}

// teardown removes what a snapshot without a pod network does not want:
// the Service rules (once) and the DNS server.
func (p *Programmer) teardown(r *run, problems map[string]bool) {
	p.stopDNS(r)
	r.applied = nil
	if p.cfg.NewRules == nil || r.removed {
		return
	}
	rules := r.rules
	if rules == nil {
		var err error
		if rules, err = p.cfg.NewRules(proxy.Config{NodeName: p.cfg.NodeName, NodeIPs: p.cfg.NodeIPs}); err != nil {
			p.fail(r, problems, ReasonRulesFailed, fmt.Sprintf("service rules: %v", err))
			return
		}
	}
	err := rules.Remove()
	_ = rules.Close()
	r.rules = nil
	if err != nil {
		p.fail(r, problems, ReasonRulesFailed, fmt.Sprintf("remove service rules (the snapshot has no pod network): %v", err))
		return
	}
	r.removed = true
}

// note records a problem that stays until the snapshot changes (a
// Service that cannot be programmed).
func (p *Programmer) note(problems map[string]bool, reason, message string) {
	problems[reason+"\x00"+message] = true
}

// fail records a problem worth trying again soon (the kernel or a socket
// refused): the pass did not program what it could.
func (p *Programmer) fail(r *run, problems map[string]bool, reason, message string) {
	p.note(problems, reason, message)
	r.retry, r.failed = true, true
}

// problem reports a problem found outside a pass.
func (p *Programmer) problem(r *run, reason, message string) {
	key := reason + "\x00" + message
	if !r.problems[key] {
		r.problems[key] = true
		p.log.Warn(message, "reason", reason)
		p.cfg.Event(api.EventWarning, reason, message)
	}
}

// reportProblems reports the problems of a pass that the last did not
// have, and says so once all are gone.
func (p *Programmer) reportProblems(r *run, now map[string]bool) {
	keys := make([]string, 0, len(now))
	for k := range now {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if r.problems[k] {
			continue
		}
		reason, message, _ := strings.Cut(k, "\x00")
		p.log.Warn(message, "reason", reason)
		p.cfg.Event(api.EventWarning, reason, message)
	}
	if len(now) == 0 && len(r.problems) > 0 {
		p.log.Info("services programmed again")
		p.cfg.Event(api.EventNormal, ReasonProgrammed, "the node's Services are programmed again")
	}
	r.problems = now
}

// leaves are the errors err joins (errors.Join, fmt.Errorf with several
// %w), each a problem of its own; nil for nil.
func leaves(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, leaves(e)...)
		}
		return out
	}
	return []error{err}
}

func copyKeys(dst, src map[string]bool) {
	for k := range src {
		dst[k] = true
	}
}

func oneLine(s string) string { return strings.ReplaceAll(s, "\n", "; ") }
