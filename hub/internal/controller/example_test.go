package controller_test

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"time"

	"github.com/flotilla-edge/flotilla/hub/internal/controller"
	"github.com/flotilla-edge/flotilla/hub/internal/store"
	"github.com/flotilla-edge/flotilla/pkg/api"
)

// A controller that stamps every pod with the node it runs on, as an
// annotation: its plan function, its write function and its registration.
func Example() {
	st := store.NewMemory()
	defer st.Close()

	// Plan: which pods lack the stamp. A pure function of what was read.
	plan := func(pods []*api.Pod) ([]*api.Pod, time.Time) {
		var stamp []*api.Pod
		for _, p := range pods {
			if p.Annotations["example.io/node"] != p.Spec.NodeName {
				cp := *p // the store's shared object stays as it is
				cp.Annotations = maps.Clone(p.Annotations)
				if cp.Annotations == nil {
					cp.Annotations = map[string]string{}
				}
				cp.Annotations["example.io/node"] = p.Spec.NodeName
				stamp = append(stamp, &cp)
			}
		}
		return stamp, time.Time{} // nothing to wait for
	}
	// Write: store what the plan decided.
	write := func(pods []*api.Pod) error {
		if len(pods) == 0 {
			return nil
		}
		return st.Update(func(tx store.Tx) error {
			for _, p := range pods {
				if err := tx.Put(p); err != nil {
					return err
				}
			}
			return nil
		})
	}
	// Registration: what wakes it, and its pass.
	loop := controller.New(controller.Options{
		Name: "node-stamp", Store: st, Kinds: []string{api.KindPod}, Logger: slog.New(slog.DiscardHandler),
		Pass: controller.Steps[[]*api.Pod, []*api.Pod]{
			Store: st,
			Read:  func(tx store.Tx) ([]*api.Pod, error) { return store.ListShared[api.Pod](tx, "") },
			Plan:  plan,
			Write: write,
		}.Pass,
	})

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- loop.Run(ctx) }()

	// A pod arrives; the controller stamps it.
	stamped := st.Watch(ctx, api.KindPod)
	_ = st.Update(func(tx store.Tx) error {
		return tx.Put(&api.Pod{TypeMeta: api.TypeMeta{APIVersion: "v1", Kind: api.KindPod},
			ObjectMeta: api.ObjectMeta{Namespace: "default", Name: "web"}, Spec: api.PodSpec{NodeName: "board-7"}})
	})
	<-stamped // the pod
	<-stamped // the pod, stamped
	cancel()
	<-done

	_ = st.View(func(tx store.Tx) error {
		p, err := store.Get[api.Pod](tx, "default", "web")
		fmt.Println(p.Annotations["example.io/node"], err)
		return nil
	})
	// Output: board-7 <nil>
}
