package apiserver

// Views: read-only resources of Kubernetes' API that the hub derives
// from what it stores, for the clients that read them. kubectl describe
// service lists a Service's EndpointSlices (not its Endpoints) and
// describe node reads the node's Lease; without them it would print a
// Service without endpoints, or an error. The views are listed and got,
// never written or watched.

import (
	"encoding/json"
	"net/http"
	"reflect"
	"strconv"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/flotilla-edge/flotilla/hub/internal/lease"
	"github.com/flotilla-edge/flotilla/hub/internal/store"
	"github.com/flotilla-edge/flotilla/pkg/api"
)

// view is one derived resource.
type view struct {
	servedResource
	// objects are the view's objects in namespace ("" for all), in
	// namespace and name order.
	objects func(tx store.Tx, namespace string) ([]api.Object, error)
}

// EndpointSlice is Kubernetes' discovery.k8s.io/v1 EndpointSlice, as the
// hub derives it from a Service's Endpoints: one slice per subset, named
// after the Service, labelled kubernetes.io/service-name.
type EndpointSlice struct {
	api.TypeMeta   `json:",inline"`
	api.ObjectMeta `json:"metadata"`
	AddressType    string                  `json:"addressType"`
	Endpoints      []EndpointSliceEndpoint `json:"endpoints"`
	Ports          []EndpointSlicePort     `json:"ports,omitempty"`
}

// EndpointSliceEndpoint is one pod's address in a slice.
type EndpointSliceEndpoint struct {
	Addresses  []string                `json:"addresses"`
	Conditions EndpointSliceConditions `json:"conditions"`
	Hostname   string                  `json:"hostname,omitempty"`
	NodeName   string                  `json:"nodeName,omitempty"`
	TargetRef  *api.ObjectReference    `json:"targetRef,omitempty"`
}

// EndpointSliceConditions say whether an endpoint takes traffic.
type EndpointSliceConditions struct {
	Ready       *bool `json:"ready,omitempty"`
	Serving     *bool `json:"serving,omitempty"`
	Terminating *bool `json:"terminating,omitempty"`
}

// EndpointSlicePort is one port of a slice's endpoints.
type EndpointSlicePort struct {
	Name     *string `json:"name,omitempty"`
	Port     *int32  `json:"port,omitempty"`
	Protocol *string `json:"protocol,omitempty"`
}

// Lease is Kubernetes' coordination.k8s.io/v1 Lease of a node (in the
// kube-node-lease namespace), from the hub's own record of when it last
// heard from the node.
type Lease struct {
	api.TypeMeta   `json:",inline"`
	api.ObjectMeta `json:"metadata"`
	Spec           LeaseSpec `json:"spec"`
}

// LeaseSpec names the lease's holder (the node) and when it renewed it.
type LeaseSpec struct {
	HolderIdentity string `json:"holderIdentity,omitempty"`
	// RenewTime is a MicroTime: RFC 3339 with microseconds.
	RenewTime string `json:"renewTime,omitempty"`
}

// Labels and namespaces of the views, Kubernetes' own.
const (
	labelServiceName   = "kubernetes.io/service-name"
	labelManagedBy     = "endpointslice.kubernetes.io/managed-by"
	managedByHub       = "flotilla.io/hub"
	namespaceNodeLease = "kube-node-lease"
)

func newViews() []view {
	return []view{
		{servedResource: servedResource{group: "discovery.k8s.io", version: "v1", resource: "endpointslices", singular: "endpointslice",
			kind: "EndpointSlice", namespaced: true, verbs: []string{"get", "list"}, typ: reflect.TypeFor[EndpointSlice]()},
			objects: endpointSlices},
		{servedResource: servedResource{group: "coordination.k8s.io", version: "v1", resource: "leases", singular: "lease",
			kind: "Lease", namespaced: true, verbs: []string{"get", "list"}, typ: reflect.TypeFor[Lease]()},
			objects: nodeLeases},
	}
}

// endpointSlices are the slices of the Endpoints in namespace.
func endpointSlices(tx store.Tx, namespace string) ([]api.Object, error) {
	eps, err := store.ListShared[api.Endpoints](tx, namespace)
	if err != nil {
		return nil, err
	}
	yes, no := true, false
	var out []api.Object
	for _, ep := range eps {
		for i, ss := range ep.Subsets {
			s := &EndpointSlice{
				TypeMeta: api.TypeMeta{APIVersion: "discovery.k8s.io/v1", Kind: "EndpointSlice"},
				ObjectMeta: api.ObjectMeta{Name: ep.Name, Namespace: ep.Namespace, UID: ep.UID, ResourceVersion: ep.ResourceVersion,
					CreationTimestamp: ep.CreationTimestamp, Labels: map[string]string{labelServiceName: ep.Name, labelManagedBy: managedByHub}},
				AddressType: "IPv4",
				Endpoints:   []EndpointSliceEndpoint{},
			}
			if i > 0 {
				s.Name += "-" + strconv.Itoa(i)
			}
			add := func(addrs []api.EndpointAddress, ready *bool) {
				for _, a := range addrs {
					s.Endpoints = append(s.Endpoints, EndpointSliceEndpoint{Addresses: []string{a.IP},
						Conditions: EndpointSliceConditions{Ready: ready, Serving: ready, Terminating: &no},
						Hostname:   a.Hostname, NodeName: a.NodeName, TargetRef: a.TargetRef})
				}
			}
			add(ss.Addresses, &yes)
			add(ss.NotReadyAddresses, &no)
			for _, p := range ss.Ports {
				name, port, proto := p.Name, p.Port, string(p.Protocol)
				s.Ports = append(s.Ports, EndpointSlicePort{Name: &name, Port: &port, Protocol: &proto})
			}
			out = append(out, s)
		}
	}
	return out, nil
}

// nodeLeases are every node's Lease, in kube-node-lease.
func nodeLeases(tx store.Tx, namespace string) ([]api.Object, error) {
	if namespace != "" && namespace != namespaceNodeLease {
		return nil, nil
	}
	nodes, err := store.ListShared[api.Node](tx, "")
	if err != nil {
		return nil, err
	}
	var out []api.Object
	for _, n := range nodes {
		l, err := store.GetShared[lease.Lease](tx, "", n.Name)
		if err != nil && !store.IsNotFound(err) {
			return nil, err
		}
		renew := ""
		if t := lease.LastSeen(n, l); !t.IsZero() {
			renew = t.UTC().Format(metav1.RFC3339Micro)
		}
		out = append(out, &Lease{
			TypeMeta:   api.TypeMeta{APIVersion: "coordination.k8s.io/v1", Kind: "Lease"},
			ObjectMeta: api.ObjectMeta{Name: n.Name, Namespace: namespaceNodeLease, UID: n.UID, ResourceVersion: n.ResourceVersion, CreationTimestamp: n.CreationTimestamp},
			Spec:       LeaseSpec{HolderIdentity: n.Name, RenewTime: renew},
		})
	}
	return out, nil
}

// registerViews adds the views' routes.
func (s *Server) registerViews(mux *http.ServeMux) {
	for _, v := range s.views {
		prefix := "/apis/" + v.group + "/" + v.version
		mux.HandleFunc("GET "+prefix+"/"+v.resource, s.handle(func(w http.ResponseWriter, r *http.Request) error {
			return s.listView(w, r, v, "")
		}))
		mux.HandleFunc("GET "+prefix+"/namespaces/{namespace}/"+v.resource, s.handle(func(w http.ResponseWriter, r *http.Request) error {
			return s.listView(w, r, v, r.PathValue("namespace"))
		}))
		mux.HandleFunc("GET "+prefix+"/namespaces/{namespace}/"+v.resource+"/{name}", s.handle(func(w http.ResponseWriter, r *http.Request) error {
			return s.getView(w, r, v, r.PathValue("namespace"), r.PathValue("name"))
		}))
	}
}

// kindInfo is what the list and table code needs of a view's kind.
func (v view) kindInfo() api.KindInfo {
	return api.KindInfo{Kind: v.kind, APIVersion: v.group + "/" + v.version, Resource: v.resource, Namespaced: v.namespaced,
		New: func() api.Object { return reflect.New(v.typ).Interface().(api.Object) }}
}

func (s *Server) readView(v view, namespace string) ([]listed, error) {
	var items []listed
	err := s.store.View(func(tx store.Tx) error {
		objs, err := v.objects(tx, namespace)
		if err != nil {
			return err
		}
		for _, o := range objs {
			b, err := json.Marshal(o)
			if err != nil {
				return err
			}
			items = append(items, listed{obj: o, raw: b})
		}
		return nil
	})
	return items, err
}

func (s *Server) listView(w http.ResponseWriter, r *http.Request, v view, namespace string) error {
	k := v.kindInfo()
	q, err := parseListQuery(r.URL.Query(), k)
	if err != nil {
		return err
	}
	if q.watch {
		return errorf(http.StatusMethodNotAllowed, api.ReasonMethodNotAllowed, "%s.%s are derived by the hub and cannot be watched", v.resource, v.group)
	}
	format, err := negotiate(r)
	if err != nil {
		return err
	}
	version := s.store.Version()
	items, err := s.readView(v, namespace)
	if err != nil {
		return err
	}
	kept := items[:0]
	for _, item := range items {
		if q.matches(item.obj) {
			kept = append(kept, item)
		}
	}
	meta := metav1.ListMeta{ResourceVersion: strconv.FormatUint(version, 10)}
	if format.table {
		return writeTable(w, k, format, meta, kept, s.now())
	}
	writeObjectList(w, k, meta, kept)
	return nil
}

func (s *Server) getView(w http.ResponseWriter, r *http.Request, v view, namespace, name string) error {
	format, err := negotiate(r)
	if err != nil {
		return err
	}
	items, err := s.readView(v, namespace)
	if err != nil {
		return err
	}
	for _, item := range items {
		if item.obj.GetObjectMeta().Name != name {
			continue
		}
		if format.table {
			return writeTable(w, v.kindInfo(), format, metav1.ListMeta{ResourceVersion: item.obj.GetObjectMeta().ResourceVersion}, []listed{item}, s.now())
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(append(item.raw, '\n'))
		return nil
	}
	return errorf(http.StatusNotFound, api.ReasonNotFound, "%s.%s %q not found", v.resource, v.group, name)
}
