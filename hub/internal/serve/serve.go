// Package serve runs the hub: it opens the store, starts the embedded broker
// (unless an external one is configured), connects the hub's MQTT session,
// and runs the controllers, dispatch, ingest and the HTTP API until its
// context ends. Wiring is plain code here and nowhere else.
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
	"sync"
	"syscall"
	"time"

	"github.com/flotilla-edge/flotilla/hub/internal/apiserver"
	"github.com/flotilla-edge/flotilla/hub/internal/broker"
	"github.com/flotilla-edge/flotilla/hub/internal/daemonset"
	"github.com/flotilla-edge/flotilla/hub/internal/deployment"
	"github.com/flotilla-edge/flotilla/hub/internal/desired"
	"github.com/flotilla-edge/flotilla/hub/internal/dispatch"
	"github.com/flotilla-edge/flotilla/hub/internal/ingest"
	"github.com/flotilla-edge/flotilla/hub/internal/lease"
	"github.com/flotilla-edge/flotilla/hub/internal/nodelifecycle"
	"github.com/flotilla-edge/flotilla/hub/internal/pki"
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
	// IngestRate and IngestBurst bound the messages per second one node
	// may send (defaults 1000 and 10,000); a node sending faster is held
	// back (its messages wait, and so does their acknowledgement), never
	// dropped.
	IngestRate, IngestBurst float64
}

// ingestGroup is the shared-subscription group of the hub's ingest.
const ingestGroup = "flotilla-hub"

// Run runs the hub until ctx ends.
func Run(ctx context.Context, cfg Config) error {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("create data dir %s: %w", cfg.DataDir, err)
	}
	codec, err := openSecretsCodec(cfg.DataDir)
	if err != nil {
		return err
	}
	creds, err := pki.Load(pki.Options{Dir: filepath.Join(cfg.DataDir, pkiDir), Hosts: cfg.TLSHosts, CACertFile: cfg.CACertFile, CAKeyFile: cfg.CAKeyFile})
	if err != nil {
		return err
	}
	signer, err := wire.NewSigner(creds.SigningKey)
	if err != nil {
		return err
	}
	// The API's hot kinds and the hub's per-node bookkeeping are held in
	// memory; events, tokens, credentials and Secrets are read from disk.
	indexed := append(slices.Clone(store.DefaultIndexedKinds), desired.Kind, lease.Kind)
	// One guard for both Badgers in the data directory, so each keeps
	// room for what the other holds (pkg/diskguard).
	guard := diskguard.New(0, filepath.Join(cfg.DataDir, "store"), filepath.Join(cfg.DataDir, "metrics"))
	st, err := store.OpenBadger(filepath.Join(cfg.DataDir, "store"), store.WithLogger(log), store.WithCodec(codec),
		store.WithIndexedKinds(indexed...), store.WithGuard(guard))
	if err != nil {
		return err
	}
	defer st.Close()
	authority, err := pki.NewAuthority(pki.AuthorityOptions{Store: st, Credentials: creds, ManualApproval: cfg.ManualApproval, Logger: log})
	if err != nil {
		return err
	}
	if err := ensureDefaultNamespace(st); err != nil {
		return err
	}
	// The revocation list as a CRL, for an external broker that cannot
	// ask the hub (Mosquitto's crlfile): written now, after every
	// revocation, and daily, well inside its validity, so that a copy
	// taken at any time is current.
	crlPath := filepath.Join(cfg.DataDir, pkiDir, pki.CRLFile)
	if err := authority.WriteCRL(crlPath); errors.Is(err, syscall.ENOSPC) {
		// A full disk must not keep the hub down: the file written before
		// (written whole or not at all) stays until the next write.
		log.Error("write the CRL: the disk is full; the previous one stays until the next revocation or daily write", "path", crlPath, "err", err)
	} else if err != nil {
		return err
	}
	tel, err := openTelemetry(cfg, log, guard)
	if err != nil {
		return err
	}
	defer tel.close()

	httpLn, err := net.Listen("tcp", cfg.HTTPListen)
	if err != nil {
		return fmt.Errorf("listen for HTTP on %s: %w", cfg.HTTPListen, err)
	}
	defer httpLn.Close()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	run := func(name string, f func(ctx context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(ctx); err != nil && !errors.Is(err, context.Canceled) {
				errs <- fmt.Errorf("%s: %w", name, err)
				cancel()
			}
		}()
	}
	defer wg.Wait()

	brokerURL := cfg.BrokerURL
	var embedded *broker.Broker
	if brokerURL == "" {
		bopts := broker.Options{Listen: cfg.MQTTListen, MaxPacketSize: wire.MaxPayload + 1024, Logger: log}
		if !cfg.Insecure {
			acl, err := broker.NewACL(broker.ACLOptions{HubIdentity: pki.HubIdentity, Checker: authority, Logger: log})
			if err != nil {
				return err
			}
			bopts.TLS, bopts.Auth = creds.MQTTServerTLS(), acl
		}
		b, err := broker.New(bopts)
		if err != nil {
			return err
		}
		embedded = b
		brokerURL = b.URL()
		run("broker", b.Run)
		log.Info("embedded MQTT broker listening", "addr", b.Addr(), "tls", !cfg.Insecure)
	}
	var hubTLS *tls.Config
	if u, err := url.Parse(brokerURL); err == nil && (u.Scheme == "ssl" || u.Scheme == "tls" || u.Scheme == "mqtts") {
		hubTLS = creds.HubClientTLS(u.Hostname())
	} else if !cfg.Insecure {
		return fmt.Errorf("broker %s is plaintext: use ssl://host:port, or --insecure", brokerURL)
	}
	limiter, err := ratelimit.New(ratelimit.Options{Rate: orDefault(cfg.IngestRate, 1000), Burst: orDefault(cfg.IngestBurst, 10000)})
	if err != nil {
		return fmt.Errorf("ingest rate limit: %w", err)
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
	var disp *dispatch.Dispatcher
	hostname, _ := os.Hostname()
	lifecycle := nodelifecycle.New(nodelifecycle.Options{Store: tel.store("nodelifecycle", st), Logger: log, Grace: cfg.NodeGrace, EventTTL: cfg.EventTTL})
	onConnect := func(context.Context) {
		lifecycle.BrokerConnected()
		disp.Republish()
	}
	var session hubSession
	if embedded != nil {
		session = embedded.Session(onConnect)
	} else {
		session = link.New(link.Options{
			Broker:    brokerURL,
			TLS:       hubTLS,
			ClientID:  fmt.Sprintf("flotilla-hub-%s-%d", hostname, os.Getpid()),
			Logger:    log.With("component", "link"),
			OnConnect: onConnect,
			// The hub hears no node while its own connection is down.
			OnDisconnect: func(error) { lifecycle.BrokerLost() },
		})
	}
	for _, kind := range []string{wire.TopicStatus, wire.TopicEvents} {
		session.Subscribe(wire.SharedTopic(ingestGroup, wire.AllNodesTopic(kind)), 1, tel.hub.Incoming(in.Handle))
	}
	// Online flags are retained: a plain subscription delivers the current
	// flag of every node when the hub (re)connects, which shared ones do not.
	session.Subscribe(wire.AllNodesTopic(wire.TopicOnline), 1, tel.hub.Incoming(in.Handle))
	tel.attach(session, in)
	askHello = helloAsker(tel.hub.Outgoing(session))
	disp = dispatch.New(dispatch.Options{Store: tel.store("dispatch", st), Publisher: tel.hub.Outgoing(session), Logger: log,
		Signer: signer, HashKey: dispatch.HashKeyFrom(creds.SigningKey.Seed())})

	run("link", session.Run)
	run("ingest", in.Run)
	run("dispatch", disp.Run)
	run("daemonset", daemonset.New(daemonset.Options{Store: tel.store("daemonset", st), Logger: log, OnSync: tel.hub.SyncObserver("daemonset")}).Run)
	run("deployment", deployment.New(deployment.Options{Store: tel.store("deployment", st), Logger: log, OnSync: tel.hub.SyncObserver("deployment")}).Run)
	run("nodelifecycle", lifecycle.Run)
	tel.start(run, st, in)
	run("store-gc", func(ctx context.Context) error { return st.RunGC(ctx, 10*time.Minute) })
	run("store-space", func(ctx context.Context) error { return st.RunSpaceCheck(ctx, 5*time.Second) })
	run("crl", func(ctx context.Context) error {
		t := time.NewTicker(24 * time.Hour)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-t.C:
				if err := authority.WriteCRL(crlPath); err != nil {
					log.Error("write the CRL", "path", crlPath, "err", err)
				}
			}
		}
	})

	var auth *authenticator
	if !cfg.Insecure {
		server := clientURL("https", httpLn.Addr().String())
		token, err := writeAdminConfig(cfg.DataDir, server, pki.EncodeCertificate(creds.CA.Cert.Raw))
		if err != nil {
			return err
		}
		auth = newAuthenticator(token)
		httpLn = tls.NewListener(httpLn, creds.HTTPServerTLS())
		log.Info("HTTPS API: clients authenticate with the administrator's token", "config", filepath.Join(cfg.DataDir, AdminConfigFile), "caFingerprint", creds.CA.Fingerprint())
	} else {
		log.Warn("--insecure: MQTT and HTTP are plaintext and unauthenticated")
	}
	onRevoke := func(node string) {
		if err := authority.WriteCRL(crlPath); err != nil {
			log.Error("node revoked, but the CRL was not written", "node", node, "path", crlPath, "err", err)
		}
		if embedded != nil {
			n := embedded.DisconnectIdentity(node)
			log.Info("node revoked; its connections closed", "node", node, "connections", n)
		} else {
			log.Info("node revoked: reload the external broker's CRL to refuse it", "node", node, "crl", crlPath)
		}
	}
	srv := &http.Server{
		Handler:           apiHandler(apiserver.New(st, log).WithTelemetry(tel.api()).Handler(), authority, onRevoke, auth),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		IdleTimeout:       120 * time.Second,
	}
	run("http", func(ctx context.Context) error {
		go func() {
			<-ctx.Done()
			shutdown, done := context.WithTimeout(context.Background(), 5*time.Second)
			defer done()
			_ = srv.Shutdown(shutdown)
		}()
		if err := srv.Serve(httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	log.Info("hub serving", "http", httpLn.Addr().String(), "broker", brokerURL, "data", cfg.DataDir)
	if cfg.Ready != nil {
		close(cfg.Ready)
	}

	<-ctx.Done()
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
		return nil
	}
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
