package pki

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func TestLoadCreatesPrivateFiles(t *testing.T) {
	clk := newClock()
	dir := filepath.Join(t.TempDir(), "pki")
	c, err := Load(Options{Dir: dir, Hosts: []string{"hub.example", "10.0.0.1", "localhost"}, Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(dir)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("dir mode %v, %v", fi.Mode(), err)
	}
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
		info, _ := e.Info()
		if info.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %04o, want 0600", e.Name(), info.Mode().Perm())
		}
	}
	want := []string{caCertFile, caKeyFile, hubClientCertFile, hubClientKeyFile, serverCertFile, serverKeyFile, signingKeyFile, signingPubFile}
	slices.Sort(want)
	if !slices.Equal(names, want) {
		t.Fatalf("files %v, want %v", names, want)
	}

	// The server certificate names the hosts and is for servers only.
	srv := c.Server.Leaf
	if !slices.Equal(certHosts(srv), []string{"10.0.0.1", "hub.example", "localhost"}) {
		t.Errorf("server hosts %v", certHosts(srv))
	}
	for _, host := range []string{"hub.example", "10.0.0.1"} {
		if _, err := srv.Verify(x509.VerifyOptions{DNSName: host, Roots: c.CA.Pool(), CurrentTime: clk.now()}); err != nil {
			t.Errorf("server certificate for %s: %v", host, err)
		}
	}
	if _, err := srv.Verify(x509.VerifyOptions{Roots: c.CA.Pool(), CurrentTime: clk.now(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err == nil {
		t.Error("the server certificate works as a client certificate")
	}
	hub := c.HubClient.Leaf
	if hub.Subject.CommonName != HubIdentity {
		t.Errorf("hub client CN %q", hub.Subject.CommonName)
	}
	if _, err := hub.Verify(x509.VerifyOptions{Roots: c.CA.Pool(), CurrentTime: clk.now(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("hub client certificate: %v", err)
	}
	// The public signing key file matches the key.
	pub, _ := os.ReadFile(filepath.Join(dir, signingPubFile))
	if !bytes.Equal(pub, c.SigningKeyPEM) {
		t.Error("signing.pub differs from the key")
	}
}

func TestLoadKeepsWhatItMade(t *testing.T) {
	clk := newClock()
	dir := filepath.Join(t.TempDir(), "pki")
	opts := Options{Dir: dir, Hosts: []string{"localhost"}, Now: clk.now}
	first, err := Load(opts)
	if err != nil {
		t.Fatal(err)
	}
	second, err := Load(opts)
	if err != nil {
		t.Fatal(err)
	}
	if !first.CA.Cert.Equal(second.CA.Cert) || !first.SigningKey.Equal(second.SigningKey) ||
		!first.Server.Leaf.Equal(second.Server.Leaf) || !first.HubClient.Leaf.Equal(second.HubClient.Leaf) {
		t.Fatal("a second Load changed the credentials")
	}

	// New host names: a new server certificate, the same CA and keys.
	opts.Hosts = []string{"localhost", "hub.example"}
	third, err := Load(opts)
	if err != nil {
		t.Fatal(err)
	}
	if third.Server.Leaf.Equal(first.Server.Leaf) || !slices.Contains(third.Server.Leaf.DNSNames, "hub.example") {
		t.Error("the server certificate was not reissued for the new host")
	}
	if !third.CA.Cert.Equal(first.CA.Cert) || !third.HubClient.Leaf.Equal(first.HubClient.Leaf) || !third.SigningKey.Equal(first.SigningKey) {
		t.Error("changing the hosts changed more than the server certificate")
	}

	// Close to expiry: reissued.
	clk.advance(ServerValidity - renewBefore + time.Hour)
	fourth, err := Load(opts)
	if err != nil {
		t.Fatal(err)
	}
	if fourth.Server.Leaf.Equal(third.Server.Leaf) || fourth.HubClient.Leaf.Equal(third.HubClient.Leaf) {
		t.Error("certificates near expiry were not renewed")
	}
	if !fourth.Server.Leaf.NotAfter.After(clk.now().Add(renewBefore)) {
		t.Error("the renewed certificate expires too soon")
	}
}

func TestLoadRefusesUnsafeOrBrokenFiles(t *testing.T) {
	clk := newClock()
	dir := filepath.Join(t.TempDir(), "pki")
	if _, err := Load(Options{Dir: dir, Now: clk.now}); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(dir, caKeyFile), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(Options{Dir: dir, Now: clk.now}); !errors.Is(err, ErrInsecureFile) {
		t.Fatalf("world-readable CA key: %v", err)
	}
	_ = os.Chmod(filepath.Join(dir, caKeyFile), 0o600)
	if err := os.Chmod(filepath.Join(dir, signingKeyFile), 0o640); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(Options{Dir: dir, Now: clk.now}); !errors.Is(err, ErrInsecureFile) {
		t.Fatalf("group-readable signing key: %v", err)
	}
	_ = os.Chmod(filepath.Join(dir, signingKeyFile), 0o600)

	// A CA key without its certificate is never replaced.
	if err := os.Remove(filepath.Join(dir, caCertFile)); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(Options{Dir: dir, Now: clk.now}); err == nil {
		t.Fatal("a CA key without its certificate was replaced")
	}

	// A damaged server certificate is replaced.
	dir2 := filepath.Join(t.TempDir(), "pki")
	if _, err := Load(Options{Dir: dir2, Now: clk.now}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir2, serverCertFile), []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(Options{Dir: dir2, Now: clk.now}); err != nil {
		t.Fatalf("damaged server certificate: %v", err)
	}
}

func TestLoadProvidedCA(t *testing.T) {
	clk := newClock()
	// An operator's CA, made elsewhere.
	ext, err := newCA(clk.now())
	if err != nil {
		t.Fatal(err)
	}
	extDir := t.TempDir()
	keyPEM, _ := EncodePrivateKey(ext.key)
	certPath, keyPath := filepath.Join(extDir, "my-ca.pem"), filepath.Join(extDir, "my-ca-key.pem")
	_ = os.WriteFile(certPath, ext.PEM, 0o644)
	_ = os.WriteFile(keyPath, keyPEM, 0o600)

	dir := filepath.Join(t.TempDir(), "pki")
	c, err := Load(Options{Dir: dir, CACertFile: certPath, CAKeyFile: keyPath, Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	if !c.CA.Cert.Equal(ext.Cert) {
		t.Fatal("the provided CA was not used")
	}
	if _, err := c.Server.Leaf.Verify(x509.VerifyOptions{Roots: ext.Pool(), CurrentTime: clk.now(), DNSName: "localhost"}); err != nil {
		t.Fatalf("server certificate not signed by the provided CA: %v", err)
	}
	if have, _ := exists(filepath.Join(dir, caKeyFile)); have {
		t.Error("the provided CA key was copied into the data directory")
	}
	// A key that is not the certificate's.
	other, _ := newCA(clk.now())
	otherKey, _ := EncodePrivateKey(other.key)
	_ = os.WriteFile(keyPath, otherKey, 0o600)
	if _, err := Load(Options{Dir: filepath.Join(t.TempDir(), "pki"), CACertFile: certPath, CAKeyFile: keyPath, Now: clk.now}); err == nil {
		t.Fatal("a CA key of another certificate was accepted")
	}
	if _, err := Load(Options{Dir: filepath.Join(t.TempDir(), "pki"), CACertFile: certPath, Now: clk.now}); err == nil {
		t.Fatal("a provided CA without a key was accepted")
	}
}

// TestTLSConfigs runs a handshake with the hub's configurations: a client
// needs a certificate from the hub CA.
func TestTLSConfigs(t *testing.T) {
	clk := &clock{t: time.Now()}
	c := testCreds(t, clk)
	handshake := func(client *tls.Config) error {
		ln, err := tls.Listen("tcp", "127.0.0.1:0", c.MQTTServerTLS())
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		go func() {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			defer conn.Close()
			_ = conn.(*tls.Conn).Handshake()
			_, _ = io.Copy(io.Discard, conn)
		}()
		conn, err := tls.Dial("tcp", ln.Addr().String(), client)
		if err != nil {
			return err
		}
		defer conn.Close()
		// TLS 1.3 reports a refused client certificate on the first read.
		_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		_, err = conn.Read(make([]byte, 1))
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			return nil
		}
		return err
	}
	if err := handshake(c.HubClientTLS("localhost")); err != nil {
		t.Fatalf("hub client: %v", err)
	}
	noCert := c.HubClientTLS("localhost")
	noCert.Certificates = nil
	if err := handshake(noCert); err == nil {
		t.Fatal("a client without a certificate was accepted")
	}
	stranger := testCreds(t, clk) // another hub's CA
	foreign := c.HubClientTLS("localhost")
	foreign.Certificates = []tls.Certificate{stranger.HubClient}
	if err := handshake(foreign); err == nil {
		t.Fatal("a client certificate from another CA was accepted")
	}
}

func TestServerPresentsItsCA(t *testing.T) {
	c := testCreds(t, newClock())
	if len(c.Server.Certificate) != 2 || !bytes.Equal(c.Server.Certificate[1], c.CA.Cert.Raw) {
		t.Fatal("the server chain does not end with the CA, which agents pin")
	}
}
