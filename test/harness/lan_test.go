package harness_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flotilla-edge/flotilla/test/harness"
)

// TestLAN builds a site LAN with two hosts: a server on one answers a
// client on the other through DialIn, many times, and the server, a
// process tied to the test (killed if the thread that started it ends),
// outlives every dial; with the uplink cut the hosts still reach each
// other and not the host, and once it is back they reach the host again;
// and a host's reboot does not cut the other off the host.
func TestLAN(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: network namespaces")
	}
	pid := os.Getpid() % 10000
	site, err := harness.NewSite(fmt.Sprintf("h%d-lan", pid), pid*7%harness.SiteSlots+1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = site.Close() })
	lan, err := harness.NewLAN(site, "192.168.77.0/24")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lan.Close() })
	server, err := lan.Join(site.Name+"-s", netip.MustParseAddr("192.168.77.10"))
	if err != nil {
		t.Fatal(err)
	}
	client, err := lan.Join(site.Name+"-c", netip.MustParseAddr("192.168.77.20"))
	if err != nil {
		t.Fatal(err)
	}
	busybox, err := harness.FindBinary("busybox")
	if err != nil {
		t.Fatal(err)
	}
	www := t.TempDir()
	if err := os.WriteFile(filepath.Join(www, "index.html"), []byte("served\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	bin, args := server.Wrap(busybox, "httpd", "-f", "-p", "8080", "-h", www)
	p, err := harness.StartTiedProcess("httpd", filepath.Join(t.TempDir(), "httpd.log"), bin, args...)
	if err != nil {
		t.Fatal(err)
	}
	stopOnCleanup(t, p)
	get := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c, err := client.Dial(ctx, "tcp", "192.168.77.10:8080")
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(c, "GET / HTTP/1.0\r\n\r\n"); err != nil {
			return err
		}
		b, err := io.ReadAll(c)
		if err != nil {
			return err
		}
		if !strings.HasSuffix(string(b), "served\n") {
			return fmt.Errorf("answer %q", b)
		}
		return nil
	}
	if err := p.WaitReady(context.Background(), func(context.Context) error { return get() }); err != nil {
		t.Fatal(err)
	}
	// Many dials from many goroutines (as an HTTP client makes them),
	// each on whichever thread the scheduler gives it.
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			for range 100 {
				if err := get(); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			select {
			case <-p.Exited():
				t.Fatalf("the server, a tied process, was killed by a dial: %v", err)
			default:
			}
			t.Fatal(err)
		}
	}
	// The host, through the router.
	ln, err := net.Listen("tcp", site.HostIP+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	reachHost := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		c, err := client.Dial(ctx, "tcp", ln.Addr().String())
		if err != nil {
			return err
		}
		return c.Close()
	}
	if err := reachHost(); err != nil {
		t.Fatalf("the host is not reachable from the LAN: %v", err)
	}
	if err := site.Cut(); err != nil {
		t.Fatal(err)
	}
	if err := get(); err != nil {
		t.Fatalf("the LAN does not work with the uplink cut: %v", err)
	}
	if err := reachHost(); err == nil {
		t.Fatal("the host is reachable from the LAN with the uplink cut")
	}
	if err := site.Restore(); err != nil {
		t.Fatal(err)
	}
	// The router's end carries traffic once the kernel has noticed its
	// carrier (up to a second later): a dial or two may fail before.
	deadline := time.Now().Add(10 * time.Second)
	for err := reachHost(); err != nil; err = reachHost() {
		if time.Now().After(deadline) {
			t.Fatalf("the host is not reachable from the LAN once the uplink is back: %v", err)
		}
	}

	// A host's reboot (its link to the bridge deleted and made again)
	// must not change the router's address on the LAN: the other hosts'
	// neighbour tables hold it, and would send the router frames it then
	// bridges instead of routing.
	for i := range 3 {
		if err := reachHost(); err != nil {
			t.Fatal(err)
		}
		if err := server.Reboot(); err != nil {
			t.Fatal(err)
		}
		if err := reachHost(); err != nil {
			t.Fatalf("after the other host's reboot %d, the client does not reach the host: %v", i+1, err)
		}
	}
}
