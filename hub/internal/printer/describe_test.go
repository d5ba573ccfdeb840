package printer

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

func describe(t *testing.T, obj api.Object, rel Related) string {
	t.Helper()
	var b bytes.Buffer
	if err := Describe(&b, obj, rel, testNow); err != nil {
		t.Fatalf("Describe: %v", err)
	}
	return b.String()
}

// wantLines checks that every line of want appears, whole, in out.
func wantLines(t *testing.T, out string, want ...string) {
	t.Helper()
	lines := map[string]bool{}
	for _, l := range strings.Split(out, "\n") {
		lines[l] = true
	}
	for _, w := range want {
		if !lines[w] {
			t.Errorf("missing line %q in:\n%s", w, out)
		}
	}
}

func describedPod() *api.Pod {
	p := testPods()[0]
	p.OwnerReferences = []api.OwnerReference{{APIVersion: "apps/v1", Kind: "DaemonSet", Name: "web", UID: "u1", Controller: ptrBool(true)}}
	p.Annotations = map[string]string{"flotilla.io/spec-hash": "abc123"}
	p.Spec.Containers = []api.Container{{
		Name: "web", Image: "registry.local/web:1", Command: []string{"/bin/web"}, Args: []string{"--port=8080", "--verbose"},
		Ports: []api.ContainerPort{{ContainerPort: 8080, HostPort: 8080}},
		Env:   []api.EnvVar{{Name: "SITE", Value: "north"}},
		Resources: api.ResourceRequirements{
			Limits:   api.ResourceList{"cpu": "500m", "memory": "128Mi"},
			Requests: api.ResourceList{"cpu": "250m", "memory": "64Mi"},
		},
		VolumeMounts: []api.VolumeMount{{Name: "data", MountPath: "/data"}, {Name: "cfg", MountPath: "/etc/web", ReadOnly: true}},
	}}
	p.Spec.Volumes = []api.Volume{
		{Name: "data", HostPath: &api.HostPathVolumeSource{Path: "/srv/web", Type: "DirectoryOrCreate"}},
		{Name: "cfg", EmptyDir: &api.EmptyDirVolumeSource{}},
	}
	p.Status.StartTime = ago(3 * time.Hour)
	p.Status.ContainerStatuses[0].ImageID = "registry.local/web@sha256:0123"
	p.Status.ContainerStatuses[0].ContainerID = "containerd://f00"
	p.Status.ContainerStatuses[0].RestartCount = 1
	p.Status.ContainerStatuses[0].LastState = api.ContainerState{Terminated: &api.ContainerStateTerminated{
		ExitCode: 137, Signal: 9, Reason: "OOMKilled", StartedAt: ago(2 * time.Hour), FinishedAt: ago(time.Hour + time.Minute),
	}}
	return p
}

func TestDescribePod(t *testing.T) {
	out := describe(t, describedPod(), Related{})
	wantLines(t, out,
		"Name:         web-edge-1",
		"Namespace:    default",
		"Node:         edge-1/10.0.0.11",
		"Start Time:   Wed, 01 May 2024 09:00:00 +0000",
		"Labels:       app=web",
		"              tier=front",
		"Annotations:  flotilla.io/spec-hash: abc123",
		"Status:       Running",
		"IP:           10.42.0.5",
		// As in kubectl, "IPs:" has no value and ends the aligned block.
		"IPs:",
		"  IP:               10.42.0.5",
		"Observed Revision:  7",
		"Controlled By:      DaemonSet/web",
		"Containers:",
		"  web:",
		// The Command: line has no value, so, as in kubectl, it ends the
		// aligned block above it.
		"    Container ID:  containerd://f00",
		"    Image:         registry.local/web:1",
		"    Image ID:      registry.local/web@sha256:0123",
		"    Port:          8080/TCP",
		"    Host Port:     8080/TCP",
		"    Command:",
		"      /bin/web",
		"    Args:",
		"      --port=8080",
		"      --verbose",
		"    State:          Running",
		"      Started:      Wed, 01 May 2024 11:00:00 +0000",
		"    Last State:     Terminated",
		"      Reason:       OOMKilled",
		"      Exit Code:    137",
		"      Signal:       9",
		"      Finished:     Wed, 01 May 2024 10:59:00 +0000",
		"    Ready:          True",
		"    Restart Count:  1",
		"    Limits:",
		"      cpu:     500m",
		"      memory:  128Mi",
		"    Requests:",
		"      cpu:     250m",
		"    Environment:",
		"      SITE:  north",
		"    Mounts:",
		"      /data from data (rw)",
		"      /etc/web from cfg (ro)",
		"Conditions:",
		"  Type   Status",
		"  Ready  True",
		"Volumes:",
		"  data:",
		"    Type:          HostPath (bare host directory volume)",
		"    Path:          /srv/web",
		"    HostPathType:  DirectoryOrCreate",
		"  cfg:",
		"    Type:        EmptyDir (a temporary directory that shares a pod's lifetime)",
		"    SizeLimit:   <unset>",
	)
}

func TestDescribePodWaiting(t *testing.T) {
	p := testPods()[1]
	p.Status.Reason, p.Status.Message = "NodeLost", "node edge-2 has not been seen for 5m"
	out := describe(t, p, Related{})
	wantLines(t, out,
		"Reason:             NodeLost",
		"Message:            node edge-2 has not been seen for 5m",
		"    State:          Waiting",
		"      Reason:       CrashLoopBackOff",
		"      Message:      back-off 2m40s restarting failed container",
		"    Last State:     Terminated",
		"      Reason:       Error",
		"      Exit Code:    1",
		"    Ready:          False",
		"    Restart Count:  5",
		"    Environment:    <none>",
		"    Mounts:         <none>",
		"Volumes:            <none>",
	)
	if strings.Contains(out, "Controlled By") || strings.Contains(out, "Start Time") {
		t.Errorf("unset fields printed:\n%s", out)
	}
}

func TestDescribePodWithoutStatus(t *testing.T) {
	p := &api.Pod{ObjectMeta: meta("default", "new", time.Second, nil), Spec: api.PodSpec{Containers: containers("a")},
		Status: api.PodStatus{Phase: api.PodPending}}
	wantLines(t, describe(t, p, Related{}),
		"Node:               <none>",
		"Status:             Pending",
		"Observed Revision:  <none>",
		"    State:          Waiting",
		"    Ready:          False",
	)
}

func TestDescribeNode(t *testing.T) {
	pods := []*api.Pod{describedPod(), testPods()[1]}
	done := testPods()[2]
	done.Status.Phase = api.PodSucceeded
	pods = append(pods, done)
	// A second pod with resources, to check the sums and percentages.
	other := describedPod()
	other.Name = "web-2"
	other.Spec.Containers[0].Resources = api.ResourceRequirements{
		Limits: api.ResourceList{"cpu": "1", "memory": "1Gi"}, // requests default to limits
	}
	pods = append(pods, other)

	node := testNodes()[0]
	node.Status.Outbox = api.NodeOutbox{Queued: 3, Dropped: 52, DroppedByClass: map[string]uint64{"status": 33, "events": 19}}
	node.Status.IngestDropped = map[string]uint64{"malformed": 2, "wrongNode": 1}
	out := describe(t, node, Related{Pods: pods})
	wantLines(t, out,
		"Name:               edge-1",
		"Roles:              gateway",
		"Labels:             kubernetes.io/arch=arm64",
		"                    kubernetes.io/os=linux",
		"                    node-role.kubernetes.io/gateway=",
		"Annotations:        <none>",
		"CreationTimestamp:  Tue, 23 Apr 2024 12:00:00 +0000",
		"Unschedulable:      false",
		"Conditions:",
		"  Type   Status  LastHeartbeatTime                LastTransitionTime               Reason      Message",
		"  ----   ------  -----------------                ------------------               ------      -------",
		"  Ready  True    Wed, 01 May 2024 11:59:50 +0000  Tue, 23 Apr 2024 12:00:00 +0000  AgentReady  agent is posting ready status",
		"Addresses:",
		"  InternalIP:  10.0.0.11",
		"  Hostname:    edge-1",
		"Capacity:",
		"  cpu:     4",
		"  memory:  8Gi",
		"System Info:",
		"  Machine ID:                 4c4c4544",
		"  Kernel Version:             6.1.0-rpi7-rpi-v8",
		"  OS Image:                   Debian GNU/Linux 12 (bookworm)",
		"  Operating System:           linux",
		"  Architecture:               arm64",
		"  Container Runtime Version:  containerd://1.7.24",
		"  Agent Version:              v0.3.1",
		"Revisions:",
		"  Desired:    7",
		"  Observed:   7",
		"  Last Seen:  Wed, 01 May 2024 11:59:50 +0000 (10s ago)",
		"Outbox:",
		"  Queued:             3",
		"  Dropped:            52 (events 19, status 33)",
		"  Dropped by hub:     3 (malformed 2, wrongNode 1)",
		"Non-terminated Pods:  (3 in total)",
		"  Namespace           Name           CPU Requests  CPU Limits  Memory Requests  Memory Limits  Age",
		"  ---------           ----           ------------  ----------  ---------------  -------------  ---",
		"  default             web-edge-1     250m (6%)     500m (12%)  64Mi (0%)        128Mi (1%)     3h20m",
		"  default             sensor-edge-2  0 (0%)        0 (0%)      0 (0%)           0 (0%)         2d1h",
		"  default             web-2          1 (25%)       1 (25%)     1Gi (14%)        1Gi (14%)      3h20m",
		"Allocated resources:",
		"  Resource  Requests      Limits",
		"  cpu       1250m (31%)   1500m (37%)",
		"  memory    1088Mi (15%)  1152Mi (16%)",
	)
	if strings.Contains(out, "agent-x") {
		t.Errorf("a succeeded pod is listed as non-terminated:\n%s", out)
	}
}

func TestDescribeNodeBare(t *testing.T) {
	wantLines(t, describe(t, testNodes()[2], Related{}),
		"Conditions:         <none>",
		"Addresses:          <none>",
		"  Desired:    <none>",
		"  Last Seen:  <never>",
		"  Queued:             0",
		"  Dropped:            0",
		"  Dropped by hub:     0",
		"Non-terminated Pods:  (0 in total)",
	)
	wantLines(t, describe(t, testNodes()[1], Related{}),
		"Unschedulable:      true",
		"  Architecture:               arm/v7",
		"  Desired:    12",
		"  Observed:   10",
	)
}

func TestDescribeDaemonSet(t *testing.T) {
	ds := testDaemonSets()[0]
	ds.Annotations = map[string]string{"note": "north site sensors"}
	out := describe(t, ds, Related{Pods: testPods()})
	wantLines(t, out,
		"Name:           sensor",
		"Namespace:      default",
		"Selector:       app=sensor",
		"Node-Selector:  kubernetes.io/arch=arm64,site=north",
		"Labels:         app=sensor",
		"Annotations:    note: north site sensors",
		"Desired Number of Nodes Scheduled: 3",
		"Current Number of Nodes Scheduled: 3",
		"Number of Nodes Scheduled with Up-to-date Pods: 1",
		"Number of Nodes Scheduled with Available Pods: 2",
		"Number of Nodes Scheduled with Ready Pods: 2",
		"Number of Nodes Misscheduled: 0",
		"Pods Status:  2 Running / 1 Waiting / 0 Succeeded / 0 Failed",
		"Pod Template:",
		"  Labels:  app=sensor",
		"  Containers:",
		"    sensor:",
		"      Image:      registry.local/sensor:2",
		"      Args:",
		"        --interval=5s",
		"      Limits:",
		"        cpu:     500m",
		"      Environment:",
		"        SITE:  north",
		"      Mounts:",
		"        /dev/i2c-1 from dev (ro)",
		"    shipper:",
		"      Image:        registry.local/shipper:1",
		"      Environment:  <none>",
		"  Volumes:",
		"    dev:",
		"      HostPathType:  CharDevice",
	)
	if strings.Contains(out, "State:") || strings.Contains(out, "Restart Count") {
		t.Errorf("a template has no container status:\n%s", out)
	}
}

func TestDescribeNamespace(t *testing.T) {
	got := describe(t, testNamespaces()[0], Related{})
	want := text(`
Name:         default
Labels:       kubernetes.io/metadata.name=default
Annotations:  <none>
Status:       Active
`)
	if got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

func TestDescribeUnsupported(t *testing.T) {
	var b bytes.Buffer
	if err := Describe(&b, &api.Pod{}, Related{}, testNow); err != nil {
		t.Errorf("empty pod: %v", err)
	}
	type other struct {
		api.TypeMeta
		api.ObjectMeta
	}
	if err := Describe(&b, &other{}, Related{}, testNow); err == nil {
		t.Error("unsupported type: no error")
	}
}
