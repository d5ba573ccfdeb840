package runtime

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/oci"
	"github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/flotilla-edge/flotilla/edge-agent/internal/reconcile"
)

// deviceOf describes the node at path (following symlinks) as the agent
// gives it to a container at containerPath.
func deviceOf(t *testing.T, path, containerPath string) reconcile.DeviceNode {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	typ := "c"
	if st.Mode&unix.S_IFMT == unix.S_IFBLK {
		typ = "b"
	}
	return reconcile.DeviceNode{HostPath: path, ContainerPath: containerPath, Type: typ,
		Major: int64(unix.Major(uint64(st.Rdev))), Minor: int64(unix.Minor(uint64(st.Rdev)))}
}

// TestDevicePseudoTerminal gives a container the slave of a pseudo-
// terminal pair, reached through a symlink as a udev or socat link is,
// at /dev/ttyUSB0; what the container writes there is read at the
// master, on the board. (A node made with mknod in the container's /dev
// would not open: a pty's slave opens only through devpts.)
func TestDevicePseudoTerminal(t *testing.T) {
	rt := newRuntime(t)
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer master.Close()
	if err := unix.IoctlSetPointerInt(int(master.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetUint32(int(master.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(t.TempDir(), "ttyUSB0")
	if err := os.Symlink(fmt.Sprintf("/dev/pts/%d", n), link); err != nil {
		t.Fatal(err)
	}
	c, log := runToExit(t, rt, reconcile.ContainerSpec{
		ID:      uniqueID("pty"),
		Command: []string{"sh", "-c", "echo from-container > /dev/ttyUSB0 && echo wrote; ls /dev"},
		Devices: []reconcile.DeviceNode{deviceOf(t, link, "/dev/ttyUSB0")},
	})
	if c.ExitCode != 0 || !strings.Contains(log, "wrote") {
		t.Fatalf("exit %d, log:\n%s", c.ExitCode, log)
	}
	got := make(chan string, 1)
	go func() {
		var all []byte
		buf := make([]byte, 256)
		for !strings.Contains(string(all), "from-container") {
			k, err := master.Read(buf)
			all = append(all, buf[:k]...)
			if err != nil {
				break
			}
		}
		got <- string(all)
	}()
	select {
	case s := <-got:
		if !strings.Contains(s, "from-container") {
			t.Fatalf("the board read %q from the terminal", s)
		}
	case <-time.After(30 * time.Second):
		master.Close() // ends the read
		t.Fatal("nothing arrived at the terminal's master")
	}
}

// TestDeviceCgroupRule: a device outside containerd's default set
// (/dev/kmsg, c 1:11) is usable by a container given it, and refused by
// the device cgroup to one that merely has the node mounted.
func TestDeviceCgroupRule(t *testing.T) {
	rt := newRuntime(t)
	kmsg, err := os.OpenFile("/dev/kmsg", os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer kmsg.Close()
	if _, err := kmsg.Seek(0, io.SeekEnd); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 6)
	rand.Read(b)
	token := "flotilla-devtest-" + hex.EncodeToString(b)
	// The shell's complaint goes to stdout with the verdict: one stream,
	// so the log holds both in order.
	script := "{ echo " + token + " > /dev/kmsg; } 2>&1 && echo wrote || echo denied"

	_, log := runToExit(t, rt, reconcile.ContainerSpec{ID: uniqueID("kmsg"), Command: []string{"sh", "-c", script},
		Devices: []reconcile.DeviceNode{deviceOf(t, "/dev/kmsg", "/dev/kmsg")}})
	if !strings.Contains(log, "wrote") {
		t.Fatalf("the container given /dev/kmsg could not write it: %q", log)
	}
	deadline := time.Now().Add(10 * time.Second)
	buf := make([]byte, 8192)
	for found := false; !found; {
		k, err := kmsg.Read(buf)
		switch {
		case err == nil:
			found = strings.Contains(string(buf[:k]), token)
		case errors.Is(err, syscall.EAGAIN):
			if time.Now().After(deadline) {
				t.Fatalf("%s never reached the kernel log", token)
			}
			time.Sleep(20 * time.Millisecond)
		case errors.Is(err, syscall.EPIPE): // records overwritten meanwhile: read on
		default:
			t.Fatal(err)
		}
	}

	_, log = runToExit(t, rt, reconcile.ContainerSpec{ID: uniqueID("kmsg-mount"), Command: []string{"sh", "-c", script},
		Mounts: []reconcile.Mount{{Source: "/dev/kmsg", Destination: "/dev/kmsg"}}})
	if !strings.Contains(log, "denied") || !strings.Contains(log, "Operation not permitted") {
		t.Fatalf("a container with the node but no cgroup rule: %q, want the write refused", log)
	}
}

// TestWithDevicesSpec: the spec carries a bind and an allow rule per
// device, after the rules it had; a device it cannot carry is refused.
func TestWithDevicesSpec(t *testing.T) {
	deny := specs.LinuxDeviceCgroup{Allow: false, Access: "rwm"}
	s := &specs.Spec{Linux: &specs.Linux{Resources: &specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{deny}}}}
	devs := []reconcile.DeviceNode{
		{HostPath: "/dev/serial/by-id/usb-FTDI", ContainerPath: "/dev/serial/by-id/usb-FTDI", Type: "c", Major: 188, Minor: 0},
		{HostPath: "/dev/sda", ContainerPath: "/dev/sda", Type: "b", Major: 8, Minor: 0},
	}
	if err := withDevices(devs)(context.Background(), nil, nil, s); err != nil {
		t.Fatal(err)
	}
	if len(s.Mounts) != 2 || s.Mounts[0].Source != devs[0].HostPath || s.Mounts[0].Destination != devs[0].ContainerPath ||
		s.Mounts[0].Type != "bind" || strings.Contains(strings.Join(s.Mounts[0].Options, ","), "nodev") {
		t.Fatalf("mounts %+v", s.Mounts)
	}
	rules := s.Linux.Resources.Devices
	if len(rules) != 3 || rules[0] != deny || !rules[1].Allow || rules[1].Type != "c" || *rules[1].Major != 188 || *rules[1].Minor != 0 ||
		rules[1].Access != "rwm" || rules[2].Type != "b" || *rules[2].Major != 8 {
		t.Fatalf("rules %+v", rules)
	}
	for _, bad := range []reconcile.DeviceNode{
		{HostPath: "/dev/x", ContainerPath: "/dev/x", Type: "p"},
		{HostPath: "dev/x", ContainerPath: "/dev/x", Type: "c"},
		{HostPath: "/dev/x", ContainerPath: "/etc/passwd", Type: "c"},
		{HostPath: "/dev/x", ContainerPath: "/dev/../etc/x", Type: "c"},
	} {
		if err := withDevices([]reconcile.DeviceNode{bad})(context.Background(), nil, nil, &specs.Spec{}); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
	var _ oci.SpecOpts = withDevices(nil)
}
