package e2e

// Real Kubernetes clients against the hub (issue 19): client-go's typed,
// dynamic and discovery clients and an informer, with the kubeconfig `hub
// kubeconfig` writes, against a TLS hub with an enrolled agent running
// pods in containerd.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
)

// kubeconfig writes this hub's kubeconfig with `hub kubeconfig` and
// returns its path.
func (h *hubProc) kubeconfig() string {
	h.t.Helper()
	path := filepath.Join(h.dir, "kubeconfig")
	if _, err := os.Stat(path); err == nil {
		return path
	}
	h.mustCLI("kubeconfig", "--data-dir", filepath.Join(h.dir, "data"), "-o", path)
	return path
}

// restConfig is client-go's configuration from the hub's kubeconfig.
func (h *hubProc) restConfig() *rest.Config {
	h.t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", h.kubeconfig())
	if err != nil {
		h.t.Fatal(err)
	}
	cfg.Timeout = 30 * time.Second
	return cfg
}

func TestKubeClientGo(t *testing.T) {
	h := startHub(t, hubOptions{tls: true})
	a := startEnrolledAgent(t, h)
	cfg := h.restConfig()
	cs := kubernetes.NewForConfigOrDie(cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	// Discovery, as kubectl and every controller start.
	dc := discovery.NewDiscoveryClientForConfigOrDie(cfg)
	if v, err := dc.ServerVersion(); err != nil || v.Major != "1" {
		t.Fatalf("server version: %+v %v", v, err)
	}
	_, lists, err := dc.ServerGroupsAndResources()
	if err != nil {
		t.Fatal(err)
	}
	var served []string
	for _, l := range lists {
		for _, r := range l.APIResources {
			served = append(served, l.GroupVersion+"/"+r.Name)
		}
	}
	for _, want := range []string{"v1/pods", "v1/nodes", "v1/pods/log", "apps/v1/daemonsets", "apps/v1/deployments", "v1/services", "v1/events"} {
		if !slices.Contains(served, want) {
			t.Errorf("discovery does not list %s: %v", want, served)
		}
	}

	// An informer on pods, started before there are any: it lists, then
	// follows the watch.
	factory := informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithNamespace("default"))
	defer factory.Shutdown() // after cancel: it waits for the informer to stop
	ictx, icancel := context.WithCancel(ctx)
	defer icancel()
	podInformer := factory.Core().V1().Pods()
	seen := make(chan string, 64)
	if _, err := podInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { seen <- "add " + obj.(*corev1.Pod).Name },
		DeleteFunc: func(obj any) { seen <- "delete" },
	}); err != nil {
		t.Fatal(err)
	}
	factory.Start(ictx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), podInformer.Informer().HasSynced) {
		t.Fatal("the pod informer did not sync")
	}

	h.applyYAML(daemonSet("kc", env.image, "", "sleep 3600"))
	var podName string
	select {
	case ev := <-seen:
		podName = strings.TrimPrefix(ev, "add ")
	case <-ctx.Done():
		t.Fatal("the informer saw no pod")
	}
	eventually(t, 60*time.Second, "pod "+podName+" Running in the informer's cache", func() error {
		p, err := podInformer.Lister().Pods("default").Get(podName)
		if err != nil {
			return err
		}
		if p.Status.Phase != corev1.PodRunning || p.Spec.NodeName != a.node {
			return fmt.Errorf("phase %s on %q", p.Status.Phase, p.Spec.NodeName)
		}
		return nil
	})

	// Typed reads.
	node, err := cs.CoreV1().Nodes().Get(ctx, a.node, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !nodeReady(node) || node.Status.NodeInfo.OSImage == "" {
		t.Errorf("node %s: conditions %+v, nodeInfo %+v", a.node, node.Status.Conditions, node.Status.NodeInfo)
	}
	ds, err := cs.AppsV1().DaemonSets("default").Get(ctx, "kc", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ds.Spec.Template.Spec.Containers[0].Image != env.image || ds.Status.DesiredNumberScheduled != 1 {
		t.Errorf("daemonset: %+v", ds.Status)
	}
	pods, err := cs.CoreV1().Pods("").List(ctx, metav1.ListOptions{LabelSelector: "app=kc", FieldSelector: "spec.nodeName=" + a.node})
	if err != nil || len(pods.Items) != 1 || pods.Items[0].Name != podName {
		t.Fatalf("pods of kc on %s: %v %+v", a.node, err, pods)
	}

	// A typed watch from the list's version: the pod deleted, and the
	// DaemonSet's new one (it may have the same name, not the same uid).
	oldUID := pods.Items[0].UID
	w, err := cs.CoreV1().Pods("default").Watch(ctx, metav1.ListOptions{ResourceVersion: pods.ResourceVersion, LabelSelector: "app=kc"})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	if err := cs.CoreV1().Pods("default").Delete(ctx, podName, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	var deleted, recreated bool
	for !deleted || !recreated {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok {
				t.Fatal("the watch ended")
			}
			p, _ := ev.Object.(*corev1.Pod)
			switch {
			case p == nil:
				t.Fatalf("watch event %s: %+v", ev.Type, ev.Object)
			case ev.Type == watch.Deleted && p.UID == oldUID:
				deleted = true
			case ev.Type == watch.Added && p.UID != oldUID:
				recreated = true
			}
		case <-ctx.Done():
			t.Fatalf("watch: deleted %v, recreated %v", deleted, recreated)
		}
	}

	// The dynamic client sees the objects as they are, Flotilla's fields
	// included.
	dyn := dynamic.NewForConfigOrDie(cfg)
	gvr := schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "daemonsets"}
	list, err := dyn.Resource(gvr).Namespace("default").List(ctx, metav1.ListOptions{})
	if err != nil || len(list.Items) != 1 {
		t.Fatalf("dynamic list: %v %+v", err, list)
	}
	obj, err := dyn.Resource(gvr).Namespace("default").Get(ctx, "kc", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if img, _, _ := unstructured.NestedString(obj.Object, "status", "rollout", "phase"); obj.GetKind() != "DaemonSet" || img == "" {
		t.Errorf("dynamic get: kind %q, status.rollout.phase %q", obj.GetKind(), img)
	}
	if _, err := dyn.Resource(gvr).Namespace("default").Get(ctx, "nope", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("dynamic get of a missing object: %v", err)
	}

	// Credentials: none is 401, a node's (or any hub-CA) certificate
	// that is not the administrator's is 403, as Kubernetes answers.
	anon := rest.CopyConfig(cfg)
	anon.BearerToken = ""
	if _, err := kubernetes.NewForConfigOrDie(anon).CoreV1().Nodes().List(ctx, metav1.ListOptions{}); !apierrors.IsUnauthorized(err) {
		t.Errorf("no credentials: %v, want 401", err)
	}
	wrong := rest.CopyConfig(cfg)
	wrong.BearerToken = "not-the-token"
	if _, err := kubernetes.NewForConfigOrDie(wrong).CoreV1().Nodes().List(ctx, metav1.ListOptions{}); !apierrors.IsUnauthorized(err) {
		t.Errorf("a wrong token: %v, want 401", err)
	}
	asHub := rest.CopyConfig(anon)
	asHub.CertFile, asHub.KeyFile = h.pkiFile("hub-client.crt"), h.pkiFile("hub-client.key")
	_, err = kubernetes.NewForConfigOrDie(asHub).CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), `User "flotilla:hub"`) {
		t.Errorf("the hub's own certificate: %v, want 403 naming the user", err)
	}
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
