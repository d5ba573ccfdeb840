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
// publish at QoS 1 or 2 closes the client's connection (MQTT 3.1.1 has no
// way to refuse one message), one at QoS 0 is dropped.
// docs/mosquitto/flotilla.acl states the same rules for Mosquitto.

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"slices"

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

// ACL is the broker's Auth: it authenticates clients by certificate and
// enforces per-node topic access.
type ACL struct {
	opts ACLOptions
	log  *slog.Logger
}

// NewACL returns the ACL; give it to the broker as Options.Auth.
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

// Authenticate admits the hub and nodes whose certificates are good,
// bound to their client id and with a will on their own topics. A
// client's identity is its verified certificate's common name.
func (h *ACL) Authenticate(c ConnectInfo) (Identity, error) {
	id, err := h.identify(c.TLS)
	if err == nil && !id.Hub {
		err = h.checkNode(id.Name, c)
	}
	if err != nil {
		h.log.Warn("client refused", "client", c.ClientID, "remote", c.Remote, "identity", id.Name, "err", err)
		return Identity{}, err
	}
	return id, nil
}

// identify returns who holds the connection's verified certificate, or
// an error saying why there is none.
func (h *ACL) identify(cs *tls.ConnectionState) (Identity, error) {
	if cs == nil {
		return Identity{}, errors.New("not a TLS connection")
	}
	if !cs.HandshakeComplete || len(cs.VerifiedChains) == 0 || len(cs.PeerCertificates) == 0 {
		return Identity{}, errors.New("no verified client certificate")
	}
	cn := cs.PeerCertificates[0].Subject.CommonName
	if cn == h.opts.HubIdentity {
		return Identity{Name: cn, Hub: true}, nil
	}
	if err := api.ValidateDNSSubdomain(cn); err != nil {
		return Identity{Name: cn}, fmt.Errorf("certificate name is not a node name: %v", err)
	}
	return Identity{Name: cn}, nil
}

func (h *ACL) checkNode(node string, c ConnectInfo) error {
	if h.opts.Checker != nil {
		if err := h.opts.Checker.CheckCertificate(c.TLS.PeerCertificates[0]); err != nil {
			return err
		}
	}
	if want := wire.AgentClientID(node); c.ClientID != want {
		return fmt.Errorf("node %s must connect with client id %q", node, want)
	}
	if c.WillTopic != "" && !NodeMayPublish(node, c.WillTopic) {
		return fmt.Errorf("node %s may not leave a will on %q", node, c.WillTopic)
	}
	return nil
}

// MayPublish allows the hub everything and a node its own topics.
func (h *ACL) MayPublish(id Identity, topic string) bool {
	ok := id.Hub || NodeMayPublish(id.Name, topic)
	if !ok {
		h.log.Debug("publish refused", "node", id.Name, "topic", topic)
	}
	return ok
}

// MaySubscribe allows the hub everything and a node its own topics; it
// is asked for every subscription and every delivery.
func (h *ACL) MaySubscribe(id Identity, filter string) bool {
	ok := id.Hub || NodeMaySubscribe(id.Name, filter)
	if !ok {
		h.log.Debug("subscription refused", "node", id.Name, "filter", filter)
	}
	return ok
}
