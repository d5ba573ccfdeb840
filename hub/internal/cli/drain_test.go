package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/flotilla-edge/flotilla/hub/internal/client"
	"github.com/flotilla-edge/flotilla/pkg/api"
)

// On a one-node fleet the evicted pods have nowhere to go: drain returns
// once they left the node and names them with the scheduler's reason
// (issue 13, item 3), instead of waiting for them to be placed.
func TestDrainOneNodeFleetReturnsAndNamesUnplacedPods(t *testing.T) {
	h := newHub(t, "n0")
	if _, errOut, err := h.cli(webYAML, "apply", "-f", "-"); err != nil {
		t.Fatal(err, errOut)
	}
	h.settle()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- h.dep.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Error(err)
		}
	}()
	out, errOut, err := h.cli("", "drain", "n0", "--timeout=20s")
	if err != nil {
		t.Fatalf("drain: %v\n%s%s", err, out, errOut)
	}
	if strings.Count(out, "evicting pod default/web-") != 2 || strings.Count(out, " evicted\n") != 2 || !strings.HasSuffix(out, "node/n0 drained\n") {
		t.Errorf("drain output:\n%s", out)
	}
	if !strings.Contains(errOut, "Warning: 2 evicted pod(s) have no node to go to:") ||
		strings.Count(errOut, "(deployment default/web): Unschedulable: 0/1 nodes are available: 1 node(s) were unschedulable") != 2 {
		t.Errorf("drain should name the pods no node takes, and why:\n%s", errOut)
	}
}

// A pod that does not leave: drain says what it waits for every few
// seconds, and with --timeout gives up naming it.
func TestDrainSaysWhatItWaitsForAndTimesOut(t *testing.T) {
	ctl := true
	stuck := &api.Pod{TypeMeta: api.TypeMeta{APIVersion: "v1", Kind: api.KindPod},
		ObjectMeta: api.ObjectMeta{Name: "web-1", Namespace: "default", UID: "u1",
			OwnerReferences: []api.OwnerReference{{Kind: api.KindDeployment, Name: "web", Controller: &ctl}}},
		Spec: api.PodSpec{NodeName: "n0"}}
	node := &api.Node{TypeMeta: api.TypeMeta{APIVersion: "v1", Kind: api.KindNode}, ObjectMeta: api.ObjectMeta{Name: "n0"}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.URL.Path == "/api/v1/nodes/n0":
			node.Spec.Unschedulable = r.Method == http.MethodPatch || node.Spec.Unschedulable
			_ = json.NewEncoder(w).Encode(node)
		case r.URL.Path == "/api/v1/pods" && r.Method == http.MethodGet:
			b, _ := json.Marshal(stuck)
			_ = json.NewEncoder(w).Encode(api.List{TypeMeta: api.TypeMeta{APIVersion: "v1", Kind: "PodList"}, Items: []json.RawMessage{b}})
		case r.URL.Path == "/api/v1/namespaces/default/pods/web-1" && r.Method == http.MethodDelete:
			_ = json.NewEncoder(w).Encode(stuck) // and keeps it, as a hub whose write was lost would
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	c, err := client.New(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	o := drainOptions{ignoreDaemonSets: true, timeout: 2 * time.Second, poll: 10 * time.Millisecond, progress: 50 * time.Millisecond, placement: time.Second}
	err = drain(context.Background(), &out, &errOut, c, "n0", o)
	if err == nil || !strings.Contains(err.Error(), "drain did not complete within 2s") || !strings.Contains(err.Error(), "pending pods on it: default/web-1") {
		t.Fatalf("err = %v", err)
	}
	if !strings.Contains(errOut.String(), "waiting for 1 pod(s) to leave node n0") || !strings.Contains(errOut.String(), "default/web-1") {
		t.Errorf("no progress while waiting:\n%s", errOut.String())
	}
	if strings.Contains(out.String(), "evicted\n") || strings.Contains(out.String(), "drained") {
		t.Errorf("drain claims what did not happen:\n%s", out.String())
	}
}
