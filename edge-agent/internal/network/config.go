package network

import (
	"encoding/json"
	"fmt"
	"net/netip"
)

// The CNI network every pod joins: one bridge per node, host-local IPAM
// over the node's pod CIDR, portmap for hostPorts, loopback for lo.
const (
	// NetworkName names the CNI network (libcni's cache and host-local's
	// directory under IPAMDir are named after it).
	NetworkName = "flotilla"
	// BridgeName is the node's bridge; its address is the first of the pod
	// CIDR, the pods' gateway and DNS server.
	BridgeName = "flotilla0"
	// PodInterface is the pod's side of its veth pair.
	PodInterface = "eth0"
	// cniVersion is the spec version of the conflist: Debian 12's plugins
	// (1.1.1) speak up to 1.0.0.
	cniVersion = "1.0.0"
)

// confList is the conflist, as JSON types.
type confList struct {
	CNIVersion string `json:"cniVersion"`
	Name       string `json:"name"`
	Plugins    []any  `json:"plugins"`
}

type bridgeConf struct {
	Type        string `json:"type"`
	Bridge      string `json:"bridge"`
	IsGateway   bool   `json:"isGateway"`
	IPMasq      bool   `json:"ipMasq"`
	HairpinMode bool   `json:"hairpinMode"`
	// Capabilities: "ips" lets a rebuilt namespace ask host-local for
	// the address it had.
	Capabilities map[string]bool `json:"capabilities"`
	IPAM         ipamConf        `json:"ipam"`
}

type ipamConf struct {
	Type    string        `json:"type"`
	Ranges  [][]ipamRange `json:"ranges"`
	Routes  []ipamRoute   `json:"routes"`
	DataDir string        `json:"dataDir"`
}

type ipamRange struct {
	Subnet  string `json:"subnet"`
	Gateway string `json:"gateway"`
}

type ipamRoute struct {
	Dst string `json:"dst"`
}

type portmapConf struct {
	Type         string          `json:"type"`
	Capabilities map[string]bool `json:"capabilities"`
	SNAT         bool            `json:"snat"`
}

type loopbackConf struct {
	Type string `json:"type"`
}

// renderConfList returns the conflist for a node whose pods take their
// addresses from podCIDR, host-local keeping its allocations in ipamDir.
//
// The bridge's own ipMasq is off: it would masquerade everything but the
// node's own pod CIDR, so pods of two nodes of a site would see each
// other as their nodes. The package masquerades instead what leaves the
// cluster CIDR (masq.go).
func renderConfList(podCIDR netip.Prefix, ipamDir string) ([]byte, error) {
	if !podCIDR.Addr().Is4() || podCIDR.Bits() > 30 || podCIDR.Masked() != podCIDR {
		return nil, fmt.Errorf("pod CIDR %s: want an IPv4 network of at least 4 addresses, such as 10.42.0.0/24", podCIDR)
	}
	l := confList{
		CNIVersion: cniVersion,
		Name:       NetworkName,
		Plugins: []any{
			bridgeConf{
				Type: "bridge", Bridge: BridgeName, IsGateway: true, IPMasq: false, HairpinMode: true,
				Capabilities: map[string]bool{"ips": true},
				IPAM: ipamConf{
					Type:    "host-local",
					Ranges:  [][]ipamRange{{{Subnet: podCIDR.String(), Gateway: Gateway(podCIDR).String()}}},
					Routes:  []ipamRoute{{Dst: "0.0.0.0/0"}},
					DataDir: ipamDir,
				},
			},
			portmapConf{Type: "portmap", Capabilities: map[string]bool{"portMappings": true}, SNAT: true},
			loopbackConf{Type: "loopback"},
		},
	}
	b, err := json.MarshalIndent(l, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("render conflist: %w", err)
	}
	return append(b, '\n'), nil
}

// Gateway is the bridge's address in a pod CIDR: its first address, also
// the pods' DNS server.
func Gateway(podCIDR netip.Prefix) netip.Addr {
	return podCIDR.Masked().Addr().Next()
}
