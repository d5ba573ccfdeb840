// Package serve runs the hub: it opens the store, starts the embedded broker
// (unless an external one is configured), connects the hub's MQTT session,
// and runs the controllers, dispatch, ingest and the HTTP API until its
// context ends. Wiring is plain code here and nowhere else. Everything
// that can fail is opened and built before anything runs; then every part
// runs in a goroutine of one errgroup, and Run returns when all have
// ended.
package serve

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/flotilla-edge/flotilla/hub/internal/apiserver"
	"github.com/flotilla-edge/flotilla/hub/internal/autoscaler"
	"github.com/flotilla-edge/flotilla/hub/internal/broker"
	"github.com/flotilla-edge/flotilla/hub/internal/daemonset"
	"github.com/flotilla-edge/flotilla/hub/internal/deployment"
	"github.com/flotilla-edge/flotilla/hub/internal/desired"
	"github.com/flotilla-edge/flotilla/hub/internal/dispatch"
	"github.com/flotilla-edge/flotilla/hub/internal/endpoints"
	"github.com/flotilla-edge/flotilla/hub/internal/ingest"
	"github.com/flotilla-edge/flotilla/hub/internal/ingress"
	"github.com/flotilla-edge/flotilla/hub/internal/ipam"
	"github.com/flotilla-edge/flotilla/hub/internal/lease"
	"github.com/flotilla-edge/flotilla/hub/internal/nodelifecycle"
	"github.com/flotilla-edge/flotilla/hub/internal/pki"
	"github.com/flotilla-edge/flotilla/hub/internal/podcidr"
	"github.com/flotilla-edge/flotilla/hub/internal/ratelimit"
	"github.com/flotilla-edge/flotilla/hub/internal/store"
	"github.com/flotilla-edge/flotilla/pkg/api"
	"github.com/flotilla-edge/flotilla/pkg/diskguard"
	"github.com/flotilla-edge/flotilla/pkg/link"
	"github.com/flotilla-edge/flotilla/pkg/wire"
)

// Config is the hub's configuration.
type Config struct {
	DataDir    string
	HTTPListen string
	// MQTTListen is the embedded broker's address; ignored with BrokerURL.
	MQTTListen string
	// BrokerURL selects an external broker instead of the embedded one.
	BrokerURL string
	// NodeGrace is how long a silent node stays Ready.
	NodeGrace time.Duration
	// EventTTL is how long events are kept.
	EventTTL time.Duration
	Logger   *slog.Logger
	// Ready, if set, is closed once the hub serves HTTP and MQTT.
	Ready chan<- struct{}
	// MetricsRetention is how long metric samples are kept (default 24 h).
	MetricsRetention time.Duration
	// MemoryPressureThreshold and DiskPressureThreshold are the percent
	// of memory and disk in use that set a node's pressure conditions
	// (default 90).
	MemoryPressureThreshold, DiskPressureThreshold float64

	// Insecure serves MQTT and HTTP in plaintext, without client
	// authentication or the broker's access control. Snapshots are
	// signed and Secrets sealed at rest either way.
	Insecure bool
	// TLSHosts are the server certificate's names (default
	// pki.DefaultHosts()).
	TLSHosts []string
	// CACertFile and CAKeyFile name an operator's CA to use.
	CACertFile, CAKeyFile string
	// ManualApproval makes every enrolment wait for an operator.
	ManualApproval bool
	// Network is the cluster's address plan (default
	// ipam.DefaultConfig()): pod subnets, Service addresses, node ports
	// and the cluster domain.
	Network ipam.Config
	// IngestRate and IngestBurst bound the messages per second one node
	// may send (defaults 1000 and 10,000); a node sending faster is held
	// back (its messages wait, and so does their acknowledgement), never
	// dropped.
	IngestRate, IngestBurst float64
	// AutoscalerPeriod is how often every HorizontalPodAutoscaler is
	// computed (default 15 s); AutoscalerCPUInitialization how long a
	// new pod's cpu samples are trusted only once it is Ready (5 min).
	AutoscalerPeriod, AutoscalerCPUInitialization time.Duration
}

// ingestGroup is the shared-subscription group of the hub's ingest.
const ingestGroup = "flotilla-hub"

// Run runs the hub until ctx ends, or until one of its parts fails (its
// error, named, is returned). Everything it started has ended when it
// returns, and the store is closed.
func Run(ctx context.Context, cfg Config) error {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	if !cfg.Network.ClusterCIDR.IsValid() {
		cfg.Network = ipam.DefaultConfig()
	}
	h, err := open(cfg, log)
	if err != nil {
		return err
	}
	defer h.close()
	httpLn, err := net.Listen("tcp", cfg.HTTPListen)
	if err != nil {
		return fmt.Errorf("listen for HTTP on %s: %w", cfg.HTTPListen, err)
	}
	defer httpLn.Close()
	w, err := h.wire(httpLn)
	if err != nil {
		return err
	}
	g, ctx := errgroup.WithContext(ctx)
	for _, c := range w.components {
		g.Go(func() error {
			if err := c.run(ctx); err != nil && !errors.Is(err, context.Canceled) {
				return fmt.Errorf("%s: %w", c.name, err)
			}
			return nil
		})
	}
	log.Info("hub serving", "http", w.httpAddr, "broker", w.brokerURL, "data", cfg.DataDir)
	if cfg.Ready != nil {
		close(cfg.Ready)
	}
	// Until ctx ends or a part fails: a part that ends on its own ends
	// nothing else.
	<-ctx.Done()
	return g.Wait()
}

// component is one part of the running hub.
type component struct {
	name string
	run  func(ctx context.Context) error
}

// hub is what Run opens before it wires anything: the hub's keys and
// certificates, its store and its telemetry.
type hub struct {
	cfg       Config
	log       *slog.Logger
	creds     *pki.Credentials
	signer    *wire.Signer
	st        *store.Badger
	authority *pki.Authority
	crlPath   string
	tel       *telemetry
}

// open opens what the hub keeps in its data directory, creating what is
// missing. On an error it closes what it opened.
func open(cfg Config, log *slog.Logger) (h *hub, err error) {
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir %s: %w", cfg.DataDir, err)
	}
	codec, err := openSecretsCodec(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	h = &hub{cfg: cfg, log: log, crlPath: filepath.Join(cfg.DataDir, pkiDir, pki.CRLFile)}
	h.creds, err = pki.Load(pki.Options{Dir: filepath.Join(cfg.DataDir, pkiDir), Hosts: cfg.TLSHosts, CACertFile: cfg.CACertFile, CAKeyFile: cfg.CAKeyFile})
	if err != nil {
		return nil, err
	}
	if h.signer, err = wire.NewSigner(h.creds.SigningKey); err != nil {
		return nil, err
	}
	// The API's hot kinds and the hub's per-node bookkeeping are held in
	// memory; events, tokens, credentials and Secrets are read from disk.
	indexed := append(slices.Clone(store.DefaultIndexedKinds), desired.Kind, lease.Kind, api.KindHorizontalPodAutoscaler)
	// One guard for both Badgers in the data directory, so each keeps
	// room for what the other holds (pkg/diskguard).
	guard := diskguard.New(0, filepath.Join(cfg.DataDir, "store"), filepath.Join(cfg.DataDir, "metrics"))
	h.st, err = store.OpenBadger(filepath.Join(cfg.DataDir, "store"), store.WithLogger(log), store.WithCodec(codec),
		store.WithIndexedKinds(indexed...), store.WithGuard(guard))
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			h.close()
		}
	}()
	if h.authority, err = pki.NewAuthority(pki.AuthorityOptions{Store: h.st, Credentials: h.creds, ManualApproval: cfg.ManualApproval, Logger: log}); err != nil {
		return nil, err
	}
	if err := ensureDefaultNamespace(h.st); err != nil {
		return nil, err
	}
	// The revocation list as a CRL, for an external broker that cannot
	// ask the hub (Mosquitto's crlfile): written now, after every
	// revocation, and daily, well inside its validity, so that a copy
	// taken at any time is current.
	if err := h.authority.WriteCRL(h.crlPath); errors.Is(err, syscall.ENOSPC) {
		// A full disk must not keep the hub down: the file written before
		// (written whole or not at all) stays until the next write.
		log.Error("write the CRL: the disk is full; the previous one stays until the next revocation or daily write", "path", h.crlPath, "err", err)
	} else if err != nil {
		return nil, err
	}
	if h.tel, err = openTelemetry(cfg, log, guard); err != nil {
		return nil, err
	}
	return h, nil
}

// close closes the telemetry store and the store, once nothing runs.
func (h *hub) close() {
	if h.tel != nil {
		if err := h.tel.close(); err != nil {
			h.log.Error("close the metrics store", "err", err)
		}
	}
	if err := h.st.Close(); err != nil {
		h.log.Error("close the store", "err", err)
	}
}

// wiring is the hub's parts, ready to run.
type wiring struct {
	components []component
	httpAddr   string
	brokerURL  string
}

// wire builds the hub's parts on what open opened, serving the API on
// httpLn. Everything that can fail is done before the embedded broker
// binds its port (the last step that can), so that an error leaves
// nothing open or running.
func (h *hub) wire(httpLn net.Listener) (*wiring, error) {
	cfg, log, st, tel := h.cfg, h.log, h.st, h.tel
	auth, httpLn, err := h.secureHTTP(httpLn)
	if err != nil {
		return nil, err
	}
	limiter, err := ratelimit.New(ratelimit.Options{Rate: orDefault(cfg.IngestRate, 1000), Burst: orDefault(cfg.IngestBurst, 10000)})
	if err != nil {
		return nil, fmt.Errorf("ingest rate limit: %w", err)
	}
	// A heartbeat rewrites a node's lastSeen at most this often; it must
	// stay well inside the grace period.
	seenResolution := 15 * time.Second
	if cfg.NodeGrace > 0 && cfg.NodeGrace/4 < seenResolution {
		seenResolution = cfg.NodeGrace / 4
	}
	// askHello is set once the hub's MQTT session exists, before ingest runs.
	var askHello func(ctx context.Context, node string) error
	in := ingest.New(ingest.Options{Store: tel.store("ingest", st), Logger: log, EventTTL: cfg.EventTTL, SeenResolution: seenResolution,
		Metrics: tel.fleet, OnFlush: tel.hub.ObserveFlush, Limiter: limiter, AskHello: func(ctx context.Context, node string) error { return askHello(ctx, node) }})
	lifecycle := nodelifecycle.New(nodelifecycle.Options{Store: tel.store("nodelifecycle", st), Logger: log, Grace: cfg.NodeGrace, EventTTL: cfg.EventTTL})
	var disp *dispatch.Dispatcher
	m, err := h.connect(func(context.Context) {
		lifecycle.BrokerConnected()
		disp.Republish()
	}, lifecycle.BrokerLost)
	if err != nil {
		return nil, err
	}
	session := m.session
	for _, kind := range []string{wire.TopicStatus, wire.TopicEvents} {
		session.Subscribe(wire.SharedTopic(ingestGroup, wire.AllNodesTopic(kind)), 1, tel.hub.Incoming(in.Handle))
	}
	// Online flags are retained: a plain subscription delivers the current
	// flag of every node when the hub (re)connects, which shared ones do not.
	session.Subscribe(wire.AllNodesTopic(wire.TopicOnline), 1, tel.hub.Incoming(in.Handle))
	tel.attach(session, in)
	askHello = helloAsker(tel.hub.Outgoing(session))
	disp = dispatch.New(dispatch.Options{Store: tel.store("dispatch", st), Publisher: tel.hub.Outgoing(session), Logger: log,
		Signer: h.signer, HashKey: dispatch.HashKeyFrom(h.creds.SigningKey.Seed()), Network: cfg.Network})

	w := &wiring{components: m.components, httpAddr: httpLn.Addr().String(), brokerURL: m.url}
	w.components = append(w.components,
		component{"link", session.Run},
		component{"ingest", in.Run},
		component{"dispatch", disp.Run},
		component{"daemonset", daemonset.New(daemonset.Options{Store: tel.store("daemonset", st), Logger: log, OnSync: tel.hub.SyncObserver("daemonset"), EventTTL: cfg.EventTTL}).Run},
		component{"deployment", deployment.New(deployment.Options{Store: tel.store("deployment", st), Logger: log, OnSync: tel.hub.SyncObserver("deployment")}).Run},
		component{"nodelifecycle", lifecycle.Run},
		component{"endpoints", endpoints.New(endpoints.Options{Store: tel.store("endpoints", st), Logger: log, OnSync: tel.hub.SyncObserver("endpoints")}).Run},
		component{"podcidr", podcidr.New(podcidr.Options{Store: tel.store("podcidr", st), Network: cfg.Network, Logger: log, EventTTL: cfg.EventTTL,
			OnSync: tel.hub.SyncObserver("podcidr")}).Run},
		component{"ingress", ingress.New(ingress.Options{Store: tel.store("ingress", st), Logger: log, EventTTL: cfg.EventTTL,
			OnSync: tel.hub.SyncObserver("ingress")}).Run},
		component{"autoscaler", autoscaler.New(autoscaler.Options{Store: tel.store("autoscaler", st), Samples: tel.fleet, Period: cfg.AutoscalerPeriod,
			CPUInitializationPeriod: cfg.AutoscalerCPUInitialization,
			EventTTL:                cfg.EventTTL, Logger: log, OnSync: tel.hub.SyncObserver("autoscaler")}).Run},
	)
	w.components = append(w.components, tel.components(st, in)...)
	apiSrv := apiserver.New(st, log).WithTelemetry(tel.api()).WithNetwork(cfg.Network)
	w.components = append(w.components,
		component{"store-gc", func(ctx context.Context) error { return st.RunGC(ctx, 10*time.Minute) }},
		component{"store-space", func(ctx context.Context) error { return st.RunSpaceCheck(ctx, 5*time.Second) }},
		component{"crl", h.writeCRLDaily},
		// The watch cache the API's watches are served from.
		component{"api-watch", apiSrv.Run},
		component{"http", h.httpServer(httpLn, apiSrv.Handler(), auth, m.embedded).run},
	)
	return w, nil
}

// secureHTTP, unless the hub is insecure, writes the operator's client
// file and returns the authenticator of its token and httpLn behind TLS.
func (h *hub) secureHTTP(httpLn net.Listener) (*authenticator, net.Listener, error) {
	if h.cfg.Insecure {
		h.log.Warn("--insecure: MQTT and HTTP are plaintext and unauthenticated")
		return nil, httpLn, nil
	}
	server := clientURL("https", httpLn.Addr().String())
	token, err := writeAdminConfig(h.cfg.DataDir, server, pki.EncodeCertificate(h.creds.CA.Cert.Raw))
	if err != nil {
		return nil, nil, err
	}
	h.log.Info("HTTPS API: clients authenticate with the administrator's token",
		"config", filepath.Join(h.cfg.DataDir, AdminConfigFile), "caFingerprint", h.creds.CA.Fingerprint())
	return newAuthenticator(token), tls.NewListener(httpLn, h.creds.HTTPServerTLS()), nil
}

// messaging is the hub's MQTT side: its session, the embedded broker
// (nil with an external one) and what runs it.
type messaging struct {
	session    hubSession
	embedded   *broker.Broker
	url        string
	components []component
}

// connect makes the hub's MQTT session: on the embedded broker, which it
// creates (binding its port), or on the external one of Config.BrokerURL.
func (h *hub) connect(onConnect func(context.Context), onLost func()) (*messaging, error) {
	cfg, log := h.cfg, h.log
	if cfg.BrokerURL != "" {
		u, err := url.Parse(cfg.BrokerURL)
		var hubTLS *tls.Config
		if err == nil && (u.Scheme == "ssl" || u.Scheme == "tls" || u.Scheme == "mqtts") {
			hubTLS = h.creds.HubClientTLS(u.Hostname())
		} else if !cfg.Insecure {
			return nil, fmt.Errorf("broker %s is plaintext: use ssl://host:port, or --insecure", cfg.BrokerURL)
		}
		hostname, _ := os.Hostname()
		return &messaging{url: cfg.BrokerURL, session: link.New(link.Options{
			Broker:    cfg.BrokerURL,
			TLS:       hubTLS,
			ClientID:  fmt.Sprintf("flotilla-hub-%s-%d", hostname, os.Getpid()),
			Logger:    log.With("component", "link"),
			OnConnect: onConnect,
			// The hub hears no node while its own connection is down.
			OnDisconnect: func(error) { onLost() },
		})}, nil
	}
	bopts := broker.Options{Listen: cfg.MQTTListen, MaxPacketSize: wire.MaxPayload + 1024, Logger: log}
	if !cfg.Insecure {
		acl, err := broker.NewACL(broker.ACLOptions{HubIdentity: pki.HubIdentity, Checker: h.authority, Logger: log})
		if err != nil {
			return nil, err
		}
		bopts.TLS, bopts.Auth = h.creds.MQTTServerTLS(), acl
	}
	b, err := broker.New(bopts)
	if err != nil {
		return nil, err
	}
	log.Info("embedded MQTT broker listening", "addr", b.Addr(), "tls", !cfg.Insecure)
	return &messaging{url: b.URL(), embedded: b, session: b.Session(onConnect), components: []component{{"broker", b.Run}}}, nil
}

// writeCRLDaily writes the CRL every day until ctx ends.
func (h *hub) writeCRLDaily(ctx context.Context) error {
	t := time.NewTicker(24 * time.Hour)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := h.authority.WriteCRL(h.crlPath); err != nil {
				h.log.Error("write the CRL", "path", h.crlPath, "err", err)
			}
		}
	}
}

// apiServer is the hub's HTTP API on its listener.
type apiServer struct {
	srv *http.Server
	ln  net.Listener
	log *slog.Logger
	// shutdownTimeout bounds the wait for requests in flight when the
	// hub stops; connections still busy then (a watch, a followed log)
	// are closed.
	shutdownTimeout time.Duration
}

// httpServer builds the HTTP API: the API server's handler, the PKI's endpoints and
// authentication (auth nil: none). A revoked node's CRL entry is written
// and, on the embedded broker (nil: external), its connections closed.
func (h *hub) httpServer(ln net.Listener, apiH http.Handler, auth *authenticator, embedded *broker.Broker) *apiServer {
	log := h.log
	onRevoke := func(node string) {
		if err := h.authority.WriteCRL(h.crlPath); err != nil {
			log.Error("node revoked, but the CRL was not written", "node", node, "path", h.crlPath, "err", err)
		}
		if embedded != nil {
			n := embedded.DisconnectIdentity(node)
			log.Info("node revoked; its connections closed", "node", node, "connections", n)
		} else {
			log.Info("node revoked: reload the external broker's CRL to refuse it", "node", node, "crl", h.crlPath)
		}
	}
	return &apiServer{ln: ln, log: log, shutdownTimeout: 5 * time.Second, srv: &http.Server{
		Handler:           apiHandler(apiH, h.authority, onRevoke, auth),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		IdleTimeout:       120 * time.Second,
	}}
}

// run serves until ctx ends, then shuts down: it returns once the
// server's listener and connections are closed.
func (a *apiServer) run(ctx context.Context) error {
	served := make(chan struct{})
	var g errgroup.Group
	g.Go(func() error {
		select {
		case <-served: // Serve failed: nothing to shut down
			return nil
		case <-ctx.Done():
		}
		shutdown, cancel := context.WithTimeout(context.Background(), a.shutdownTimeout)
		defer cancel()
		if err := a.srv.Shutdown(shutdown); err != nil {
			a.log.Warn("HTTP requests still in flight at shutdown; closing their connections", "after", a.shutdownTimeout, "err", err)
			return a.srv.Close()
		}
		return nil
	})
	err := a.srv.Serve(a.ln)
	close(served)
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	if werr := g.Wait(); err == nil && werr != nil {
		err = fmt.Errorf("close HTTP connections: %w", werr)
	}
	return err
}

// ensureDefaultNamespace creates "default" on first start.
func ensureDefaultNamespace(st store.Store) error {
	return st.Update(func(tx store.Tx) error {
		_, err := tx.Get(store.Key{Kind: api.KindNamespace, Name: api.DefaultNamespace})
		if err == nil || !store.IsNotFound(err) {
			return err
		}
		return tx.Put(&api.Namespace{
			TypeMeta: api.TypeMeta{APIVersion: "v1", Kind: api.KindNamespace},
			ObjectMeta: api.ObjectMeta{
				Name: api.DefaultNamespace, UID: api.NewUID(), CreationTimestamp: api.Now(),
				Labels: map[string]string{"kubernetes.io/metadata.name": api.DefaultNamespace},
			},
			Status: api.NamespaceStatus{Phase: "Active"},
		})
	})
}

func orDefault(v, def float64) float64 {
	if v > 0 {
		return v
	}
	return def
}
