package dispatch

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/flotilla-edge/flotilla/hub/internal/ipam"
	"github.com/flotilla-edge/flotilla/hub/internal/store"
	"github.com/flotilla-edge/flotilla/pkg/api"
)

type nopPublisher struct{}

func (nopPublisher) Publish(context.Context, string, byte, bool, []byte) error { return nil }

// BenchmarkPassAllChanged is one dispatch pass after every node's pod
// changed (a DaemonSet update to the whole fleet): the cache updated,
// every snapshot built, hashed, numbered, stored and published (to a
// publisher that takes everything at once). Run with -benchtime 20x.
func BenchmarkPassAllChanged(b *testing.B) {
	for _, nodes := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("nodes=%d", nodes), func(b *testing.B) {
			d := New(Options{Store: store.NewMemory(), Publisher: nopPublisher{}})
			pods := make([]*api.Pod, nodes)
			for i := range pods {
				pods[i] = &api.Pod{
					TypeMeta:   api.TypeMeta{APIVersion: "v1", Kind: api.KindPod},
					ObjectMeta: api.ObjectMeta{Name: fmt.Sprintf("ds-%05d", i), Namespace: "default", UID: fmt.Sprintf("uid-%d", i), Labels: map[string]string{"app": "ds"}},
					Spec:       api.PodSpec{NodeName: fmt.Sprintf("n%05d", i), Containers: []api.Container{{Name: "c", Image: "reg/x:v0"}}},
				}
			}
			ctx := context.Background()
			b.ResetTimer()
			for n := range b.N {
				for _, p := range pods {
					next := *p
					next.Spec.Containers = []api.Container{{Name: "c", Image: fmt.Sprintf("reg/x:v%d", n+1)}}
					d.mu.Lock()
					d.setPod(store.KeyOf(&next), &next)
					d.mu.Unlock()
				}
				d.flush(ctx)
			}
		})
	}
}

// networkFleet stores a fleet of nodes in sites (zones) of siteSize,
// each with an address and a pod subnet, and services Services of
// endpoints pods each, the pods spread over the nodes at random (one
// fixed seed), each Service's Endpoints listing its pods, ready.
func networkFleet(b *testing.B, nodes, siteSize, services, endpoints int) store.Store {
	b.Helper()
	st := store.NewMemory()
	rng := rand.New(rand.NewPCG(1, 2))
	var objs []api.Object
	for i := range nodes {
		name := fmt.Sprintf("n%05d", i)
		objs = append(objs, &api.Node{
			TypeMeta:   api.TypeMeta{APIVersion: "v1", Kind: api.KindNode},
			ObjectMeta: api.ObjectMeta{Name: name, UID: "uid-" + name, Labels: map[string]string{LabelZone: fmt.Sprintf("site-%03d", i/siteSize)}},
			Spec:       api.NodeSpec{PodCIDR: fmt.Sprintf("10.42.%d.%d/26", i/4, i%4*64)},
			Status: api.NodeStatus{Online: true, Conditions: []api.NodeCondition{{Type: api.NodeReady, Status: api.ConditionTrue}},
				Addresses: []api.NodeAddress{{Type: "InternalIP", Address: fmt.Sprintf("192.168.%d.%d", i/250, i%250+1)}}},
		})
	}
	for s := range services {
		name := fmt.Sprintf("svc-%04d", s)
		objs = append(objs, &api.Service{
			TypeMeta:   api.TypeMeta{APIVersion: "v1", Kind: api.KindService},
			ObjectMeta: api.ObjectMeta{Namespace: "default", Name: name, UID: "uid-" + name},
			Spec: api.ServiceSpec{Type: api.ServiceTypeNodePort, ClusterIP: fmt.Sprintf("10.43.%d.%d", s/250, s%250+1),
				Selector: map[string]string{"app": name},
				Ports:    []api.ServicePort{{Name: "http", Protocol: api.ProtocolTCP, Port: 80, TargetPort: api.FromInt(8080), NodePort: int32(30000 + s)}}},
		})
		ep := &api.Endpoints{TypeMeta: api.TypeMeta{APIVersion: "v1", Kind: api.KindEndpoints},
			ObjectMeta: api.ObjectMeta{Namespace: "default", Name: name},
			Subsets:    []api.EndpointSubset{{Ports: []api.EndpointPort{{Name: "http", Port: 8080, Protocol: api.ProtocolTCP}}}}}
		for e := range endpoints {
			node := fmt.Sprintf("n%05d", rng.IntN(nodes))
			pod := fmt.Sprintf("%s-%d", name, e)
			objs = append(objs, &api.Pod{
				TypeMeta:   api.TypeMeta{APIVersion: "v1", Kind: api.KindPod},
				ObjectMeta: api.ObjectMeta{Name: pod, Namespace: "default", UID: "uid-" + pod, Labels: map[string]string{"app": name}},
				Spec:       api.PodSpec{NodeName: node, Containers: []api.Container{{Name: "c", Image: "reg/" + name + ":v1", Ports: []api.ContainerPort{{ContainerPort: 8080}}}}},
			})
			k := s*endpoints + e
			ep.Subsets[0].Addresses = append(ep.Subsets[0].Addresses, api.EndpointAddress{IP: fmt.Sprintf("10.44.%d.%d", k/250, k%250+1), NodeName: node,
				TargetRef: &api.ObjectReference{Kind: api.KindPod, Namespace: "default", Name: pod, UID: "uid-" + pod}})
		}
		objs = append(objs, ep)
	}
	for start := 0; start < len(objs); start += 500 {
		if err := st.Update(func(tx store.Tx) error {
			for _, o := range objs[start:min(start+500, len(objs))] {
				if err := tx.Put(o); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			b.Fatal(err)
		}
	}
	return st
}

// countingPublisher counts what it is sent.
type countingPublisher struct {
	mu           sync.Mutex
	sent, nbytes int
}

func (c *countingPublisher) Publish(_ context.Context, _ string, _ byte, _ bool, payload []byte) error {
	c.mu.Lock()
	c.sent++
	c.nbytes += len(payload)
	c.mu.Unlock()
	return nil
}

func (c *countingPublisher) take() (sent, bytes int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	sent, bytes = c.sent, c.nbytes
	c.sent, c.nbytes = 0, 0
	return sent, bytes
}

// BenchmarkPassNetwork is the cost of dispatch's passes with pod
// networking: 1,000 Services of 10 endpoints (and their 10,000 pods)
// over 1,000 nodes in 100 sites of 10, every snapshot carrying every
// Service with its site's endpoints. "all": the first pass of a new hub
// process with no records (every snapshot built, hashed, stored and
// published); "resync": the periodic resync with nothing changed (every
// node built and hashed, nothing sent); "endpoint": one endpoint turns
// not ready (its site's 10 nodes sent); "service": one Service's port
// changes (every node sent). Each reports the snapshots sent per pass and
// their mean size. Run with -benchtime 10x.
func BenchmarkPassNetwork(b *testing.B) {
	const nodes, siteSize, services, endpoints = 1000, 10, 1000, 10
	st := networkFleet(b, nodes, siteSize, services, endpoints)
	defer st.Close()
	ctx := context.Background()
	report := func(b *testing.B, pub *countingPublisher, passes int) {
		sent, bytes := pub.take()
		b.ReportMetric(float64(sent)/float64(passes), "snapshots/pass")
		if sent > 0 {
			b.ReportMetric(float64(bytes)/float64(sent), "bytes/snapshot")
		}
	}
	b.Run("all", func(b *testing.B) {
		pub := &countingPublisher{}
		for range b.N {
			b.StopTimer()
			fresh := networkFleet(b, nodes, siteSize, services, endpoints)
			d := New(Options{Store: fresh, Publisher: pub, Network: ipam.DefaultConfig()})
			b.StartTimer()
			if err := d.resync(); err != nil {
				b.Fatal(err)
			}
			d.flush(ctx)
			b.StopTimer()
			fresh.Close()
			b.StartTimer()
		}
		report(b, pub, b.N)
	})
	pub := &countingPublisher{}
	d := New(Options{Store: st, Publisher: pub, Network: ipam.DefaultConfig()})
	if err := d.resync(); err != nil {
		b.Fatal(err)
	}
	d.flush(ctx)
	pub.take()
	b.Run("resync", func(b *testing.B) {
		for range b.N {
			if err := d.resync(); err != nil {
				b.Fatal(err)
			}
			d.flush(ctx)
		}
		report(b, pub, b.N)
	})
	key := store.Key{Kind: api.KindEndpoints, Namespace: "default", Name: "svc-0042"}
	flips := 0 // across the runs of a sub-benchmark, so that each pass changes something
	b.Run("endpoint", func(b *testing.B) {
		for range b.N {
			n := flips
			flips++
			b.StopTimer()
			if err := st.Update(func(tx store.Tx) error {
				ep, err := store.Get[api.Endpoints](tx, key.Namespace, key.Name)
				if err != nil {
					return err
				}
				// The first address turns not ready, then ready again.
				s := &ep.Subsets[0]
				if n%2 == 0 {
					s.NotReadyAddresses, s.Addresses = s.Addresses[:1], s.Addresses[1:]
				} else {
					s.Addresses, s.NotReadyAddresses = append(slices.Clone(s.NotReadyAddresses), s.Addresses...), nil
				}
				return tx.Put(ep)
			}); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			d.handle(store.Event{Type: store.Put, Key: key})
			d.flush(ctx)
		}
		report(b, pub, b.N)
	})
	svcKey := store.Key{Kind: api.KindService, Namespace: "default", Name: "svc-0042"}
	ports := int32(80)
	b.Run("service", func(b *testing.B) {
		for range b.N {
			ports++
			b.StopTimer()
			if err := st.Update(func(tx store.Tx) error {
				svc, err := store.Get[api.Service](tx, svcKey.Namespace, svcKey.Name)
				if err != nil {
					return err
				}
				svc.Spec.Ports[0].Port = ports
				return tx.Put(svc)
			}); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			d.handle(store.Event{Type: store.Put, Key: svcKey})
			d.flush(ctx)
		}
		report(b, pub, b.N)
	})
}
