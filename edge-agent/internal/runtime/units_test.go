package runtime

import (
	"slices"
	"testing"
	"time"

	apievents "github.com/containerd/containerd/api/events"
	"github.com/containerd/containerd/events"
	"github.com/containerd/typeurl/v2"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"google.golang.org/protobuf/types/known/timestamppb"
)

func TestProcessArgs(t *testing.T) {
	img := ocispec.ImageConfig{Entrypoint: []string{"/entry"}, Cmd: []string{"cmd1", "cmd2"}}
	for _, tc := range []struct {
		name          string
		cfg           ocispec.ImageConfig
		command, args []string
		want          []string
	}{
		{"image", img, nil, nil, []string{"/entry", "cmd1", "cmd2"}},
		{"args replace cmd", img, nil, []string{"a"}, []string{"/entry", "a"}},
		{"command drops cmd", img, []string{"/bin/x"}, nil, []string{"/bin/x"}},
		{"both", img, []string{"/bin/x"}, []string{"a"}, []string{"/bin/x", "a"}},
		{"cmd only image", ocispec.ImageConfig{Cmd: []string{"sh"}}, nil, nil, []string{"sh"}},
		{"nothing", ocispec.ImageConfig{}, nil, nil, []string{}},
	} {
		if got := processArgs(tc.cfg, tc.command, tc.args); !slices.Equal(got, tc.want) {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestCPUShares(t *testing.T) {
	for milli, want := range map[int64]uint64{1: 2, 10: 10, 250: 256, 1000: 1024, 2500: 2560} {
		if got := cpuShares(milli); got != want {
			t.Errorf("cpuShares(%d) = %d, want %d", milli, got, want)
		}
	}
}

func TestDecodeExitIgnoresExecs(t *testing.T) {
	at := time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC)
	envelope := func(e *apievents.TaskExit) *events.Envelope {
		anyEv, err := typeurl.MarshalAny(e)
		if err != nil {
			t.Fatal(err)
		}
		return &events.Envelope{Topic: "/tasks/exit", Event: anyEv}
	}
	got, ok := decodeExit(envelope(&apievents.TaskExit{ContainerID: "c", ID: "c", ExitStatus: 3, ExitedAt: timestamppb.New(at)}))
	if !ok || got.ContainerID != "c" || got.ExitCode != 3 || !got.ExitedAt.Equal(at) {
		t.Errorf("main exit: %+v, %v", got, ok)
	}
	if _, ok := decodeExit(envelope(&apievents.TaskExit{ContainerID: "c", ID: "probe-1", ExitStatus: 1})); ok {
		t.Error("exec'd process exit forwarded")
	}
	if _, ok := decodeExit(envelope(&apievents.TaskExit{ContainerID: "c", ID: "c", ExitStatus: 137})); !ok {
		t.Error("exit without time dropped")
	}
}
