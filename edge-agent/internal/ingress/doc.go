// Package ingress serves the node's Ingresses: the HTTP and HTTPS
// reverse proxy of the nodes an IngressClass selects. From the newest
// persisted snapshot (its Ingresses, resolved by the hub, and the TLS
// Secrets they name) it builds an immutable routing table (Build: routes
// by host and path in Kubernetes' order of precedence, certificates by
// server name); from the node's merged view of its Services (the hub's
// endpoints, with the node's own pods as the agent sees them, so a local
// pod's readiness counts at once, online or cut off) the ready endpoints
// of each backend. The Proxy swaps both in atomically and hands each
// request to the standard library's reverse proxy; the Server keeps the
// HTTP and HTTPS ports open while the node serves anything.
package ingress
