package printer

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

func testDeployment() *api.Deployment {
	replicas := int32(3)
	unav, surge := api.FromString("25%"), api.FromInt(1)
	return &api.Deployment{
		ObjectMeta: api.ObjectMeta{Name: "web", Namespace: "default", CreationTimestamp: ago(2 * time.Hour)},
		Spec: api.DeploymentSpec{
			Replicas: &replicas,
			Selector: &api.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Strategy: api.DeploymentStrategy{Type: api.RollingUpdateStrategy, RollingUpdate: &api.RollingUpdateDeployment{MaxUnavailable: &unav, MaxSurge: &surge}},
			Template: api.PodTemplateSpec{
				ObjectMeta: api.ObjectMeta{Labels: map[string]string{"app": "web"}},
				Spec:       api.PodSpec{Containers: []api.Container{{Name: "web", Image: "reg/web:2"}, {Name: "side", Image: "reg/side:1"}}},
			},
		},
		Status: api.DeploymentStatus{Replicas: 3, UpdatedReplicas: 2, ReadyReplicas: 2, AvailableReplicas: 2, UnavailableReplicas: 1,
			Conditions: []api.DeploymentCondition{
				{Type: "Available", Status: "True", Reason: "MinimumReplicasAvailable"},
				{Type: "Progressing", Status: "True", Reason: "ReplicaSetUpdated"},
			},
			Rollout: &api.RolloutStatus{Revision: 2, Phase: api.RolloutProgressing, Updated: 2, Ready: 2, Unavailable: 1, Total: 3, Updating: []string{"web-abc"}}},
	}
}

func TestDeploymentAndRevisionTables(t *testing.T) {
	cr := &api.ControllerRevision{
		ObjectMeta: api.ObjectMeta{Name: "sensor-5bce9a1b2c", CreationTimestamp: ago(90 * time.Second),
			OwnerReferences: []api.OwnerReference{{APIVersion: "apps/v1", Kind: "DaemonSet", Name: "sensor", Controller: ptrBool(true)}}},
		Revision: 4,
	}
	for _, tc := range []struct {
		kind string
		obj  api.Object
		opts Options
		want string
	}{
		{api.KindDeployment, testDeployment(), Options{}, `
NAME   READY   UP-TO-DATE   AVAILABLE   AGE
web    2/3     2            2           120m
`},
		{api.KindDeployment, testDeployment(), Options{Wide: true}, `
NAME   READY   UP-TO-DATE   AVAILABLE   AGE    CONTAINERS   IMAGES                 SELECTOR
web    2/3     2            2           120m   web,side     reg/web:2,reg/side:1   app=web
`},
		{api.KindControllerRevision, cr, Options{}, `
NAME                CONTROLLER              REVISION   AGE
sensor-5bce9a1b2c   daemonset.apps/sensor   4          90s
`},
	} {
		var b bytes.Buffer
		tc.opts.Now = testNow
		if err := PrintTable(&b, tc.kind, []api.Object{tc.obj}, tc.opts); err != nil {
			t.Fatal(err)
		}
		if b.String() != text(tc.want) {
			t.Errorf("%s:\n%s\nwant:\n%s", tc.kind, b.String(), text(tc.want))
		}
	}
}

func TestDescribeDeployment(t *testing.T) {
	pod := testPods()[0]
	out := describe(t, testDeployment(), Related{Pods: []*api.Pod{pod}})
	wantLines(t, out,
		"Name:                   web",
		"Replicas:               3 desired | 2 updated | 3 total | 2 available | 1 unavailable",
		"StrategyType:           RollingUpdate",
		"RollingUpdateStrategy:  25% max unavailable, 1 max surge",
		"  Available    True    MinimumReplicasAvailable",
		"  Revision:  2",
		"  Nodes:     2 updated, 2 ready, 1 unavailable, 0 failed, 0 offline-pending, 3 total",
		"  web-edge-1  edge-1  Running  3h20m",
	)
}

func TestDescribeDaemonSetRollout(t *testing.T) {
	ds := testDaemonSets()[0]
	one := api.FromInt(1)
	ds.Spec.Rollout = &api.RolloutSpec{Canary: &api.CanarySpec{Count: &one}, MaxFailures: &one, OnFailure: api.OnFailureRollback}
	ds.Status.Rollout = &api.RolloutStatus{Revision: 3, Phase: api.RolloutFailed, Message: "2 node(s) failed", Updated: 3, Failed: 2, Total: 5,
		FailedNodes: []api.NodeReason{{Node: "edge-2", Reason: "reverted: CrashLoopBackOff"}}, LastGoodRevision: 2}
	out := describe(t, ds, Related{})
	wantLines(t, out,
		"Strategy:",
		"  Type:               RollingUpdate",
		"Fleet Rollout:",
		"  Canary:         1 node(s), then pause until resumed",
		"  On Failure:     Rollback",
		"Rollout:",
		"  Phase:     Failed",
		"  Failed Nodes:",
		"    edge-2:            reverted: CrashLoopBackOff",
		"  Last Good Revision:  2",
	)
}

func TestDescribeRolledBackKeepsTheFailure(t *testing.T) {
	ds := testDaemonSets()[0]
	ds.Status.Rollout = &api.RolloutStatus{Revision: 4, Phase: api.RolloutRolledBack, Message: "rolling back to the last good revision: 1 of 5 node(s) updated",
		Updated: 1, Total: 5, OfflinePending: 3, OfflinePendingNodes: []string{"edge-3", "edge-4"},
		Failure: &api.RolloutFailure{Revision: 3, RolledBackTo: 4, Message: "canary failed: edge-1: ErrImagePull: reg/x:nope: not found",
			Nodes: []api.NodeReason{{Node: "edge-1", Reason: "ErrImagePull: reg/x:nope: not found"}}, Time: api.NewTime(testNow.Add(-time.Minute))}}
	out := describe(t, ds, Related{})
	wantLines(t, out,
		"  Offline Pending:  edge-3, edge-4 and 1 more",
		"  Failure:",
		"    Revision:        3",
		"    Rolled Back To:  4",
		"    Reason:          canary failed: edge-1: ErrImagePull: reg/x:nope: not found",
		"    edge-1:          ErrImagePull: reg/x:nope: not found",
	)
}

func TestProgressRendering(t *testing.T) {
	p := Progress{Resource: "daemon set", Name: "sensor", Revision: 3, Phase: api.RolloutProgressing,
		Updated: 4, Ready: 3, Unavailable: 1, OfflinePending: 1, Total: 10, PrePull: true, PrePulled: 7,
		Updating: []string{"edge-4"}, Message: "4 of 10 node(s) updated"}
	if got, want := ProgressLine(p), `daemon set "sensor" revision 3: Progressing: 4/10 updated, 3 ready, 1 unavailable, 0 failed, 1 offline-pending, 7/10 pre-pulled; updating edge-4`; got != want {
		t.Errorf("line = %q\nwant   %q", got, want)
	}
	block := ProgressBlock(p, 64)
	want := []string{
		`daemon set "sensor" revision 3  Progressing`,
		"[████████████▒▒▒▒░░░░░░░░░░░░░░░░░░░░░░░░] 4/10 updated  40%",
		"ready 3  unavailable 1  failed 0  offline-pending 1  total 10",
		"pre-pull [█████████████████████░░░░░░░░░░] 7/10",
		"updating: edge-4",
		"4 of 10 node(s) updated",
	}
	if strings.Join(block, "\n") != strings.Join(want, "\n") {
		t.Errorf("block:\n%s\nwant:\n%s", strings.Join(block, "\n"), strings.Join(want, "\n"))
	}
	for _, l := range ProgressBlock(p, 30) {
		if n := len([]rune(l)); n > 30 {
			t.Errorf("line of %d runes: %q", n, l)
		}
	}
	w := Progress{Resource: "deployment", Name: "web", Waiting: "waiting for the hub"}
	if got := ProgressLine(w); got != `deployment "web": waiting for the hub` {
		t.Errorf("waiting = %q", got)
	}
}
