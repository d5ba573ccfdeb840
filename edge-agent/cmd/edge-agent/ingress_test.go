package main

import "testing"

func TestIngressAddrs(t *testing.T) {
	for _, tc := range []struct {
		host              string
		http, https       int
		wantHTTP, wantTLS string
		wantErr           string
	}{
		{"", 80, 443, ":80", ":443", ""},
		{"192.168.1.20", 8080, 0, "192.168.1.20:8080", "", ""},
		{"", 0, 0, "", "", ""},
		{"gateway", 80, 443, "", "", `--ingress-address "gateway": want an IP address of this node, such as 192.168.1.20`},
		{"", 70000, 443, "", "", "--ingress-http-port 70000: want a port from 1 to 65535, or 0 for none"},
		{"", 443, 443, "", "", "--ingress-http-port and --ingress-https-port are both 443"},
	} {
		h, hs, err := ingressAddrs(tc.host, tc.http, tc.https)
		if tc.wantErr != "" {
			if err == nil || err.Error() != tc.wantErr {
				t.Errorf("%+v: %v, want %s", tc, err, tc.wantErr)
			}
			continue
		}
		if err != nil || h != tc.wantHTTP || hs != tc.wantTLS {
			t.Errorf("%+v: %q %q %v", tc, h, hs, err)
		}
	}
}
