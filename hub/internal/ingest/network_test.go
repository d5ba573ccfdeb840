package ingest

import (
	"fmt"
	"slices"
	"testing"

	"github.com/flotilla-edge/flotilla/hub/internal/store"
	"github.com/flotilla-edge/flotilla/pkg/api"
	"github.com/flotilla-edge/flotilla/pkg/wire"
)

// TestNodeAddressesFromTheHello: the agent's hello carries the node's
// addresses (InternalIP is what its site's peers route pod traffic to);
// they land on the Node, a changed one (a new DHCP lease) replaces them,
// and no hello takes away the pod subnet the hub gave the node.
func TestNodeAddressesFromTheHello(t *testing.T) {
	st := store.NewMemory()
	in := newIngest(st, &syncBuffer{})
	topic := wire.NodeTopic("n1", wire.TopicStatus)
	hello := wire.Hello{
		Labels:    map[string]string{"topology.kubernetes.io/zone": "plant-1"},
		Addresses: []api.NodeAddress{{Type: "InternalIP", Address: "192.168.7.10"}, {Type: "Hostname", Address: "board-1"}},
	}
	in.Handle(topic, msg(t, "n1", wire.TypeHello, 1, hello))
	in.Flush()
	n := getNode(t, st, "n1")
	if !slices.Equal(n.Status.Addresses, hello.Addresses) || n.Labels["topology.kubernetes.io/zone"] != "plant-1" {
		t.Fatalf("node addresses %v, labels %v", n.Status.Addresses, n.Labels)
	}

	// The pod CIDR controller gives the node its subnet.
	n.Spec.PodCIDR, n.Spec.PodCIDRs = "10.42.3.0/24", []string{"10.42.3.0/24"}
	if err := st.Update(func(tx store.Tx) error { return tx.Put(n) }); err != nil {
		t.Fatal(err)
	}
	hello.Addresses = []api.NodeAddress{{Type: "InternalIP", Address: "192.168.7.23"}, {Type: "Hostname", Address: "board-1"}}
	in.Handle(topic, msg(t, "n1", wire.TypeHello, 2, hello))
	in.Handle(topic, msg(t, "n1", wire.TypeHeartbeat, 3, wire.Heartbeat{}))
	in.Flush()
	n = getNode(t, st, "n1")
	if !slices.Equal(n.Status.Addresses, hello.Addresses) {
		t.Fatalf("addresses after a new hello %v, want %v", n.Status.Addresses, hello.Addresses)
	}
	if n.Spec.PodCIDR != "10.42.3.0/24" || !slices.Equal(n.Spec.PodCIDRs, []string{"10.42.3.0/24"}) {
		t.Fatalf("a hello changed the node's pod subnet: %+v", n.Spec)
	}
}

// TestPodAddressesLand: the pod's addresses the agent reports (podIP,
// podIPs, hostIP) are stored as reported; a heartbeat or a report of
// another pod leaves them; a later report replaces them (a pod whose
// network was set up again).
func TestPodAddressesLand(t *testing.T) {
	st := store.NewMemory()
	in := newIngest(st, &syncBuffer{})
	putPod(t, st)
	topic := wire.NodeTopic("n1", wire.TopicStatus)
	ready := []api.PodCondition{{Type: api.PodReady, Status: api.ConditionTrue}}
	report := func(seq uint64, pods ...wire.PodReport) {
		in.Handle(topic, msg(t, "n1", wire.TypePodStatus, seq, wire.PodStatusReport{ObservedRevision: 1, Pods: pods}))
		in.Flush()
	}
	addrs := func() string {
		s := getPod(t, st).Status
		var ips []string
		for _, ip := range s.PodIPs {
			ips = append(ips, ip.IP)
		}
		return fmt.Sprintf("%s %s %v", s.PodIP, s.HostIP, ips)
	}
	report(1, wire.PodReport{UID: "u1", Name: "p", Namespace: "default", Status: api.PodStatus{Phase: api.PodRunning, Conditions: ready,
		HostIP: "192.168.7.10", PodIP: "10.42.3.7", PodIPs: []api.PodIP{{IP: "10.42.3.7"}}}})
	if got, want := addrs(), "10.42.3.7 192.168.7.10 [10.42.3.7]"; got != want {
		t.Fatalf("pod addresses %q, want %q", got, want)
	}
	in.Handle(topic, msg(t, "n1", wire.TypeHeartbeat, 2, wire.Heartbeat{ObservedRevision: 1}))
	in.Flush()
	report(3, wire.PodReport{UID: "other", Name: "q", Namespace: "default", Status: api.PodStatus{Phase: api.PodRunning}})
	if got, want := addrs(), "10.42.3.7 192.168.7.10 [10.42.3.7]"; got != want {
		t.Fatalf("pod addresses after a heartbeat and another pod's report %q, want %q", got, want)
	}
	report(4, wire.PodReport{UID: "u1", Name: "p", Namespace: "default", Status: api.PodStatus{Phase: api.PodRunning, Conditions: ready,
		HostIP: "192.168.7.10", PodIP: "10.42.3.9", PodIPs: []api.PodIP{{IP: "10.42.3.9"}}}})
	if got, want := addrs(), "10.42.3.9 192.168.7.10 [10.42.3.9]"; got != want {
		t.Fatalf("pod addresses after a new report %q, want %q", got, want)
	}
}
