// Command devkube runs a local Kubernetes API server (envtest's kube-apiserver + etcd from
// $KUBEBUILDER_ASSETS) with the project's CRDs installed, writes an admin kubeconfig, and
// runs until interrupted. It is the control plane of the local demo stack (hack/demo.sh).
//
//	go run ./hack/devkube --write-kubeconfig /tmp/demo/kubeconfig
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

func main() {
	kubeconfig := flag.String("write-kubeconfig", "kubeconfig", "where to write the admin kubeconfig")
	crds := flag.String("crds", filepath.Join("config", "crd", "bases"), "directory of CRDs to install")
	flag.Parse()
	if err := run(*kubeconfig, *crds); err != nil {
		fmt.Fprintln(os.Stderr, "devkube:", err)
		os.Exit(1)
	}
}

func run(kubeconfig, crds string) error {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		return fmt.Errorf("KUBEBUILDER_ASSETS is not set: export KUBEBUILDER_ASSETS=$(hack/envtest-binaries.sh)")
	}
	env := &envtest.Environment{CRDDirectoryPaths: []string{crds}, ErrorIfCRDPathMissing: true}
	if _, err := env.Start(); err != nil {
		return fmt.Errorf("start kube-apiserver and etcd: %w", err)
	}
	defer func() {
		if err := env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "devkube: stop:", err)
		}
	}()
	admin, err := env.AddUser(envtest.User{Name: "atlas-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return fmt.Errorf("create admin user: %w", err)
	}
	cfg, err := admin.KubeConfig()
	if err != nil {
		return fmt.Errorf("admin kubeconfig: %w", err)
	}
	if err := os.WriteFile(kubeconfig, cfg, 0o600); err != nil {
		return fmt.Errorf("write kubeconfig: %w", err)
	}
	fmt.Printf("kube-apiserver up at %s; kubeconfig %s\n", env.Config.Host, kubeconfig)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	return nil
}
