package printer

import (
	"time"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

// testNow is the fixed clock of every test.
var testNow = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

func ago(d time.Duration) api.Time { return api.NewTime(testNow.Add(-d)) }

func ptrBool(b bool) *bool { return &b }

func meta(ns, name string, created time.Duration, labels map[string]string) api.ObjectMeta {
	return api.ObjectMeta{Namespace: ns, Name: name, CreationTimestamp: ago(created), Labels: labels}
}

func running(name string, restarts int32) api.ContainerStatus {
	return api.ContainerStatus{
		Name: name, Ready: true, RestartCount: restarts, Image: "registry.local/" + name + ":1",
		State: api.ContainerState{Running: &api.ContainerStateRunning{StartedAt: ago(time.Hour)}},
	}
}

func containers(names ...string) []api.Container {
	var cs []api.Container
	for _, n := range names {
		cs = append(cs, api.Container{Name: n, Image: "registry.local/" + n + ":1"})
	}
	return cs
}

// testPods is a small fleet's worth of pods in several states.
func testPods() []*api.Pod {
	web := &api.Pod{
		ObjectMeta: meta("default", "web-edge-1", 3*time.Hour+20*time.Minute, map[string]string{"app": "web", "tier": "front"}),
		Spec:       api.PodSpec{Containers: containers("web"), NodeName: "edge-1"},
		Status: api.PodStatus{
			Phase: api.PodRunning, HostIP: "10.0.0.11", ObservedRevision: 7,
			PodIP: "10.42.0.5", PodIPs: []api.PodIP{{IP: "10.42.0.5"}},
			ContainerStatuses: []api.ContainerStatus{running("web", 0)},
			Conditions:        []api.PodCondition{{Type: api.PodReady, Status: api.ConditionTrue}},
		},
	}
	crash := &api.Pod{
		ObjectMeta: meta("default", "sensor-edge-2", 49*time.Hour, map[string]string{"app": "sensor"}),
		// On the host network, from an agent that reports no podIP.
		Spec: api.PodSpec{Containers: containers("sensor"), NodeName: "edge-2", HostNetwork: true},
		Status: api.PodStatus{
			Phase: api.PodRunning, HostIP: "10.0.0.12", ObservedRevision: 12,
			ContainerStatuses: []api.ContainerStatus{{
				Name: "sensor", RestartCount: 5,
				State: api.ContainerState{Waiting: &api.ContainerStateWaiting{Reason: "CrashLoopBackOff", Message: "back-off 2m40s restarting failed container"}},
				LastState: api.ContainerState{Terminated: &api.ContainerStateTerminated{
					ExitCode: 1, Reason: "Error", StartedAt: ago(5 * time.Minute), FinishedAt: ago(4 * time.Minute),
				}},
			}},
		},
	}
	pull := &api.Pod{
		ObjectMeta: meta("kube-system", "agent-x", 45*time.Second, nil),
		Spec:       api.PodSpec{Containers: containers("agent"), NodeName: "edge-3"},
		Status: api.PodStatus{
			Phase: api.PodPending,
			ContainerStatuses: []api.ContainerStatus{{
				Name:  "agent",
				State: api.ContainerState{Waiting: &api.ContainerStateWaiting{Reason: "ImagePullBackOff"}},
			}},
		},
	}
	return []*api.Pod{web, crash, pull}
}

func testNodes() []*api.Node {
	ready := func(status api.ConditionStatus) []api.NodeCondition {
		return []api.NodeCondition{{
			Type: api.NodeReady, Status: status, Reason: "AgentReady", Message: "agent is posting ready status",
			LastHeartbeatTime: ago(10 * time.Second), LastTransitionTime: ago(8 * 24 * time.Hour),
		}}
	}
	edge1 := &api.Node{
		ObjectMeta: meta("", "edge-1", 8*24*time.Hour, map[string]string{
			api.LabelArch: "arm64", api.LabelOS: "linux", "node-role.kubernetes.io/gateway": "",
		}),
		Status: api.NodeStatus{
			Conditions: ready(api.ConditionTrue),
			Addresses:  []api.NodeAddress{{Type: "InternalIP", Address: "10.0.0.11"}, {Type: "Hostname", Address: "edge-1"}},
			NodeInfo: api.NodeSystemInfo{
				KernelVersion: "6.1.0-rpi7-rpi-v8", OSImage: "Debian GNU/Linux 12 (bookworm)", OperatingSystem: "linux",
				Architecture: "arm64", ContainerRuntimeVersion: "containerd://1.7.24", AgentVersion: "v0.3.1", MachineID: "4c4c4544",
			},
			Capacity:         api.ResourceList{"cpu": "4", "memory": "8Gi", "pods": "110"},
			Allocatable:      api.ResourceList{"cpu": "4", "memory": "7Gi", "pods": "110"},
			DesiredRevision:  7,
			ObservedRevision: 7,
			LastSeen:         ago(10 * time.Second),
			Online:           true,
		},
	}
	edge2 := &api.Node{
		ObjectMeta: meta("", "edge-2", 2*24*time.Hour, map[string]string{api.LabelArch: "arm"}),
		Spec:       api.NodeSpec{Unschedulable: true},
		Status: api.NodeStatus{
			Conditions: ready(api.ConditionUnknown),
			Addresses:  []api.NodeAddress{{Type: "InternalIP", Address: "10.0.0.12"}},
			NodeInfo: api.NodeSystemInfo{
				KernelVersion: "5.15.0", OSImage: "Raspbian 11", Architecture: "arm", Variant: "v7",
				ContainerRuntimeVersion: "containerd://1.7.24", AgentVersion: "v0.3.0",
			},
			DesiredRevision:  12,
			ObservedRevision: 10,
			LastSeen:         ago(7 * time.Minute),
		},
	}
	fresh := &api.Node{ObjectMeta: meta("", "edge-3", 90*time.Second, nil)}
	return []*api.Node{edge1, edge2, fresh}
}

func testDaemonSets() []*api.DaemonSet {
	agent := &api.DaemonSet{
		TypeMeta:   api.TypeMeta{APIVersion: "apps/v1", Kind: api.KindDaemonSet},
		ObjectMeta: meta("default", "sensor", 10*24*time.Hour, map[string]string{"app": "sensor"}),
		Spec: api.DaemonSetSpec{
			Selector: &api.LabelSelector{MatchLabels: map[string]string{"app": "sensor"}},
			Template: api.PodTemplateSpec{
				ObjectMeta: api.ObjectMeta{Labels: map[string]string{"app": "sensor"}},
				Spec: api.PodSpec{
					NodeSelector: map[string]string{api.LabelArch: "arm64", "site": "north"},
					Containers: []api.Container{
						{Name: "sensor", Image: "registry.local/sensor:2", Args: []string{"--interval=5s"},
							Env: []api.EnvVar{{Name: "SITE", Value: "north"}},
							Resources: api.ResourceRequirements{
								Limits:   api.ResourceList{"cpu": "500m", "memory": "128Mi"},
								Requests: api.ResourceList{"cpu": "250m", "memory": "64Mi"},
							},
							VolumeMounts: []api.VolumeMount{{Name: "dev", MountPath: "/dev/i2c-1", ReadOnly: true}},
						},
						{Name: "shipper", Image: "registry.local/shipper:1"},
					},
					Volumes: []api.Volume{{Name: "dev", HostPath: &api.HostPathVolumeSource{Path: "/dev/i2c-1", Type: "CharDevice"}}},
				},
			},
		},
		Status: api.DaemonSetStatus{DesiredNumberScheduled: 3, CurrentNumberScheduled: 3, NumberReady: 2, UpdatedNumberScheduled: 1, NumberAvailable: 2},
	}
	logs := &api.DaemonSet{
		ObjectMeta: meta("kube-system", "log-forwarder", 5*time.Minute+30*time.Second, nil),
		Spec: api.DaemonSetSpec{
			Selector: &api.LabelSelector{
				MatchLabels:      map[string]string{"app": "logs"},
				MatchExpressions: []api.LabelSelectorRequirement{{Key: "track", Operator: api.OpIn, Values: []string{"stable", "canary"}}},
			},
			Template: api.PodTemplateSpec{Spec: api.PodSpec{Containers: containers("fluent-bit")}},
		},
		Status: api.DaemonSetStatus{DesiredNumberScheduled: 12, CurrentNumberScheduled: 11, NumberReady: 10, UpdatedNumberScheduled: 11, NumberAvailable: 10},
	}
	return []*api.DaemonSet{agent, logs}
}

func testNamespaces() []*api.Namespace {
	return []*api.Namespace{
		{ObjectMeta: meta("", "default", 400*24*time.Hour, map[string]string{"kubernetes.io/metadata.name": "default"}), Status: api.NamespaceStatus{Phase: "Active"}},
		{ObjectMeta: meta("", "sites-north", 3*time.Minute, nil), Status: api.NamespaceStatus{Phase: "Active"}},
	}
}

func objects[T api.Object](list []T) []api.Object {
	out := make([]api.Object, len(list))
	for i, o := range list {
		out[i] = o
	}
	return out
}
