package broker

import "crypto/tls"

// Auth admits connections and checks what each may do (Options.Auth). The
// hub's is an *ACL.
type Auth interface {
	// Authenticate admits a client that sent CONNECT, saying who it is,
	// or returns why not (the client gets CONNACK "not authorised").
	Authenticate(c ConnectInfo) (Identity, error)
	// MayPublish reports whether the client may publish to topic; it is
	// asked for every PUBLISH.
	MayPublish(id Identity, topic string) bool
	// MaySubscribe reports whether the client may subscribe to filter,
	// and receive a message on a topic (asked with the topic before each
	// delivery).
	MaySubscribe(id Identity, filter string) bool
}

// ConnectInfo is what Auth knows of a connecting client.
type ConnectInfo struct {
	ClientID string
	Remote   string
	// TLS is the connection's TLS state after the handshake; nil for
	// plain TCP.
	TLS *tls.ConnectionState
	// WillTopic is the topic of the client's last will, "" if none.
	WillTopic string
}

// Identity is who a client is, as Auth says: the common name of its
// verified certificate, and whether it is the hub (allowed everything).
type Identity struct {
	Name string
	Hub  bool
}
