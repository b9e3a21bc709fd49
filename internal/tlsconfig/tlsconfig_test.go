package tlsconfig

import (
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestClientTrustsOnlyTheGivenCA: a real handshake with a server whose certificate no
// system root signed fails without its CA, succeeds with it, and succeeds unverified.
func TestClientTrustsOnlyTheGivenCA(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer srv.Close()
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	get := func(p PEM, insecure bool) error {
		cfg, err := Client(p, insecure, "test")
		if err != nil {
			t.Fatal(err)
		}
		c := http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}
		resp, err := c.Get(srv.URL)
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	if err := get(PEM{}, false); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("without the CA: %v, want a certificate error", err)
	}
	if err := get(PEM{CA: ca}, false); err != nil {
		t.Errorf("with the CA: %v", err)
	}
	if err := get(PEM{}, true); err != nil {
		t.Errorf("unverified: %v", err)
	}
}

func TestClientRefusesBadMaterial(t *testing.T) {
	for _, tc := range []struct {
		name string
		p    PEM
		want string
	}{
		{"CA without a certificate", PEM{CA: []byte("not pem")}, "the test CA bundle holds no PEM certificate"},
		{"certificate without key", PEM{Cert: []byte("x")}, "needs its key"},
		{"key without certificate", PEM{Key: []byte("x")}, "needs its key"},
		{"broken pair", PEM{Cert: []byte("x"), Key: []byte("y")}, "load test client certificate"},
	} {
		if _, err := Client(tc.p, false, "test"); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}

func TestFilesRead(t *testing.T) {
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.crt")
	if err := os.WriteFile(ca, []byte("ca"), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := Files{CA: ca}.Read("search server")
	if err != nil || string(p.CA) != "ca" || p.Cert != nil || p.Key != nil {
		t.Fatalf("Read = %+v, %v", p, err)
	}
	_, err = Files{CA: ca, Cert: filepath.Join(dir, "missing.crt")}.Read("search server")
	if err == nil || !strings.Contains(err.Error(), "read search server client certificate") {
		t.Fatalf("missing file: %v", err)
	}
}
