package dns

import (
	"slices"
	"strings"
	"testing"

	mdns "github.com/miekg/dns"

	"github.com/flotilla-edge/flotilla/pkg/wire"
)

// The cluster's names, answered as CoreDNS's kubernetes plugin answers
// them, over UDP and TCP, with no upstream at all (an offline site).
func TestClusterNames(t *testing.T) {
	s := startServer(t, Config{}, testServices())
	cases := []struct {
		name  string
		qtype uint16
		rcode int
		want  []string // answer section, TTLs left out
		extra []string
	}{
		{"web.default.svc.cluster.local.", mdns.TypeA, mdns.RcodeSuccess,
			[]string{"web.default.svc.cluster.local. 0 IN A 10.43.0.10"}, nil},
		{"db.default.svc.cluster.local.", mdns.TypeA, mdns.RcodeSuccess,
			[]string{"db.default.svc.cluster.local. 0 IN A 10.42.0.7", "db.default.svc.cluster.local. 0 IN A 10.42.0.8"}, nil},
		{"db-0.db.default.svc.cluster.local.", mdns.TypeA, mdns.RcodeSuccess,
			[]string{"db-0.db.default.svc.cluster.local. 0 IN A 10.42.0.7"}, nil},
		{"10-42-0-8.db.default.svc.cluster.local.", mdns.TypeA, mdns.RcodeSuccess,
			[]string{"10-42-0-8.db.default.svc.cluster.local. 0 IN A 10.42.0.8"}, nil},
		{"bare.kube-system.svc.cluster.local.", mdns.TypeA, mdns.RcodeSuccess,
			[]string{"bare.kube-system.svc.cluster.local. 0 IN A 10.43.0.20"}, nil},
		{"10-42-1-3.default.pod.cluster.local.", mdns.TypeA, mdns.RcodeSuccess,
			[]string{"10-42-1-3.default.pod.cluster.local. 0 IN A 10.42.1.3"}, nil},
		// SRV of a named port: the Service's name and port.
		{"_http._tcp.web.default.svc.cluster.local.", mdns.TypeSRV, mdns.RcodeSuccess,
			[]string{"_http._tcp.web.default.svc.cluster.local. 0 IN SRV 0 100 8099 web.default.svc.cluster.local."},
			[]string{"web.default.svc.cluster.local. 0 IN A 10.43.0.10"}},
		{"_dns._udp.web.default.svc.cluster.local.", mdns.TypeSRV, mdns.RcodeSuccess,
			[]string{"_dns._udp.web.default.svc.cluster.local. 0 IN SRV 0 100 53 web.default.svc.cluster.local."},
			[]string{"web.default.svc.cluster.local. 0 IN A 10.43.0.10"}},
		// SRV of the Service itself: every port.
		{"web.default.svc.cluster.local.", mdns.TypeSRV, mdns.RcodeSuccess,
			[]string{
				"web.default.svc.cluster.local. 0 IN SRV 0 50 8099 web.default.svc.cluster.local.",
				"web.default.svc.cluster.local. 0 IN SRV 0 50 53 web.default.svc.cluster.local.",
			},
			[]string{"web.default.svc.cluster.local. 0 IN A 10.43.0.10"}},
		// Headless: each ready endpoint by hostname or dashed address, at its pod's port.
		{"_pg._tcp.db.default.svc.cluster.local.", mdns.TypeSRV, mdns.RcodeSuccess,
			[]string{
				"_pg._tcp.db.default.svc.cluster.local. 0 IN SRV 0 50 15432 db-0.db.default.svc.cluster.local.",
				"_pg._tcp.db.default.svc.cluster.local. 0 IN SRV 0 50 15432 10-42-0-8.db.default.svc.cluster.local.",
			},
			[]string{"db-0.db.default.svc.cluster.local. 0 IN A 10.42.0.7", "10-42-0-8.db.default.svc.cluster.local. 0 IN A 10.42.0.8"}},
		// NODATA: the name exists, not with this type.
		{"web.default.svc.cluster.local.", mdns.TypeAAAA, mdns.RcodeSuccess, nil, nil},
		{"web.default.svc.cluster.local.", mdns.TypeTXT, mdns.RcodeSuccess, nil, nil},
		{"bare.kube-system.svc.cluster.local.", mdns.TypeSRV, mdns.RcodeSuccess, nil, nil},
		{"default.svc.cluster.local.", mdns.TypeA, mdns.RcodeSuccess, nil, nil},
		{"svc.cluster.local.", mdns.TypeA, mdns.RcodeSuccess, nil, nil},
		{"cluster.local.", mdns.TypeA, mdns.RcodeSuccess, nil, nil},
		// NXDOMAIN.
		{"nope.default.svc.cluster.local.", mdns.TypeA, mdns.RcodeNameError, nil, nil},
		{"web.nons.svc.cluster.local.", mdns.TypeA, mdns.RcodeNameError, nil, nil},
		{"nons.svc.cluster.local.", mdns.TypeA, mdns.RcodeNameError, nil, nil},
		{"empty.default.svc.cluster.local.", mdns.TypeA, mdns.RcodeNameError, nil, nil},
		{"_https._tcp.web.default.svc.cluster.local.", mdns.TypeSRV, mdns.RcodeNameError, nil, nil},
		{"_http._udp.web.default.svc.cluster.local.", mdns.TypeSRV, mdns.RcodeNameError, nil, nil},
		{"db-9.db.default.svc.cluster.local.", mdns.TypeA, mdns.RcodeNameError, nil, nil},
		{"web.default.cluster.local.", mdns.TypeA, mdns.RcodeNameError, nil, nil},
		{"a.b.c.web.default.svc.cluster.local.", mdns.TypeA, mdns.RcodeNameError, nil, nil},
		{"not-an-ip.default.pod.cluster.local.", mdns.TypeA, mdns.RcodeNameError, nil, nil},
		// The search path's misses that glibc walks through for "web".
		{"web.default.svc.cluster.local.default.svc.cluster.local.", mdns.TypeA, mdns.RcodeNameError, nil, nil},
	}
	for _, network := range []string{"udp", "tcp"} {
		for _, tc := range cases {
			t.Run(network+" "+mdns.TypeToString[tc.qtype]+" "+tc.name, func(t *testing.T) {
				resp := ask(t, s.addr, network, tc.name, tc.qtype)
				if resp.Rcode != tc.rcode {
					t.Fatalf("rcode %s, want %s", mdns.RcodeToString[resp.Rcode], mdns.RcodeToString[tc.rcode])
				}
				if !resp.Authoritative {
					t.Error("not authoritative")
				}
				if got := answers(resp); !slices.Equal(got, tc.want) {
					t.Errorf("answer:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
				}
				var extra []string
				for _, rr := range resp.Extra {
					extra = append(extra, rrString(rr))
				}
				if !slices.Equal(extra, tc.extra) {
					t.Errorf("extra:\n%s\nwant:\n%s", strings.Join(extra, "\n"), strings.Join(tc.extra, "\n"))
				}
				for _, rr := range append(resp.Answer, resp.Extra...) {
					if rr.Header().Ttl != 5 {
						t.Errorf("TTL %d, want 5: %s", rr.Header().Ttl, rr)
					}
				}
				if len(tc.want) == 0 {
					// Negative answers carry the zone's SOA, as CoreDNS's.
					if len(resp.Ns) != 1 {
						t.Fatalf("authority %v, want the SOA", resp.Ns)
					}
					soa, ok := resp.Ns[0].(*mdns.SOA)
					if !ok || soa.Hdr.Name != "cluster.local." || soa.Ns != "ns.dns.cluster.local." || soa.Mbox != "hostmaster.cluster.local." ||
						soa.Minttl != 5 || soa.Hdr.Ttl != 5 || soa.Refresh != 7200 || soa.Retry != 1800 || soa.Expire != 86400 {
						t.Errorf("authority %v, want CoreDNS's SOA of cluster.local.", resp.Ns[0])
					}
				}
			})
		}
	}
}

func TestClusterNamesIgnoreCase(t *testing.T) {
	s := startServer(t, Config{}, testServices())
	resp := ask(t, s.addr, "udp", "WEB.Default.SVC.Cluster.LOCAL.", mdns.TypeA)
	want := []string{"WEB.Default.SVC.Cluster.LOCAL. 0 IN A 10.43.0.10"}
	if got := answers(resp); resp.Rcode != mdns.RcodeSuccess || !slices.Equal(got, want) {
		t.Errorf("%s %v, want %v", mdns.RcodeToString[resp.Rcode], got, want)
	}
	resp = ask(t, s.addr, "udp", "_HTTP._TCP.web.default.svc.cluster.local.", mdns.TypeSRV)
	if len(resp.Answer) != 1 {
		t.Errorf("SRV with upper-case labels: %v", resp.Answer)
	}
	resp = ask(t, s.addr, "udp", "DB-0.db.default.svc.cluster.local.", mdns.TypeA)
	if len(resp.Answer) != 1 {
		t.Errorf("endpoint name with upper case: %v", resp.Answer)
	}
}

func TestClusterZoneRecords(t *testing.T) {
	s := startServer(t, Config{}, testServices())
	resp := ask(t, s.addr, "udp", "cluster.local.", mdns.TypeSOA)
	if len(resp.Answer) != 1 || resp.Answer[0].Header().Rrtype != mdns.TypeSOA {
		t.Errorf("SOA: %v", resp.Answer)
	}
	resp = ask(t, s.addr, "udp", "cluster.local.", mdns.TypeNS)
	if got := answers(resp); !slices.Equal(got, []string{"cluster.local. 0 IN NS ns.dns.cluster.local."}) || len(resp.Extra) != 1 {
		t.Errorf("NS: %v extra %v", got, resp.Extra)
	}
	resp = ask(t, s.addr, "udp", "ns.dns.cluster.local.", mdns.TypeA)
	if got := answers(resp); !slices.Equal(got, []string{"ns.dns.cluster.local. 0 IN A 127.0.0.1"}) {
		t.Errorf("ns.dns: %v", got)
	}
	resp = ask(t, s.addr, "udp", "dns-version.cluster.local.", mdns.TypeTXT)
	if got := answers(resp); !slices.Equal(got, []string{`dns-version.cluster.local. 0 IN TXT "1.1.0"`}) {
		t.Errorf("dns-version: %v", got)
	}
}

// Reverse lookups of the cluster's addresses are answered; of any other
// address they are forwarded (here: no upstream, SERVFAIL).
func TestClusterPTR(t *testing.T) {
	s := startServer(t, Config{}, testServices())
	for name, want := range map[string]string{
		"10.0.43.10.in-addr.arpa.": "web.default.svc.cluster.local.",
		"7.0.42.10.in-addr.arpa.":  "db-0.db.default.svc.cluster.local.",
		"8.0.42.10.in-addr.arpa.":  "10-42-0-8.db.default.svc.cluster.local.",
	} {
		resp := ask(t, s.addr, "udp", name, mdns.TypePTR)
		if len(resp.Answer) != 1 || resp.Answer[0].(*mdns.PTR).Ptr != want {
			t.Errorf("PTR %s: %v, want %s", name, resp.Answer, want)
		}
	}
	if resp := ask(t, s.addr, "udp", "1.2.0.192.in-addr.arpa.", mdns.TypePTR); resp.Rcode != mdns.RcodeServerFailure {
		t.Errorf("PTR of an outside address: %s, want SERVFAIL (forwarded, no upstream)", mdns.RcodeToString[resp.Rcode])
	}
}

func TestReverseAddr(t *testing.T) {
	for _, s := range []string{"10.42.0.7", "0.0.0.0", "255.255.255.255", "fd00::7", "2001:db8:1:2:3:4:5:6"} {
		a := mustAddr(s)
		rev, err := mdns.ReverseAddr(s)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := reverseAddr(rev)
		if !ok || got != a {
			t.Errorf("reverseAddr(%s) = %v %v, want %v", rev, got, ok, a)
		}
	}
	for _, bad := range []string{"1.2.3.in-addr.arpa.", "256.1.2.3.in-addr.arpa.", "01.1.2.3.in-addr.arpa.", "x.1.2.3.in-addr.arpa.", "1.ip6.arpa.", "example.org."} {
		if _, ok := reverseAddr(bad); ok {
			t.Errorf("reverseAddr(%s) accepted", bad)
		}
	}
}

// A large headless answer does not fit 512 bytes of UDP: truncated, and
// whole over TCP.
func TestClusterTruncation(t *testing.T) {
	svc := wire.Service{Namespace: "default", Name: "many", ClusterIP: "None",
		Ports: []wire.ServicePort{{Name: "p", Protocol: "TCP", Port: 1, TargetPort: "1"}}}
	for i := range 100 {
		svc.Endpoints = append(svc.Endpoints, wire.Endpoint{IP: "10.42.1." + itoa(i+1), Ready: true})
	}
	s := startServer(t, Config{}, []wire.Service{svc})
	udp := ask(t, s.addr, "udp", "many.default.svc.cluster.local.", mdns.TypeA)
	if !udp.Truncated || len(udp.Answer) >= 100 {
		t.Errorf("UDP: truncated %v with %d answers, want TC and fewer than 100", udp.Truncated, len(udp.Answer))
	}
	tcp := ask(t, s.addr, "tcp", "many.default.svc.cluster.local.", mdns.TypeA)
	if tcp.Truncated || len(tcp.Answer) != 100 {
		t.Errorf("TCP: truncated %v with %d answers, want all 100", tcp.Truncated, len(tcp.Answer))
	}
	// With EDNS and a 4096-byte buffer, 100 A records fit in UDP.
	m := new(mdns.Msg)
	m.SetQuestion("many.default.svc.cluster.local.", mdns.TypeA)
	m.SetEdns0(4096, false)
	resp, _, err := (&mdns.Client{Timeout: failAfter}).Exchange(m, s.addr)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Truncated || len(resp.Answer) != 100 || resp.IsEdns0() == nil {
		t.Errorf("EDNS UDP: truncated %v, %d answers, OPT %v", resp.Truncated, len(resp.Answer), resp.IsEdns0())
	}
}

func TestUpdateRejectsBadEntries(t *testing.T) {
	s := startServer(t, Config{}, testServices())
	services := append(testServices(),
		wire.Service{Namespace: "default", Name: "badip", ClusterIP: "10.43.0.999"},
		wire.Service{Namespace: "default", Name: "Bad_Name", ClusterIP: "10.43.0.30"},
		wire.Service{Namespace: "default", Name: "web", ClusterIP: "10.43.0.31"},
		wire.Service{Namespace: "default", Name: "hl", ClusterIP: "None", Endpoints: []wire.Endpoint{
			{IP: "10.42.0.300", Name: "hl-0", Namespace: "default", Ready: true}, {IP: "10.42.0.30", Ready: true}}},
	)
	err := s.Update("cluster.local", services)
	for _, want := range []string{`default/badip: clusterIP "10.43.0.999"`, `default/Bad_Name: name "Bad_Name"`, "default/web: listed twice", `default/hl: endpoint default/hl-0: address "10.42.0.300"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v, want it to name %s", err, want)
		}
	}
	// The good ones are served, the first web kept.
	if got := answers(ask(t, s.addr, "udp", "web.default.svc.cluster.local.", mdns.TypeA)); !slices.Equal(got, []string{"web.default.svc.cluster.local. 0 IN A 10.43.0.10"}) {
		t.Errorf("web: %v", got)
	}
	if got := answers(ask(t, s.addr, "udp", "hl.default.svc.cluster.local.", mdns.TypeA)); !slices.Equal(got, []string{"hl.default.svc.cluster.local. 0 IN A 10.42.0.30"}) {
		t.Errorf("hl: %v", got)
	}
	// A bad domain changes nothing.
	if err := s.Update("bad..domain", nil); err == nil || !strings.Contains(err.Error(), "bad..domain") {
		t.Errorf("bad domain: err = %v", err)
	}
	if resp := ask(t, s.addr, "udp", "web.default.svc.cluster.local.", mdns.TypeA); len(resp.Answer) != 1 {
		t.Errorf("after a bad domain: %v", resp.Answer)
	}
}

func TestOtherClusterDomain(t *testing.T) {
	s := startServer(t, Config{}, nil)
	if err := s.Update("Edge.Example.", testServices()); err != nil {
		t.Fatal(err)
	}
	if got := answers(ask(t, s.addr, "udp", "web.default.svc.edge.example.", mdns.TypeA)); !slices.Equal(got, []string{"web.default.svc.edge.example. 0 IN A 10.43.0.10"}) {
		t.Errorf("web under edge.example: %v", got)
	}
	// cluster.local is now an outside name: forwarded (no upstream here).
	if resp := ask(t, s.addr, "udp", "web.default.svc.cluster.local.", mdns.TypeA); resp.Rcode != mdns.RcodeServerFailure {
		t.Errorf("cluster.local after the switch: %s", mdns.RcodeToString[resp.Rcode])
	}
}

func TestMalformedQueries(t *testing.T) {
	s := startServer(t, Config{}, testServices())
	c := &mdns.Client{Timeout: failAfter}
	m := new(mdns.Msg)
	m.SetQuestion("web.default.svc.cluster.local.", mdns.TypeA)
	m.Question = append(m.Question, m.Question[0])
	resp, _, err := c.Exchange(m, s.addr)
	if err != nil || resp.Rcode != mdns.RcodeFormatError {
		t.Errorf("two questions: %v %v, want FORMERR", resp, err)
	}
	m = new(mdns.Msg)
	m.SetNotify("cluster.local.")
	resp, _, err = c.Exchange(m, s.addr)
	if err != nil || resp.Rcode != mdns.RcodeNotImplemented {
		t.Errorf("NOTIFY: %v %v, want NOTIMP", resp, err)
	}
	m = new(mdns.Msg)
	m.SetQuestion("web.default.svc.cluster.local.", mdns.TypeA)
	m.Question[0].Qclass = mdns.ClassCHAOS
	resp, _, err = c.Exchange(m, s.addr)
	if err != nil || resp.Rcode != mdns.RcodeRefused {
		t.Errorf("CHAOS class: %v %v, want REFUSED", resp, err)
	}
}
