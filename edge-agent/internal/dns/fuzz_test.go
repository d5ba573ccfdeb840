package dns

import (
	"strings"
	"testing"

	mdns "github.com/miekg/dns"
)

// Any message a client can send gets an answer that packs, and a name
// under the cluster domain is never forwarded (no upstream here: a
// forwarded name would be SERVFAIL).
func FuzzAnswer(f *testing.F) {
	for _, name := range []string{
		"web.default.svc.cluster.local.", "_http._tcp.web.default.svc.cluster.local.", "db-0.db.default.svc.cluster.local.",
		"10-42-0-1.default.pod.cluster.local.", "fd00--1.default.pod.cluster.local.", "cluster.local.", "svc.cluster.local.",
		"7.0.42.10.in-addr.arpa.", "www.example.org.",
	} {
		m := new(mdns.Msg)
		m.SetQuestion(name, mdns.TypeA)
		m.SetEdns0(1232, true)
		b, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, false)
	}
	s, err := New(Config{Addr: "127.0.0.1:0", Logger: quietLogger()})
	if err != nil {
		f.Fatal(err)
	}
	if err := s.Update("cluster.local", testServices()); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte, tcp bool) {
		req := new(mdns.Msg)
		if err := req.Unpack(data); err != nil {
			return
		}
		resp := s.answer(req, tcp)
		if _, err := resp.Pack(); err != nil {
			t.Fatalf("answer to %v does not pack: %v", req, err)
		}
		if !tcp && resp.Len() > 4096 {
			t.Fatalf("UDP answer of %d bytes", resp.Len())
		}
		if len(req.Question) == 1 && req.Opcode == mdns.OpcodeQuery && mdns.IsSubDomain("cluster.local.", strings.ToLower(req.Question[0].Name)) &&
			resp.Rcode == mdns.RcodeServerFailure {
			t.Fatalf("cluster name %q was forwarded", req.Question[0].Name)
		}
	})
}
