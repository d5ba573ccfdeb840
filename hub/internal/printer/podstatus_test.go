package printer

import (
	"testing"
	"time"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

func waiting(name, reason string) api.ContainerStatus {
	return api.ContainerStatus{Name: name, State: api.ContainerState{Waiting: &api.ContainerStateWaiting{Reason: reason}}}
}

func terminated(name, reason string, exit, signal int32) api.ContainerStatus {
	return api.ContainerStatus{Name: name, State: api.ContainerState{Terminated: &api.ContainerStateTerminated{
		Reason: reason, ExitCode: exit, Signal: signal, FinishedAt: ago(time.Minute),
	}}}
}

// TestPodStatusColumns checks READY, STATUS and RESTARTS against what
// kubectl's printPod shows for the same pod.
func TestPodStatusColumns(t *testing.T) {
	lastExit := func(cs api.ContainerStatus, restarts int32, finished time.Duration) api.ContainerStatus {
		cs.RestartCount = restarts
		cs.LastState = api.ContainerState{Terminated: &api.ContainerStateTerminated{ExitCode: 1, Reason: "Error", FinishedAt: ago(finished)}}
		return cs
	}
	readyCond := []api.PodCondition{{Type: api.PodReady, Status: api.ConditionTrue}}
	tests := []struct {
		name       string
		phase      api.PodPhase
		reason     string
		conditions []api.PodCondition
		spec       []string
		statuses   []api.ContainerStatus
		ready      string
		status     string
		restarts   string
	}{
		{"running", api.PodRunning, "", readyCond, []string{"a"}, []api.ContainerStatus{running("a", 0)}, "1/1", "Running", "0"},
		{"pending, no status yet", api.PodPending, "", nil, []string{"a", "b"}, nil, "0/2", "Pending", "0"},
		{"container creating", api.PodPending, "", nil, []string{"a"}, []api.ContainerStatus{waiting("a", "ContainerCreating")}, "0/1", "ContainerCreating", "0"},
		{"crash loop", api.PodRunning, "", nil, []string{"a"},
			[]api.ContainerStatus{lastExit(waiting("a", "CrashLoopBackOff"), 5, 5*time.Minute)}, "0/1", "CrashLoopBackOff", "5 (5m ago)"},
		{"image pull back-off", api.PodPending, "", nil, []string{"a"}, []api.ContainerStatus{waiting("a", "ImagePullBackOff")}, "0/1", "ImagePullBackOff", "0"},
		{"err image pull", api.PodPending, "", nil, []string{"a"}, []api.ContainerStatus{waiting("a", "ErrImagePull")}, "0/1", "ErrImagePull", "0"},
		{"completed", api.PodSucceeded, "", nil, []string{"a"}, []api.ContainerStatus{terminated("a", "Completed", 0, 0)}, "0/1", "Completed", "0"},
		{"error", api.PodFailed, "", nil, []string{"a"}, []api.ContainerStatus{terminated("a", "Error", 2, 0)}, "0/1", "Error", "0"},
		{"exit code without reason", api.PodFailed, "", nil, []string{"a"}, []api.ContainerStatus{terminated("a", "", 137, 0)}, "0/1", "ExitCode:137", "0"},
		{"signal without reason", api.PodFailed, "", nil, []string{"a"}, []api.ContainerStatus{terminated("a", "", 0, 9)}, "0/1", "Signal:9", "0"},
		{"pod reason", api.PodRunning, "NodeLost", nil, []string{"a"}, []api.ContainerStatus{running("a", 0)}, "1/1", "NodeLost", "0"},
		{"pod reason, no containers", api.PodFailed, "Evicted", nil, []string{"a"}, nil, "0/1", "Evicted", "0"},
		// The printer shows what the pod's status says; a NotReady node does
		// not change a pod that still reports Running.
		{"on a NotReady node", api.PodRunning, "", []api.PodCondition{{Type: api.PodReady, Status: api.ConditionFalse}}, []string{"a"},
			[]api.ContainerStatus{running("a", 0)}, "1/1", "Running", "0"},
		// kubectl lets container reasons replace the pod's reason.
		{"container reason wins over pod reason", api.PodRunning, "NodeLost", nil, []string{"a"},
			[]api.ContainerStatus{waiting("a", "CrashLoopBackOff")}, "0/1", "CrashLoopBackOff", "0"},
		{"first container has the last word", api.PodPending, "", nil, []string{"a", "b"},
			[]api.ContainerStatus{waiting("a", "ErrImagePull"), waiting("b", "ContainerCreating")}, "0/2", "ErrImagePull", "0"},
		{"one of two ready", api.PodRunning, "", nil, []string{"a", "b"},
			[]api.ContainerStatus{running("a", 0), waiting("b", "CrashLoopBackOff")}, "1/2", "CrashLoopBackOff", "0"},
		{"running but not ready", api.PodRunning, "", nil, []string{"a"},
			[]api.ContainerStatus{{Name: "a", State: api.ContainerState{Running: &api.ContainerStateRunning{}}}}, "0/1", "Running", "0"},
		{"completed with a running sidecar, pod ready", api.PodRunning, "", readyCond, []string{"a", "b"},
			[]api.ContainerStatus{terminated("a", "Completed", 0, 0), running("b", 0)}, "1/2", "Running", "0"},
		{"completed with a running sidecar, pod not ready", api.PodRunning, "", nil, []string{"a", "b"},
			[]api.ContainerStatus{terminated("a", "Completed", 0, 0), running("b", 0)}, "1/2", "NotReady", "0"},
		{"restarts summed, latest exit", api.PodRunning, "", readyCond, []string{"a", "b"},
			[]api.ContainerStatus{lastExit(running("a", 0), 2, 3*time.Hour), lastExit(running("b", 0), 1, 90*time.Second)}, "2/2", "Running", "3 (90s ago)"},
		{"restarts without a last state", api.PodRunning, "", readyCond, []string{"a"}, []api.ContainerStatus{running("a", 4)}, "1/1", "Running", "4"},
		{"unknown phase", api.PodUnknown, "", nil, []string{"a"}, nil, "0/1", "Unknown", "0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &api.Pod{
				Spec:   api.PodSpec{Containers: containers(tt.spec...)},
				Status: api.PodStatus{Phase: tt.phase, Reason: tt.reason, Conditions: tt.conditions, ContainerStatuses: tt.statuses},
			}
			p.Name, p.CreationTimestamp = "p", ago(time.Hour)
			_, row := podRow(p, false, testNow)
			got := [3]string{row[1], row[2], row[3]}
			if want := [3]string{tt.ready, tt.status, tt.restarts}; got != want {
				t.Errorf("READY, STATUS, RESTARTS = %q, want %q", got, want)
			}
		})
	}
}
