package services

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/flotilla-edge/flotilla/pkg/api"
	"github.com/flotilla-edge/flotilla/pkg/wire"
)

const self = "board-a"

// pod is one of this node's pods, labelled app=web, serving "http" on 8080
// (TCP) and "dns" on 5353 (UDP).
func pod(uid string, labels map[string]string) wire.SnapshotPod {
	if labels == nil {
		labels = map[string]string{"app": "web"}
	}
	return wire.SnapshotPod{UID: uid, Name: "web-" + uid, Namespace: "default", Labels: labels,
		Spec: api.PodSpec{Containers: []api.Container{
			{Name: "web", Ports: []api.ContainerPort{{Name: "http", ContainerPort: 8080}}},
			{Name: "side", Ports: []api.ContainerPort{{Name: "dns", ContainerPort: 5353, Protocol: "UDP"}}},
		}}}
}

// running is a pod's status report: running at ip, Ready or not.
func running(uid, ip string, isReady bool) wire.PodReport {
	status := api.ConditionFalse
	if isReady {
		status = api.ConditionTrue
	}
	return wire.PodReport{UID: uid, Name: "web-" + uid, Namespace: "default", Status: api.PodStatus{
		Phase: api.PodRunning, PodIP: ip, PodIPs: []api.PodIP{{IP: ip}},
		Conditions: []api.PodCondition{{Type: api.PodReady, Status: status}},
	}}
}

// hubEP is an endpoint as the hub sends it.
func hubEP(uid, ip, node string, isReady bool) wire.Endpoint {
	return wire.Endpoint{IP: ip, Node: node, Namespace: "default", Name: "web-" + uid, PodUID: uid, Ready: isReady,
		Ports: map[string]int32{"http": 8080}}
}

// localEP is the endpoint Merge makes of one of this node's pods for web().
func localEP(uid, ip string, isReady bool) wire.Endpoint {
	return wire.Endpoint{IP: ip, Node: self, Namespace: "default", Name: "web-" + uid, PodUID: uid, Ready: isReady,
		Ports: map[string]int32{"http": 8080}}
}

// web selects app=web and targets the container port named "http".
func web(eps ...wire.Endpoint) wire.Service {
	return wire.Service{Namespace: "default", Name: "web", Type: "ClusterIP", ClusterIP: "10.43.0.10",
		Selector:  map[string]string{"app": "web"},
		Ports:     []wire.ServicePort{{Name: "http", Protocol: "TCP", Port: 80, TargetPort: "http"}},
		Endpoints: eps}
}

func TestMerge(t *testing.T) {
	remoteReady := hubEP("r1", "10.42.1.5", "board-b", true)
	remoteNotReady := hubEP("r2", "10.42.1.6", "board-b", false)
	tests := []struct {
		name   string
		pods   []wire.SnapshotPod
		svcs   []wire.Service
		report *wire.PodStatusReport // nil: none yet
		want   []wire.Service
	}{
		{
			name: "no report yet: the hub's endpoints as they are",
			pods: []wire.SnapshotPod{pod("a", nil)},
			svcs: []wire.Service{web(hubEP("a", "10.42.0.5", self, true), remoteReady)},
			want: []wire.Service{web(hubEP("a", "10.42.0.5", self, true), remoteReady)},
		},
		{
			name:   "the hub and the agent agree",
			pods:   []wire.SnapshotPod{pod("a", nil)},
			svcs:   []wire.Service{web(hubEP("a", "10.42.0.5", self, true), remoteReady)},
			report: &wire.PodStatusReport{Pods: []wire.PodReport{running("a", "10.42.0.5", true)}},
			want:   []wire.Service{web(localEP("a", "10.42.0.5", true), remoteReady)},
		},
		{
			name:   "a local pod turned not Ready (readiness probe): not ready at once",
			pods:   []wire.SnapshotPod{pod("a", nil)},
			svcs:   []wire.Service{web(hubEP("a", "10.42.0.5", self, true), remoteReady)},
			report: &wire.PodStatusReport{Pods: []wire.PodReport{running("a", "10.42.0.5", false)}},
			want:   []wire.Service{web(localEP("a", "10.42.0.5", false), remoteReady)},
		},
		{
			name:   "a local pod turned Ready before the hub knows",
			pods:   []wire.SnapshotPod{pod("a", nil)},
			svcs:   []wire.Service{web(hubEP("a", "10.42.0.5", self, false))},
			report: &wire.PodStatusReport{Pods: []wire.PodReport{running("a", "10.42.0.5", true)}},
			want:   []wire.Service{web(localEP("a", "10.42.0.5", true))},
		},
		{
			name:   "a local pod restarted with a new IP: the new one, not the old",
			pods:   []wire.SnapshotPod{pod("a", nil)},
			svcs:   []wire.Service{web(hubEP("a", "10.42.0.5", self, true), remoteReady)},
			report: &wire.PodStatusReport{Pods: []wire.PodReport{running("a", "10.42.0.9", true)}},
			want:   []wire.Service{web(localEP("a", "10.42.0.9", true), remoteReady)},
		},
		{
			name: "pods of other nodes untouched, ready or not, whatever the report says",
			pods: []wire.SnapshotPod{pod("a", nil)},
			svcs: []wire.Service{web(remoteNotReady, remoteReady, hubEP("a", "10.42.0.5", self, true))},
			report: &wire.PodStatusReport{Pods: []wire.PodReport{running("a", "10.42.0.5", true),
				running("r1", "10.42.9.9", false)}},
			want: []wire.Service{web(localEP("a", "10.42.0.5", true), remoteReady, remoteNotReady)},
		},
		{
			name:   "a local pod the hub does not know yet",
			pods:   []wire.SnapshotPod{pod("a", nil), pod("b", nil)},
			svcs:   []wire.Service{web(hubEP("a", "10.42.0.5", self, true))},
			report: &wire.PodStatusReport{Pods: []wire.PodReport{running("a", "10.42.0.5", true), running("b", "10.42.0.6", true)}},
			want:   []wire.Service{web(localEP("a", "10.42.0.5", true), localEP("b", "10.42.0.6", true))},
		},
		{
			name:   "a local pod gone from the snapshot: its endpoint goes, even if the last report still has it",
			pods:   []wire.SnapshotPod{pod("b", nil)},
			svcs:   []wire.Service{web(hubEP("a", "10.42.0.5", self, true), hubEP("b", "10.42.0.6", self, true))},
			report: &wire.PodStatusReport{Pods: []wire.PodReport{running("a", "10.42.0.5", true), running("b", "10.42.0.6", true)}},
			want:   []wire.Service{web(localEP("b", "10.42.0.6", true))},
		},
		{
			name:   "a local pod the report does not list yet, or without an address yet: no endpoint",
			pods:   []wire.SnapshotPod{pod("a", nil), pod("b", nil)},
			svcs:   []wire.Service{web(hubEP("a", "10.42.0.5", self, true))},
			report: &wire.PodStatusReport{Pods: []wire.PodReport{running("b", "", false)}},
			want:   []wire.Service{web()},
		},
		{
			name: "a finished pod is no endpoint",
			pods: []wire.SnapshotPod{pod("a", nil)},
			svcs: []wire.Service{web(hubEP("a", "10.42.0.5", self, true))},
			report: func() *wire.PodStatusReport {
				r := running("a", "10.42.0.5", false)
				r.Status.Phase = api.PodSucceeded
				return &wire.PodStatusReport{Pods: []wire.PodReport{r}}
			}(),
			want: []wire.Service{web()},
		},
		{
			name: "pods the selector does not pick, or of another namespace",
			pods: []wire.SnapshotPod{pod("a", map[string]string{"app": "db"}), func() wire.SnapshotPod {
				p := pod("b", nil)
				p.Namespace = "other"
				return p
			}()},
			svcs:   []wire.Service{web(remoteReady)},
			report: &wire.PodStatusReport{Pods: []wire.PodReport{running("a", "10.42.0.5", true), running("b", "10.42.0.6", true)}},
			want:   []wire.Service{web(remoteReady)},
		},
		{
			name:   "an endpoint of this node's pod that the hub placed elsewhere is this node's",
			pods:   []wire.SnapshotPod{pod("a", nil)},
			svcs:   []wire.Service{web(hubEP("a", "10.42.0.5", "", true))},
			report: &wire.PodStatusReport{Pods: []wire.PodReport{running("a", "10.42.0.7", true)}},
			want:   []wire.Service{web(localEP("a", "10.42.0.7", true))},
		},
		{
			name: "a Service without a selector keeps the hub's endpoints, this node's too",
			pods: []wire.SnapshotPod{pod("a", nil)},
			svcs: []wire.Service{func() wire.Service {
				s := web(hubEP("a", "10.42.0.5", self, true), hubEP("x", "192.168.1.20", self, true))
				s.Selector = nil
				return s
			}()},
			report: &wire.PodStatusReport{Pods: []wire.PodReport{running("a", "10.42.0.9", false)}},
			want: []wire.Service{func() wire.Service {
				s := web(hubEP("a", "10.42.0.5", self, true), hubEP("x", "192.168.1.20", self, true))
				s.Selector = nil
				return s
			}()},
		},
		{
			name: "the hub's hostname of a local pod is kept",
			pods: []wire.SnapshotPod{pod("a", nil)},
			svcs: []wire.Service{func() wire.Service {
				e := hubEP("a", "10.42.0.5", self, true)
				e.Hostname = "web-0"
				return web(e)
			}()},
			report: &wire.PodStatusReport{Pods: []wire.PodReport{running("a", "10.42.0.8", true)}},
			want: []wire.Service{func() wire.Service {
				e := localEP("a", "10.42.0.8", true)
				e.Hostname = "web-0"
				return web(e)
			}()},
		},
		{
			name: "target ports: by name and protocol, by number, unset",
			pods: []wire.SnapshotPod{pod("a", nil)},
			svcs: []wire.Service{{Namespace: "default", Name: "multi", ClusterIP: "10.43.0.11",
				Selector: map[string]string{"app": "web"},
				Ports: []wire.ServicePort{
					{Name: "http", Protocol: "TCP", Port: 80, TargetPort: "http"},
					{Name: "dns", Protocol: "UDP", Port: 53, TargetPort: "dns"},
					// "http" is a TCP port: a UDP port of that name has none.
					{Name: "http-udp", Protocol: "UDP", Port: 81, TargetPort: "http"},
					{Name: "metrics", Protocol: "TCP", Port: 9100, TargetPort: "9101"},
					{Name: "plain", Port: 7000},
					{Name: "missing", Protocol: "TCP", Port: 82, TargetPort: "admin"},
				}}},
			report: &wire.PodStatusReport{Pods: []wire.PodReport{running("a", "10.42.0.5", true)}},
			want: []wire.Service{{Namespace: "default", Name: "multi", ClusterIP: "10.43.0.11",
				Selector: map[string]string{"app": "web"},
				Ports: []wire.ServicePort{
					{Name: "http", Protocol: "TCP", Port: 80, TargetPort: "http"},
					{Name: "dns", Protocol: "UDP", Port: 53, TargetPort: "dns"},
					{Name: "http-udp", Protocol: "UDP", Port: 81, TargetPort: "http"},
					{Name: "metrics", Protocol: "TCP", Port: 9100, TargetPort: "9101"},
					{Name: "plain", Port: 7000},
					{Name: "missing", Protocol: "TCP", Port: 82, TargetPort: "admin"},
				},
				Endpoints: []wire.Endpoint{{IP: "10.42.0.5", Node: self, Namespace: "default", Name: "web-a", PodUID: "a", Ready: true,
					Ports: map[string]int32{"http": 8080, "dns": 5353, "metrics": 9101, "plain": 7000}}}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			snap := wire.Snapshot{Node: self, Pods: tt.pods, Services: tt.svcs}
			before := deepCopy(t, snap)
			got := Merge(self, &snap, tt.report)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Merge:\n got  %s\n want %s", jsonOf(t, got), jsonOf(t, tt.want))
			}
			if !reflect.DeepEqual(snap, before) {
				t.Errorf("Merge changed the snapshot:\n now    %s\n before %s", jsonOf(t, snap), jsonOf(t, before))
			}
		})
	}
}

func deepCopy(t *testing.T, snap wire.Snapshot) wire.Snapshot {
	t.Helper()
	var out wire.Snapshot
	if err := json.Unmarshal([]byte(jsonOf(t, snap)), &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func jsonOf(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
