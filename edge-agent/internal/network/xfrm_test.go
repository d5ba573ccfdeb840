package network

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// noXfrmEnv marks the child process TestConfigureWithoutXfrmNetlink runs
// itself in.
const noXfrmEnv = "FLOTILLA_TEST_NO_XFRM_NETLINK"

// TestConfigureWithoutXfrmNetlink: a kernel that has no xfrm netlink
// protocol (CONFIG_XFRM_USER off, as minimal board kernels build it; nor
// has qemu-user, which runs the emulated ARM agents) still gets its pod
// network: the node's side needs routing netlink (and nftables'), not
// IPsec's. The test runs itself again in a child process whose every
// xfrm netlink socket is refused by a seccomp filter, as such a kernel
// refuses it.
func TestConfigureWithoutXfrmNetlink(t *testing.T) {
	if os.Getenv(noXfrmEnv) == "" {
		needRoot(t)
		if runtime.GOARCH != "amd64" && runtime.GOARCH != "arm64" {
			t.Skip("the seccomp filter reads a little-endian syscall's arguments")
		}
		cmd := exec.Command(os.Args[0], "-test.run=^TestConfigureWithoutXfrmNetlink$", "-test.v", "-test.count=1")
		cmd.Env = append(os.Environ(), noXfrmEnv+"=1")
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "--- PASS: TestConfigureWithoutXfrmNetlink") {
			t.Fatalf("without xfrm netlink: %v\n%s", err, out)
		}
		return
	}
	refuseXfrmNetlink(t)
	if fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_XFRM); err == nil {
		unix.Close(fd)
		t.Fatal("an xfrm netlink socket opened despite the filter")
	} else if !errors.Is(err, unix.EPROTONOSUPPORT) {
		t.Fatalf("xfrm netlink socket: %v, want the protocol not supported", err)
	}
	b := newBoard(t)
	n := b.network(t)
	if err := n.Configure(context.Background(), wireNetwork()); err != nil {
		t.Fatalf("Configure without xfrm netlink: %v", err)
	}
	if out := b.node.ip(t, "-4", "addr", "show", "dev", BridgeName); !strings.Contains(out, "198.19.1.1/24") {
		t.Fatalf("bridge %s without its address:\n%s", BridgeName, out)
	}
}

// refuseXfrmNetlink makes every thread of the process, and what it runs,
// fail socket(AF_NETLINK, _, NETLINK_XFRM) with EPROTONOSUPPORT.
func refuseXfrmNetlink(t *testing.T) {
	t.Helper()
	const (
		ldAbs   = unix.BPF_LD | unix.BPF_W | unix.BPF_ABS
		jeq     = unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K
		ret     = unix.BPF_RET | unix.BPF_K
		offNr   = 0  // seccomp_data.nr
		offArg0 = 16 // seccomp_data.args[0], its low half on a little-endian machine
		offArg2 = 32 // seccomp_data.args[2]
	)
	filter := []unix.SockFilter{
		{Code: ldAbs, K: offNr},
		{Code: jeq, K: unix.SYS_SOCKET, Jt: 0, Jf: 5},
		{Code: ldAbs, K: offArg0},
		{Code: jeq, K: unix.AF_NETLINK, Jt: 0, Jf: 3},
		{Code: ldAbs, K: offArg2},
		{Code: jeq, K: unix.NETLINK_XFRM, Jt: 0, Jf: 1},
		{Code: ret, K: unix.SECCOMP_RET_ERRNO | uint32(unix.EPROTONOSUPPORT)},
		{Code: ret, K: unix.SECCOMP_RET_ALLOW},
	}
	prog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		t.Fatalf("no new privileges: %v", err)
	}
	if _, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, unix.SECCOMP_FILTER_FLAG_TSYNC, uintptr(unsafe.Pointer(&prog))); errno != 0 {
		t.Fatalf("seccomp: %v", errno)
	}
}
