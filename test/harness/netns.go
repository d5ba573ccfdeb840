package harness

import (
	"fmt"
	"os/exec"
	"strings"
)

// Site is a network namespace joined to the host by a veth pair: an edge
// site whose uplink a test can really cut (packets are dropped, not a
// process stopped). Site n gets the n-th /30 of 198.18.0.0/15, the range
// reserved for benchmark networks (RFC 2544), so tests never talk to a
// real private network: the host end is its first address, the site end
// its second.
type Site struct {
	Name   string
	HostIP string // the host's address on the site's link
	SiteIP string // the site's address
	hostIf string
	siteIf string
}

// SiteSlots is how many sites (distinct /30 links) NewSite can number.
const SiteSlots = 32767

// NewSite creates the namespace and its link; n (1..SiteSlots) picks the
// /30. Concurrent test processes must pick different names and numbers.
func NewSite(name string, n int) (*Site, error) {
	if n < 1 || n > SiteSlots {
		return nil, fmt.Errorf("site number %d: want 1..%d", n, SiteSlots)
	}
	if _, err := FindBinary("ip"); err != nil {
		return nil, err
	}
	base := 198<<24 | 18<<16 | n*4
	addr := func(off int) string {
		v := base + off
		return fmt.Sprintf("%d.%d.%d.%d", v>>24&255, v>>16&255, v>>8&255, v&255)
	}
	s := &Site{
		Name: name, HostIP: addr(1), SiteIP: addr(2),
		hostIf: "vh-" + name, siteIf: "vs-" + name,
	}
	if len(s.hostIf) > 15 {
		return nil, fmt.Errorf("site name %q is too long for an interface name (max 12 characters)", name)
	}
	// Leftovers from a crashed run.
	_ = run("ip", "netns", "del", name)
	_ = run("ip", "link", "del", s.hostIf)
	steps := [][]string{
		{"ip", "netns", "add", name},
		{"ip", "link", "add", s.hostIf, "type", "veth", "peer", "name", s.siteIf},
		{"ip", "link", "set", s.siteIf, "netns", name},
		{"ip", "addr", "add", s.HostIP + "/30", "dev", s.hostIf},
		{"ip", "link", "set", s.hostIf, "up"},
		{"ip", "netns", "exec", name, "ip", "addr", "add", s.SiteIP + "/30", "dev", s.siteIf},
		{"ip", "netns", "exec", name, "ip", "link", "set", s.siteIf, "up"},
		{"ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"},
	}
	for _, st := range steps {
		if err := run(st...); err != nil {
			s.Close()
			return nil, fmt.Errorf("create site %s: %w", name, err)
		}
	}
	return s, nil
}

// Cut takes the link down: from now on no packet crosses it.
func (s *Site) Cut() error { return run("ip", "link", "set", s.hostIf, "down") }

// Restore brings the link back.
func (s *Site) Restore() error {
	if err := run("ip", "link", "set", s.hostIf, "up"); err != nil {
		return err
	}
	return run("ip", "netns", "exec", s.Name, "ip", "link", "set", s.siteIf, "up")
}

// Wrap returns the argv that runs bin with args inside the site.
func (s *Site) Wrap(bin string, args ...string) (string, []string) {
	ip, err := FindBinary("ip")
	if err != nil {
		ip = "ip"
	}
	return ip, append([]string{"netns", "exec", s.Name, bin}, args...)
}

// Close deletes the namespace, and with it the link.
func (s *Site) Close() error {
	err := run("ip", "netns", "del", s.Name)
	_ = run("ip", "link", "del", s.hostIf) // normally gone with the namespace
	return err
}

func run(argv ...string) error {
	bin, err := FindBinary(argv[0])
	if err != nil {
		return err
	}
	out, err := exec.Command(bin, argv[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
