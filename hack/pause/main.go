// Command pause is the sandbox ("pause") container of the local single-node Kubernetes
// (hack/node.sh): the process that holds a pod's namespaces. It also packs itself into a
// container image, without a Docker engine or a registry, for containerd's sandbox_image:
//
//	pause                                 sleep until SIGINT or SIGTERM; as PID 1, reap zombies
//	pause --image OUT.tar --tag NAME      write a docker-archive tarball of this very binary
//	                                      (/pause, the entrypoint, user 65535) for
//	                                      `ctr -n k8s.io images import OUT.tar`
//	pause --dial HOST:PORT,...            open a TCP connection to each address, report, and
//	                                      exit 1 if any failed (hack/node-smoke.sh runs it in a
//	                                      pod to check what pods reach on the host)
//	pause --get URL [--token-file F] [--ca-file F]
//	                                      GET the URL (names resolved by the pod's DNS), with
//	                                      the token as a bearer token and F as the CA, print
//	                                      the status and the start of the body, exit 0 on 2xx
//	pause --serve ADDR                    answer every HTTP request on ADDR with 200 "ok"
//	                                      (the end-to-end tests reach it through a Service)
//
// Build it static: CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o pause ./hack/pause
package main

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"
)

func main() {
	out := flag.String("image", "", "write a docker-archive image of this binary to this file and exit")
	tag := flag.String("tag", "atlas.local/pause:1", "the image name recorded in the tarball")
	dial := flag.String("dial", "", "comma-separated host:port addresses to connect to, then exit")
	get := flag.String("get", "", "GET this URL, print the answer, exit 0 on 2xx")
	tokenFile := flag.String("token-file", "", "with --get: a bearer token file (e.g. the pod's ServiceAccount token)")
	caFile := flag.String("ca-file", "", "with --get: a PEM CA bundle to trust")
	serve := flag.String("serve", "", "serve HTTP on this address, answering 200 ok")
	flag.Parse()
	switch {
	case *dial != "":
		os.Exit(dialAll(strings.Split(*dial, ",")))
	case *get != "":
		os.Exit(httpGet(*get, *tokenFile, *caFile))
	case *serve != "":
		fmt.Fprintln(os.Stderr, http.ListenAndServe(*serve, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			_, _ = w.Write([]byte("ok\n"))
		})))
		os.Exit(1)
	}
	if *out != "" {
		if err := writeImage(*out, *tag); err != nil {
			fmt.Fprintln(os.Stderr, "pause:", err)
			os.Exit(1)
		}
		return
	}
	pause()
}

func dialAll(addrs []string) int {
	code := 0
	for _, a := range addrs {
		c, err := net.DialTimeout("tcp", a, 3*time.Second)
		if err != nil {
			fmt.Printf("%s: FAIL %v\n", a, err)
			code = 1
			continue
		}
		c.Close()
		fmt.Printf("%s: OK\n", a)
	}
	return code
}

func httpGet(url, tokenFile, caFile string) int {
	tr := &http.Transport{}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			fmt.Println("FAIL", err)
			return 1
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pem)
		tr.TLSClientConfig = &tls.Config{RootCAs: pool}
	}
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		fmt.Println("FAIL", err)
		return 1
	}
	if tokenFile != "" {
		token, err := os.ReadFile(tokenFile)
		if err != nil {
			fmt.Println("FAIL", err)
			return 1
		}
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	}
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		fmt.Println("FAIL", err)
		return 1
	}
	defer resp.Body.Close()
	body := make([]byte, 300)
	n, _ := io.ReadFull(resp.Body, body)
	fmt.Printf("%s %d %s\n", url, resp.StatusCode, strings.TrimSpace(string(body[:n])))
	if resp.StatusCode/100 != 2 {
		return 1
	}
	return 0
}

func pause() {
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for sig := range sigs {
		if sig != syscall.SIGCHLD {
			return
		}
		for { // reap every exited child (orphans are re-parented to PID 1)
			pid, err := syscall.Wait4(-1, nil, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}

// writeImage writes the classic `docker save` layout: manifest.json, the image config and
// one uncompressed layer holding /pause.
func writeImage(out, tag string) error {
	self, err := os.ReadFile("/proc/self/exe")
	if err != nil {
		return fmt.Errorf("reading this binary: %w", err)
	}
	epoch := time.Unix(0, 0).UTC()
	var layer bytes.Buffer
	lw := tar.NewWriter(&layer)
	if err := lw.WriteHeader(&tar.Header{Name: "pause", Mode: 0o755, Size: int64(len(self)), ModTime: epoch, Typeflag: tar.TypeReg, Format: tar.FormatPAX}); err != nil {
		return err
	}
	if _, err := lw.Write(self); err != nil {
		return err
	}
	if err := lw.Close(); err != nil {
		return err
	}
	layerSum := sha256.Sum256(layer.Bytes())
	layerID := hex.EncodeToString(layerSum[:])
	config, err := json.Marshal(map[string]any{
		"architecture": runtime.GOARCH,
		"os":           "linux",
		"created":      epoch.Format(time.RFC3339),
		"config":       map[string]any{"Entrypoint": []string{"/pause"}, "User": "65535:65535"},
		"rootfs":       map[string]any{"type": "layers", "diff_ids": []string{"sha256:" + layerID}},
		"history":      []map[string]any{{"created": epoch.Format(time.RFC3339), "created_by": "hack/pause --image"}},
	})
	if err != nil {
		return err
	}
	configSum := sha256.Sum256(config)
	configName := hex.EncodeToString(configSum[:]) + ".json"
	manifest, err := json.Marshal([]map[string]any{{
		"Config": configName, "RepoTags": []string{tag}, "Layers": []string{layerID + "/layer.tar"},
	}})
	if err != nil {
		return err
	}

	f, err := os.Create(out + ".tmp")
	if err != nil {
		return err
	}
	defer os.Remove(out + ".tmp")
	tw := tar.NewWriter(f)
	for _, e := range []struct {
		name string
		data []byte
	}{{layerID + "/layer.tar", layer.Bytes()}, {configName, config}, {"manifest.json", manifest}} {
		if err := tw.WriteHeader(&tar.Header{Name: e.name, Mode: 0o644, Size: int64(len(e.data)), ModTime: epoch, Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		if _, err := tw.Write(e.data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(out+".tmp", out)
}
