package apiserver

// The API as Kubernetes clients use it, checked with client-go itself:
// discovery (aggregated and plain), lists in pages with selectors, the
// Table kubectl prints, and watches.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	kubediscovery "k8s.io/client-go/discovery"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	"github.com/flotilla-edge/flotilla/hub/internal/store"
	"github.com/flotilla-edge/flotilla/pkg/api"
)

// kubeServer is an API server on a memory store with its watch cache
// running, and a client-go config for it.
type kubeServer struct {
	srv *httptest.Server
	st  store.Store
	api *Server
	cfg *rest.Config
}

func newKubeServer(t *testing.T, configure func(*Server)) *kubeServer {
	t.Helper()
	st := store.NewMemory()
	if err := st.Update(func(tx store.Tx) error {
		return tx.Put(&api.Namespace{TypeMeta: api.TypeMeta{APIVersion: "v1", Kind: api.KindNamespace},
			ObjectMeta: api.ObjectMeta{Name: "default"}, Status: api.NamespaceStatus{Phase: "Active"}})
	}); err != nil {
		t.Fatal(err)
	}
	s := New(st, nil)
	if configure != nil {
		configure(s)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("watch cache: %v", err)
		}
		srv.Close()
	})
	return &kubeServer{srv: srv, st: st, api: s, cfg: &rest.Config{Host: srv.URL, Timeout: 10 * time.Second}}
}

// waitCacheCovers waits until the watch cache has taken in the store's
// changes and does (or, with covers false, no longer does) hold every
// change after version.
func (k *kubeServer) waitCacheCovers(t *testing.T, version string, covers bool) {
	t.Helper()
	var v uint64
	fmt.Sscan(version, &v)
	deadline := time.Now().Add(10 * time.Second)
	for {
		k.api.watches.mu.Lock()
		last, since := k.api.watches.last, k.api.watches.since
		k.api.watches.mu.Unlock()
		if last == k.st.Version() && (since <= v) == covers {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the watch cache is at %d (since %d), the store at %d", last, since, k.st.Version())
		}
		time.Sleep(time.Millisecond)
	}
}

func (k *kubeServer) clientset(t *testing.T) *kubernetes.Clientset {
	t.Helper()
	cs, err := kubernetes.NewForConfig(k.cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

func (k *kubeServer) put(t *testing.T, objs ...api.Object) {
	t.Helper()
	if err := k.st.Update(func(tx store.Tx) error {
		for _, o := range objs {
			if err := tx.Put(o); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

func (k *kubeServer) remove(t *testing.T, kind, namespace, name string) {
	t.Helper()
	if err := k.st.Update(func(tx store.Tx) error {
		return tx.Delete(store.Key{Kind: kind, Namespace: namespace, Name: name})
	}); err != nil {
		t.Fatal(err)
	}
}

func testPod(ns, name, node string, phase api.PodPhase, labels map[string]string) *api.Pod {
	p := &api.Pod{
		TypeMeta:   api.TypeMeta{APIVersion: "v1", Kind: api.KindPod},
		ObjectMeta: api.ObjectMeta{Namespace: ns, Name: name, Labels: labels, UID: "uid-" + name, CreationTimestamp: api.NewTime(time.Now().Add(-time.Hour))},
		Spec:       api.PodSpec{NodeName: node, Containers: []api.Container{{Name: "a", Image: "img:1"}, {Name: "b", Image: "img:2"}}},
		Status:     api.PodStatus{Phase: phase, PodIP: "10.42.0.7", PodIPs: []api.PodIP{{IP: "10.42.0.7"}}},
	}
	if phase == api.PodRunning {
		p.Status.ContainerStatuses = []api.ContainerStatus{
			{Name: "a", Ready: true, State: api.ContainerState{Running: &api.ContainerStateRunning{}}, RestartCount: 2},
			{Name: "b", State: api.ContainerState{Waiting: &api.ContainerStateWaiting{Reason: "CrashLoopBackOff"}}},
		}
	}
	return p
}

func TestDiscoveryAggregatedAndPlainAgree(t *testing.T) {
	k := newKubeServer(t, nil)
	resources := func(legacy bool) map[string]metav1.APIResource {
		t.Helper()
		dc, err := kubediscovery.NewDiscoveryClientForConfig(k.cfg)
		if err != nil {
			t.Fatal(err)
		}
		dc.UseLegacyDiscovery = legacy
		_, lists, err := dc.ServerGroupsAndResources()
		if err != nil {
			t.Fatalf("legacy %v: %v", legacy, err)
		}
		out := map[string]metav1.APIResource{}
		for _, l := range lists {
			for _, r := range l.APIResources {
				slices.Sort(r.Verbs)
				r.Group, r.Version, r.StorageVersionHash = "", "", ""
				out[l.GroupVersion+" "+r.Name] = r
			}
		}
		return out
	}
	aggregated, plain := resources(false), resources(true)
	if len(aggregated) != len(plain) {
		t.Errorf("aggregated discovery lists %d resources, plain %d", len(aggregated), len(plain))
	}
	for name, a := range aggregated {
		p, ok := plain[name]
		switch {
		case !ok:
			t.Errorf("%s: in aggregated discovery only", name)
		case a.Kind != p.Kind || a.Namespaced != p.Namespaced || !slices.Equal(a.Verbs, p.Verbs) || !slices.Equal(a.ShortNames, p.ShortNames) ||
			!slices.Equal(a.Categories, p.Categories):
			t.Errorf("%s: aggregated %+v, plain %+v", name, a, p)
		}
	}
	// Every kind of the table is there, with its scope and short names.
	for _, kind := range api.Kinds() {
		r, ok := aggregated[kind.APIVersion+" "+kind.Resource]
		if !ok {
			t.Errorf("%s (%s) is not discovered", kind.Resource, kind.APIVersion)
			continue
		}
		if r.Kind != kind.Kind || r.Namespaced != kind.Namespaced || !slices.Equal(r.ShortNames, kind.ShortNames) ||
			!slices.Contains(r.Verbs, "watch") || slices.Contains(r.Verbs, "patch") != kind.Writable {
			t.Errorf("%s: discovered as %+v", kind.Resource, r)
		}
	}
	for _, want := range []string{"v1 pods/log", "metrics.k8s.io/v1beta1 nodes", "metrics.k8s.io/v1beta1 pods"} {
		if _, ok := aggregated[want]; !ok {
			t.Errorf("%s is not discovered", want)
		}
	}
	if c := aggregated["v1 pods"].Categories; !slices.Equal(c, []string{"all"}) {
		t.Errorf("pods are in categories %v, want [all]", c)
	}
}

func TestDiscoveryListedSubresourcesAnswer(t *testing.T) {
	k := newKubeServer(t, nil)
	k.put(t, testPod("default", "p", "n1", api.PodRunning, nil))
	for _, gv := range k.api.discovery.versions {
		for _, r := range gv.resources {
			for _, sub := range r.subresources {
				path := "/api/" + gv.String()
				if gv.group != "" {
					path = "/apis/" + gv.String()
				}
				if r.namespaced {
					path += "/namespaces/default"
				}
				path += "/" + r.resource + "/some/" + sub.name
				code, body := call(t, k.srv, http.MethodGet, path, "")
				if code == http.StatusNotFound && strings.Contains(string(body), "path") || code == http.StatusMethodNotAllowed {
					t.Errorf("%s/%s is discovered but GET %s answers %d %s", r.resource, sub.name, path, code, body)
				}
			}
		}
	}
}

func TestVersionAndUnknownGroups(t *testing.T) {
	k := newKubeServer(t, nil)
	dc, err := kubediscovery.NewDiscoveryClientForConfig(k.cfg)
	if err != nil {
		t.Fatal(err)
	}
	v, err := dc.ServerVersion()
	if err != nil {
		t.Fatal(err)
	}
	if v.Major != "1" || v.Minor != KubernetesMinor {
		t.Errorf("version %+v, want 1.%s", v, KubernetesMinor)
	}
	if _, err := dc.ServerResourcesForGroupVersion("batch/v1"); !apierrors.IsNotFound(err) {
		t.Errorf("batch/v1: %v, want NotFound", err)
	}
	code, body := call(t, k.srv, http.MethodGet, "/apis/apps", "")
	var g metav1.APIGroup
	if code != 200 || json.Unmarshal(body, &g) != nil || g.Name != "apps" || g.PreferredVersion.GroupVersion != "apps/v1" {
		t.Errorf("/apis/apps: %d %s", code, body)
	}
}

func TestNegotiateDiscovery(t *testing.T) {
	for _, c := range []struct {
		accept, want string
		err          bool
	}{
		{"", "", false},
		{"application/json", "", false},
		{"*/*", "", false},
		{kubediscovery.AcceptV2 + "," + kubediscovery.AcceptV2Beta1 + ",application/json", "v2", false},
		{kubediscovery.AcceptV2Beta1 + ",application/json", "v2beta1", false},
		{"application/json;g=apidiscovery.k8s.io;v=v3;as=APIGroupDiscoveryList,application/json", "", false},
		{"application/json;g=apidiscovery.k8s.io;v=v3;as=APIGroupDiscoveryList", "", true},
		{"application/vnd.kubernetes.protobuf", "", true},
	} {
		got, err := negotiateDiscovery(c.accept)
		if got != c.want || (err != nil) != c.err {
			t.Errorf("Accept %q: %q, %v; want %q (error %v)", c.accept, got, err, c.want, c.err)
		}
	}
}

func TestListPagesAndSelectors(t *testing.T) {
	k := newKubeServer(t, nil)
	ctx := context.Background()
	var pods []api.Object
	for i := range 25 {
		ns, node, phase := "default", "n1", api.PodRunning
		if i%2 == 1 {
			ns, node = "team", "n2"
		}
		if i%5 == 0 {
			phase = api.PodPending
		}
		pods = append(pods, testPod(ns, fmt.Sprintf("p%02d", i), node, phase, map[string]string{"app": fmt.Sprint("a", i%3)}))
	}
	k.put(t, pods...)
	cs := k.clientset(t)

	var names []string
	opts := metav1.ListOptions{Limit: 10}
	pages := 0
	var listVersion string
	for {
		list, err := cs.CoreV1().Pods("").List(ctx, opts)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		if listVersion == "" {
			listVersion = list.ResourceVersion
		} else if list.ResourceVersion != listVersion {
			t.Errorf("page %d at version %s, the first at %s", pages, list.ResourceVersion, listVersion)
		}
		for _, p := range list.Items {
			names = append(names, p.Namespace+"/"+p.Name)
		}
		if list.Continue == "" {
			break
		}
		if list.RemainingItemCount == nil || int(*list.RemainingItemCount) != 25-len(names) {
			t.Errorf("page %d: remainingItemCount %v, want %d", pages, list.RemainingItemCount, 25-len(names))
		}
		opts.Continue = list.Continue
	}
	if pages != 3 || len(names) != 25 || !slices.IsSorted(names) || len(slices.Compact(slices.Clone(names))) != 25 {
		t.Errorf("%d pages of %d pods: %v", pages, len(names), names)
	}

	count := func(ns string, o metav1.ListOptions) int {
		t.Helper()
		list, err := cs.CoreV1().Pods(ns).List(ctx, o)
		if err != nil {
			t.Fatalf("list %+v: %v", o, err)
		}
		return len(list.Items)
	}
	for _, c := range []struct {
		ns   string
		opts metav1.ListOptions
		want int
	}{
		{"", metav1.ListOptions{FieldSelector: "spec.nodeName=n2"}, 12},
		{"team", metav1.ListOptions{}, 12},
		{"", metav1.ListOptions{FieldSelector: "status.phase!=Running"}, 5},
		{"", metav1.ListOptions{FieldSelector: "spec.nodeName=n1,status.phase=Running"}, 10},
		{"", metav1.ListOptions{FieldSelector: "metadata.name=p03"}, 1},
		{"", metav1.ListOptions{LabelSelector: "app=a1"}, 8},
		{"", metav1.ListOptions{LabelSelector: "app in (a0,a2)", FieldSelector: "metadata.namespace=default"}, 9},
		// Filtered pages: no empty last page.
		{"", metav1.ListOptions{LabelSelector: "app=a1", Limit: 4}, 4},
	} {
		if got := count(c.ns, c.opts); got != c.want {
			t.Errorf("pods in %q with %+v: %d, want %d", c.ns, c.opts, got, c.want)
		}
	}
	_, err := cs.CoreV1().Pods("").List(ctx, metav1.ListOptions{FieldSelector: "spec.schedulerName=x"})
	if !apierrors.IsBadRequest(err) || !strings.Contains(err.Error(), "field label not supported: spec.schedulerName") {
		t.Errorf("unsupported field: %v", err)
	}
	_, err = cs.CoreV1().Pods("").List(ctx, metav1.ListOptions{Continue: "bm90IGEgdG9rZW4"})
	if !apierrors.IsBadRequest(err) {
		t.Errorf("bad continue token: %v", err)
	}
	// A version from the future, or an exact past one, is not served.
	_, err = cs.CoreV1().Pods("").List(ctx, metav1.ListOptions{ResourceVersion: "999999"})
	if !apierrors.IsResourceExpired(err) && !apierrors.IsGone(err) {
		t.Errorf("list at a future version: %v", err)
	}
	_, err = cs.CoreV1().Pods("").List(ctx, metav1.ListOptions{ResourceVersion: "1", ResourceVersionMatch: metav1.ResourceVersionMatchExact})
	if !apierrors.IsResourceExpired(err) && !apierrors.IsGone(err) {
		t.Errorf("list at an exact past version: %v", err)
	}
	// Events of one object, as kubectl describe asks for them.
	ev := &api.Event{TypeMeta: api.TypeMeta{APIVersion: "v1", Kind: api.KindEvent}, ObjectMeta: api.ObjectMeta{Namespace: "default", Name: "p00.1"},
		InvolvedObject: api.ObjectReference{Kind: "Pod", Namespace: "default", Name: "p00", UID: "uid-p00"}, Reason: "Started", Type: api.EventNormal}
	k.put(t, ev)
	evs, err := cs.CoreV1().Events("default").List(ctx, metav1.ListOptions{
		FieldSelector: "involvedObject.name=p00,involvedObject.namespace=default,involvedObject.kind=Pod,involvedObject.uid=uid-p00"})
	if err != nil || len(evs.Items) != 1 || evs.Items[0].Reason != "Started" {
		t.Errorf("events of p00: %v %+v", err, evs)
	}
}

func TestTypedGetDecodes(t *testing.T) {
	k := newKubeServer(t, nil)
	k.put(t, testPod("default", "web", "n1", api.PodRunning, map[string]string{"app": "web"}))
	p, err := k.clientset(t).CoreV1().Pods("default").Get(context.Background(), "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Spec.NodeName != "n1" || p.Status.ContainerStatuses[0].RestartCount != 2 || p.Labels["app"] != "web" {
		t.Errorf("got %+v", p)
	}
	_, err = k.clientset(t).CoreV1().Pods("default").Get(context.Background(), "nope", metav1.GetOptions{})
	if !apierrors.IsNotFound(err) {
		t.Errorf("missing pod: %v", err)
	}
}

// table asks for path as kubectl get does.
func table(t *testing.T, k *kubeServer, path string) *metav1.Table {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, k.srv.URL+path, nil)
	req.Header.Set("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tab metav1.Table
	if err := json.NewDecoder(resp.Body).Decode(&tab); err != nil || tab.Kind != "Table" {
		t.Fatalf("%s: %d, %v %+v", path, resp.StatusCode, err, tab)
	}
	return &tab
}

func columnNames(tab *metav1.Table) []string {
	var out []string
	for _, c := range tab.ColumnDefinitions {
		name := c.Name
		if c.Priority > 0 {
			name += "*"
		}
		out = append(out, name)
	}
	return out
}

func TestTables(t *testing.T) {
	k := newKubeServer(t, nil)
	replicas := int32(3)
	k.put(t,
		testPod("default", "web", "n1", api.PodRunning, map[string]string{"app": "web"}),
		&api.Node{TypeMeta: api.TypeMeta{APIVersion: "v1", Kind: api.KindNode}, ObjectMeta: api.ObjectMeta{Name: "n1",
			Labels: map[string]string{"node-role.kubernetes.io/edge": ""}},
			Spec: api.NodeSpec{Unschedulable: true},
			Status: api.NodeStatus{Conditions: []api.NodeCondition{{Type: api.NodeReady, Status: api.ConditionTrue}},
				Addresses: []api.NodeAddress{{Type: "InternalIP", Address: "192.168.1.5"}},
				NodeInfo:  api.NodeSystemInfo{AgentVersion: "v0.9.0", OSImage: "Debian"}}},
		&api.Deployment{TypeMeta: api.TypeMeta{APIVersion: "apps/v1", Kind: api.KindDeployment}, ObjectMeta: api.ObjectMeta{Namespace: "default", Name: "web"},
			Spec: api.DeploymentSpec{Replicas: &replicas, Selector: &api.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
				Template: api.PodTemplateSpec{Spec: api.PodSpec{Containers: []api.Container{{Name: "c", Image: "web:1"}}}}},
			Status: api.DeploymentStatus{ReadyReplicas: 2, UpdatedReplicas: 3, AvailableReplicas: 2}},
		&api.Service{TypeMeta: api.TypeMeta{APIVersion: "v1", Kind: api.KindService}, ObjectMeta: api.ObjectMeta{Namespace: "default", Name: "web"},
			Spec: api.ServiceSpec{Type: api.ServiceTypeNodePort, ClusterIP: "10.43.0.10", ClusterIPs: []string{"10.43.0.10"},
				Selector: map[string]string{"app": "web"}, Ports: []api.ServicePort{{Port: 80, NodePort: 30080, Protocol: "TCP"}}}},
	)
	for _, c := range []struct {
		path    string
		columns string
		cells   string
	}{
		{"/api/v1/namespaces/default/pods", "Name Ready Status Restarts Age IP* Node* Nominated Node* Readiness Gates*",
			"web 1/2 CrashLoopBackOff 2 60m 10.42.0.7 n1 <none> <none>"},
		{"/api/v1/nodes", "Name Status Roles Age Version Internal-IP* External-IP* OS-Image* Kernel-Version* Container-Runtime*",
			"n1 Ready,SchedulingDisabled edge <unknown> v0.9.0 192.168.1.5 <none> Debian <unknown> <unknown>"},
		{"/apis/apps/v1/namespaces/default/deployments", "Name Ready Up-to-date Available Age Containers* Images* Selector*",
			"web 2/3 3 2 <unknown> c web:1 app=web"},
		{"/api/v1/namespaces/default/services/web", "Name Type Cluster-IP External-IP Port(s) Age Selector*",
			"web NodePort 10.43.0.10 <none> 80:30080/TCP <unknown> app=web"},
	} {
		tab := table(t, k, c.path)
		if got := strings.Join(columnNames(tab), " "); got != c.columns {
			t.Errorf("%s: columns %q, want %q", c.path, got, c.columns)
		}
		if len(tab.Rows) != 1 {
			t.Errorf("%s: %d rows", c.path, len(tab.Rows))
			continue
		}
		var cells []string
		for _, cell := range tab.Rows[0].Cells {
			cells = append(cells, fmt.Sprint(cell))
		}
		if got := strings.Join(cells, " "); got != c.cells {
			t.Errorf("%s: cells %q, want %q", c.path, got, c.cells)
		}
		var meta metav1.PartialObjectMetadata
		if err := json.Unmarshal(tab.Rows[0].Object.Raw, &meta); err != nil || meta.Kind != "PartialObjectMetadata" || meta.Name == "" {
			t.Errorf("%s: row object %s (%v)", c.path, tab.Rows[0].Object.Raw, err)
		}
	}
	// includeObject=Object carries the whole object (kubectl --sort-by).
	tab := table(t, k, "/api/v1/pods?includeObject=Object")
	var p corev1.Pod
	if err := json.Unmarshal(tab.Rows[0].Object.Raw, &p); err != nil || p.Spec.NodeName != "n1" {
		t.Errorf("row object %s (%v)", tab.Rows[0].Object.Raw, err)
	}
}

func TestWatchFromAListedVersion(t *testing.T) {
	k := newKubeServer(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cs := k.clientset(t)
	k.put(t, testPod("default", "a", "n1", api.PodRunning, map[string]string{"app": "x"}))
	list, err := cs.CoreV1().Pods("default").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Changes between the list and the watch are replayed from the cache.
	b := testPod("default", "b", "n1", api.PodPending, map[string]string{"app": "x"})
	k.put(t, b)
	w, err := cs.CoreV1().Pods("default").Watch(ctx, metav1.ListOptions{ResourceVersion: list.ResourceVersion, LabelSelector: "app=x"})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	b.Status.Phase = api.PodRunning
	k.put(t, b)
	b.Labels = map[string]string{"app": "y"} // leaves the selection
	k.put(t, b)
	k.put(t, testPod("other", "c", "n1", api.PodRunning, map[string]string{"app": "x"})) // another namespace
	k.remove(t, api.KindPod, "default", "a")
	want := []string{"ADDED b Pending", "MODIFIED b Running", "DELETED b Running", "DELETED a Running"}
	var got []string
	var last uint64
	for range want {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok {
				t.Fatalf("watch closed after %v", got)
			}
			p, isPod := ev.Object.(*corev1.Pod)
			if !isPod {
				t.Fatalf("event %s of %T: %+v", ev.Type, ev.Object, ev.Object)
			}
			got = append(got, fmt.Sprintf("%s %s %s", ev.Type, p.Name, p.Status.Phase))
			var v uint64
			fmt.Sscan(p.ResourceVersion, &v)
			if v <= last {
				t.Errorf("event %s %s at version %d after %d", ev.Type, p.Name, v, last)
			}
			last = v
		case <-ctx.Done():
			t.Fatalf("events %v, want %v", got, want)
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("events %v, want %v", got, want)
	}
}

func TestWatchInitialEventsAndBookmarks(t *testing.T) {
	k := newKubeServer(t, func(s *Server) { s.bookmarkInterval = 50 * time.Millisecond })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	k.put(t, testPod("default", "a", "n1", api.PodRunning, nil), testPod("default", "b", "n1", api.PodRunning, nil))
	send := true
	w, err := k.clientset(t).CoreV1().Pods("").Watch(ctx, metav1.ListOptions{
		SendInitialEvents: &send, AllowWatchBookmarks: true, ResourceVersionMatch: metav1.ResourceVersionMatchNotOlderThan})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	var added []string
	for ev := range w.ResultChan() {
		p := ev.Object.(*corev1.Pod)
		if ev.Type == watch.Added {
			added = append(added, p.Name)
			continue
		}
		if ev.Type != watch.Bookmark || p.Annotations[initialEventsEnd] != "true" {
			t.Fatalf("after %v: %s %+v, want the bookmark ending the initial events", added, ev.Type, p.ObjectMeta)
		}
		break
	}
	if !slices.Equal(added, []string{"a", "b"}) {
		t.Errorf("initial events %v", added)
	}
	// A change the watch does not see (a node) still moves the version
	// the bookmarks carry, so that a watcher resumes after it.
	k.put(t, testPod("default", "c", "n1", api.PodRunning, nil))
	k.put(t, &api.Node{TypeMeta: api.TypeMeta{APIVersion: "v1", Kind: api.KindNode}, ObjectMeta: api.ObjectMeta{Name: "n1"}})
	want := fmt.Sprint(k.st.Version())
	sawC := false
	for ev := range w.ResultChan() {
		p := ev.Object.(*corev1.Pod)
		if ev.Type == watch.Added && p.Name == "c" {
			sawC = true
			continue
		}
		if ev.Type == watch.Bookmark && sawC && p.ResourceVersion == want {
			return
		}
		if ev.Type != watch.Bookmark {
			t.Fatalf("unexpected %s %s", ev.Type, p.Name)
		}
	}
	t.Fatalf("watch ended without a bookmark at version %s after the change", want)
}

func TestWatchTooOldIsGone(t *testing.T) {
	k := newKubeServer(t, func(s *Server) { s.watches.capacity = 4 })
	cs := k.clientset(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	list, err := cs.CoreV1().Pods("").List(ctx, metav1.ListOptions{Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 6 {
		k.put(t, testPod("default", fmt.Sprint("p", i), "n1", api.PodRunning, nil))
	}
	k.waitCacheCovers(t, list.ResourceVersion, false)
	w, err := cs.CoreV1().Pods("").Watch(ctx, metav1.ListOptions{ResourceVersion: list.ResourceVersion})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	ev := <-w.ResultChan()
	st, ok := ev.Object.(*metav1.Status)
	if ev.Type != watch.Error || !ok || st.Code != http.StatusGone || st.Reason != metav1.StatusReasonExpired {
		t.Fatalf("watch from an old version: %s %+v", ev.Type, ev.Object)
	}
	// So is a list page whose first page the cache no longer covers.
	k.put(t, testPod("default", "z", "n1", api.PodRunning, nil))
	first, err := cs.CoreV1().Pods("").List(ctx, metav1.ListOptions{Limit: 2})
	if err != nil || first.Continue == "" {
		t.Fatal(first, err)
	}
	for i := range 6 {
		k.put(t, testPod("default", fmt.Sprint("q", i), "n1", api.PodRunning, nil))
	}
	k.waitCacheCovers(t, first.ResourceVersion, false)
	if _, err := cs.CoreV1().Pods("").List(ctx, metav1.ListOptions{Limit: 2, Continue: first.Continue}); !apierrors.IsResourceExpired(err) {
		t.Errorf("continue past the cache: %v", err)
	}
}

func TestWatchTable(t *testing.T) {
	k := newKubeServer(t, nil)
	k.put(t, testPod("default", "a", "n1", api.PodRunning, nil))
	req, _ := http.NewRequest(http.MethodGet, k.srv.URL+"/api/v1/namespaces/default/pods?watch=1", nil)
	req.Header.Set("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io,application/json")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	next := func() (string, *metav1.Table) {
		t.Helper()
		var ev struct {
			Type   string
			Object metav1.Table
		}
		if err := dec.Decode(&ev); err != nil {
			t.Fatal(err)
		}
		return ev.Type, &ev.Object
	}
	typ, tab := next()
	if typ != "ADDED" || len(tab.ColumnDefinitions) == 0 || len(tab.Rows) != 1 || tab.Rows[0].Cells[0] != "a" {
		t.Fatalf("first event %s %+v", typ, tab)
	}
	k.put(t, testPod("default", "b", "n1", api.PodPending, nil))
	typ, tab = next()
	if typ != "ADDED" || len(tab.ColumnDefinitions) != 0 || tab.Rows[0].Cells[0] != "b" || tab.Rows[0].Cells[2] != "Pending" {
		t.Fatalf("second event %s %+v (column definitions come with the first only)", typ, tab)
	}
}

func TestInformerSyncsAndFollows(t *testing.T) {
	k := newKubeServer(t, nil)
	k.put(t, testPod("default", "a", "n1", api.PodRunning, nil))
	factory := informers.NewSharedInformerFactory(k.clientset(t), 0)
	defer factory.Shutdown() // after cancel: it waits for the informers to stop
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	pods := factory.Core().V1().Pods()
	seen := make(chan string, 16)
	if _, err := pods.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		UpdateFunc: func(_, obj any) {
			seen <- "update " + obj.(*corev1.Pod).Name + " " + string(obj.(*corev1.Pod).Status.Phase)
		},
		DeleteFunc: func(obj any) { seen <- "delete " + obj.(*corev1.Pod).Name },
	}); err != nil {
		t.Fatal(err)
	}
	factory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), pods.Informer().HasSynced) {
		t.Fatal("the informer did not sync")
	}
	if p, err := pods.Lister().Pods("default").Get("a"); err != nil || p.Spec.NodeName != "n1" {
		t.Fatalf("lister: %v %v", p, err)
	}
	a := testPod("default", "a", "n1", api.PodFailed, nil)
	k.put(t, a)
	k.remove(t, api.KindPod, "default", "a")
	for _, want := range []string{"update a Failed", "delete a"} {
		select {
		case got := <-seen:
			if got != want {
				t.Errorf("got %q, want %q", got, want)
			}
		case <-ctx.Done():
			t.Fatalf("no %q", want)
		}
	}
}

func TestViews(t *testing.T) {
	k := newKubeServer(t, nil)
	ref := &api.ObjectReference{Kind: "Pod", Namespace: "default", Name: "web-1"}
	k.put(t,
		&api.Endpoints{TypeMeta: api.TypeMeta{APIVersion: "v1", Kind: api.KindEndpoints}, ObjectMeta: api.ObjectMeta{Namespace: "default", Name: "web"},
			Subsets: []api.EndpointSubset{{
				Addresses:         []api.EndpointAddress{{IP: "10.42.0.5", NodeName: "n1", TargetRef: ref}},
				NotReadyAddresses: []api.EndpointAddress{{IP: "10.42.0.6", NodeName: "n1"}},
				Ports:             []api.EndpointPort{{Name: "http", Port: 8080, Protocol: "TCP"}},
			}}},
		&api.Node{TypeMeta: api.TypeMeta{APIVersion: "v1", Kind: api.KindNode}, ObjectMeta: api.ObjectMeta{Name: "n1"},
			Status: api.NodeStatus{LastSeen: api.NewTime(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))}},
	)
	ctx := context.Background()
	cs := k.clientset(t)
	// As kubectl describe service asks for a Service's slices.
	slices, err := cs.DiscoveryV1().EndpointSlices("default").List(ctx, metav1.ListOptions{LabelSelector: "kubernetes.io/service-name=web"})
	if err != nil || len(slices.Items) != 1 {
		t.Fatalf("endpointslices of web: %v %+v", err, slices)
	}
	s := slices.Items[0]
	if len(s.Endpoints) != 2 || s.Endpoints[0].Addresses[0] != "10.42.0.5" || !*s.Endpoints[0].Conditions.Ready || *s.Endpoints[1].Conditions.Ready ||
		*s.Ports[0].Port != 8080 || *s.Ports[0].Name != "http" || s.Endpoints[0].TargetRef.Name != "web-1" {
		t.Errorf("slice %+v", s)
	}
	if l, err := cs.DiscoveryV1().EndpointSlices("default").List(ctx, metav1.ListOptions{LabelSelector: "kubernetes.io/service-name=other"}); err != nil || len(l.Items) != 0 {
		t.Errorf("slices of another service: %v %+v", err, l)
	}
	// As kubectl describe node asks for the node's lease.
	l, err := cs.CoordinationV1().Leases("kube-node-lease").Get(ctx, "n1", metav1.GetOptions{})
	if err != nil || *l.Spec.HolderIdentity != "n1" || !l.Spec.RenewTime.Equal(&metav1.MicroTime{Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}) {
		t.Errorf("lease of n1: %v %+v", err, l)
	}
	if _, err := cs.CoordinationV1().Leases("kube-node-lease").Get(ctx, "n2", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("lease of a node the hub does not know: %v", err)
	}
	if _, err := cs.DiscoveryV1().EndpointSlices("default").Watch(ctx, metav1.ListOptions{}); !apierrors.IsMethodNotSupported(err) {
		t.Errorf("a watch of a view: %v", err)
	}
}

// TestWatchOutlivesTheServerReadTimeout: the hub's HTTP server has a read
// timeout (60 s); a watch must not be cut when it passes.
func TestWatchOutlivesTheServerReadTimeout(t *testing.T) {
	st := store.NewMemory()
	s := New(st, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() { cancel(); <-done }()
	srv := httptest.NewUnstartedServer(s.Handler())
	srv.Config.ReadTimeout = 200 * time.Millisecond
	srv.Start()
	defer srv.Close()
	cs := kubernetes.NewForConfigOrDie(&rest.Config{Host: srv.URL})
	wctx, wcancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer wcancel()
	w, err := cs.CoreV1().Pods("").Watch(wctx, metav1.ListOptions{ResourceVersion: "0"})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	time.Sleep(600 * time.Millisecond) // past the read timeout: what is measured
	if err := st.Update(func(tx store.Tx) error { return tx.Put(testPod("default", "late", "n1", api.PodRunning, nil)) }); err != nil {
		t.Fatal(err)
	}
	select {
	case ev, ok := <-w.ResultChan():
		if !ok || ev.Type != watch.Added {
			t.Fatalf("after the read timeout: %v %+v", ok, ev)
		}
	case <-wctx.Done():
		t.Fatal("no event after the read timeout")
	}
}
