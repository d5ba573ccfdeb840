package broker

// Access control of the embedded broker. Clients authenticate with their
// TLS client certificate, verified against the hub CA by the listener;
// the certificate's common name is the client's identity.
//
//   - The hub's own identity (pki.HubIdentity) may connect with any client
//     id and publish and subscribe everywhere.
//   - A node (any other common name, which must be a valid node name and
//     not revoked) must connect with its own client id
//     (wire.AgentClientID), with a last will, if any, on a topic it may
//     publish, and may only
//     subscribe to (and receive) flotilla/v1/nodes/{node}/desired and
//     …/requests, and
//     publish to flotilla/v1/nodes/{node}/status, …/metrics, …/events,
//     …/online and …/replies.
//   - Everything else is refused: other nodes' topics, wildcards, $SYS,
//     shared subscriptions, clients without a verified certificate.
//
// A refused subscription gets the failure code in its SUBACK; a refused
// publish at QoS 1 or 2 from an MQTT 3.1.1 client closes its connection,
// which is mochi's behaviour (3.1.1 has no way to refuse one message).
// docs/mosquitto/flotilla.acl states the same rules for Mosquitto.

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"slices"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/flotilla-edge/flotilla/pkg/api"
	"github.com/flotilla-edge/flotilla/pkg/wire"
)

// CertificateChecker refuses revoked client certificates;
// pki.Authority satisfies it.
type CertificateChecker interface {
	CheckCertificate(cert *x509.Certificate) error
}

// ACLOptions configure an ACL.
type ACLOptions struct {
	// HubIdentity is the common name allowed everything (pki.HubIdentity).
	HubIdentity string
	// Checker, if set, is asked about every node certificate at connect.
	Checker CertificateChecker
	Logger  *slog.Logger
}

// ACL is a mochi hook that authenticates clients by certificate and
// enforces per-node topic access.
type ACL struct {
	mqtt.HookBase
	opts ACLOptions
	log  *slog.Logger
}

// NewACL returns the hook; add it with Options.Auth.
func NewACL(opts ACLOptions) (*ACL, error) {
	if opts.HubIdentity == "" {
		return nil, errors.New("broker ACL: no hub identity")
	}
	if api.ValidateDNSSubdomain(opts.HubIdentity) == nil {
		return nil, fmt.Errorf("broker ACL: hub identity %q could be a node name", opts.HubIdentity)
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &ACL{opts: opts, log: opts.Logger.With("component", "broker-acl")}, nil
}

// ID names the hook.
func (h *ACL) ID() string { return "flotilla-acl" }

// Provides says which hook methods the ACL implements.
func (h *ACL) Provides(b byte) bool {
	return bytes.Contains([]byte{mqtt.OnConnectAuthenticate, mqtt.OnACLCheck}, []byte{b})
}

// Node topic kinds a node may publish and subscribe to.
var (
	nodePublishes  = []string{wire.TopicStatus, wire.TopicMetrics, wire.TopicEvents, wire.TopicOnline, wire.TopicReplies}
	nodeSubscribes = []string{wire.TopicDesired, wire.TopicRequests}
)

// NodeMayPublish reports whether node may publish to topic.
func NodeMayPublish(node, topic string) bool { return nodeTopicIn(node, topic, nodePublishes) }

// NodeMaySubscribe reports whether node may subscribe to filter and
// receive messages on it. Only its own topics, spelled out: a node name
// cannot hold a wildcard, so no filter with one ever matches.
func NodeMaySubscribe(node, filter string) bool { return nodeTopicIn(node, filter, nodeSubscribes) }

func nodeTopicIn(node, topic string, kinds []string) bool {
	n, kind, err := wire.ParseNodeTopic(topic)
	return err == nil && n == node && slices.Contains(kinds, kind)
}

// identity is who a client is: its verified certificate's common name.
type identity struct {
	name string
	cert *x509.Certificate
	hub  bool
}

// identify returns the client's identity, or an error saying why it has
// none.
func (h *ACL) identify(cl *mqtt.Client) (identity, error) {
	if cl.Net.Inline {
		return identity{name: "inline", hub: true}, nil
	}
	tc, ok := cl.Net.Conn.(*tls.Conn)
	if !ok {
		return identity{}, errors.New("not a TLS connection")
	}
	cs := tc.ConnectionState()
	if !cs.HandshakeComplete || len(cs.VerifiedChains) == 0 || len(cs.PeerCertificates) == 0 {
		return identity{}, errors.New("no verified client certificate")
	}
	cert := cs.PeerCertificates[0]
	cn := cert.Subject.CommonName
	if cn == h.opts.HubIdentity {
		return identity{name: cn, cert: cert, hub: true}, nil
	}
	if err := api.ValidateDNSSubdomain(cn); err != nil {
		return identity{}, fmt.Errorf("certificate name is not a node name: %v", err)
	}
	return identity{name: cn, cert: cert}, nil
}

// OnConnectAuthenticate admits the hub and nodes whose certificates are
// good, bound to their client id and with a will on their own topics.
func (h *ACL) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	id, err := h.identify(cl)
	if err == nil && !id.hub {
		err = h.checkNode(id, cl, pk)
	}
	if err != nil {
		h.log.Warn("client refused", "client", cl.ID, "remote", cl.Net.Remote, "identity", id.name, "err", err)
		return false
	}
	return true
}

func (h *ACL) checkNode(id identity, cl *mqtt.Client, pk packets.Packet) error {
	if h.opts.Checker != nil {
		if err := h.opts.Checker.CheckCertificate(id.cert); err != nil {
			return err
		}
	}
	if want := wire.AgentClientID(id.name); cl.ID != want {
		return fmt.Errorf("node %s must connect with client id %q", id.name, want)
	}
	if pk.Connect.WillFlag && !NodeMayPublish(id.name, pk.Connect.WillTopic) {
		return fmt.Errorf("node %s may not leave a will on %q", id.name, pk.Connect.WillTopic)
	}
	return nil
}

// OnACLCheck allows a node its own topics; it runs for every publish
// (write), every subscription and every delivery (read).
func (h *ACL) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	id, err := h.identify(cl)
	if err != nil {
		return false
	}
	if id.hub {
		return true
	}
	ok := NodeMaySubscribe(id.name, topic)
	if write {
		ok = NodeMayPublish(id.name, topic)
	}
	if !ok {
		h.log.Debug("access refused", "node", id.name, "topic", topic, "write", write)
	}
	return ok
}

// DisconnectIdentity closes the connections of every client whose
// certificate names identity, as after `hub node revoke`: a revoked node
// loses its session at once instead of at its next reconnect. It returns
// how many it closed.
func (b *Broker) DisconnectIdentity(name string) int {
	n := 0
	for _, cl := range b.srv.Clients.GetAll() {
		tc, ok := cl.Net.Conn.(*tls.Conn)
		if !ok || cl.Closed() {
			continue
		}
		cs := tc.ConnectionState()
		if len(cs.PeerCertificates) > 0 && cs.PeerCertificates[0].Subject.CommonName == name {
			_ = b.srv.DisconnectClient(cl, packets.ErrNotAuthorized)
			n++
		}
	}
	return n
}
