// Package kube starts a real Kubernetes API server (envtest's kube-apiserver + etcd) for
// tests, with the project's CRDs installed. It is apart from package infra so tests that
// need no Kubernetes do not compile its dependencies.
package kube

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	atlasv1alpha1 "github.com/atlas-platform/atlas-operator/api/v1alpha1"
	"github.com/atlas-platform/atlas-operator/test/infra"
)

// Env is a running envtest control plane (kube-apiserver + etcd) with the project's
// CRDs installed.
type Env struct {
	Env    *envtest.Environment
	Config *rest.Config
	Client client.Client
	Scheme *runtime.Scheme
}

// Start starts a real kube-apiserver and etcd from $KUBEBUILDER_ASSETS, installs the
// CRDs under config/crd/bases and stops everything when the test ends.
func Start(t testing.TB) *Env {
	t.Helper()
	infra.Require(t, infra.EnvKubebuilderAssets, "kube-apiserver and etcd", howToGetAssets)
	env, err := StartEnv(infra.RepoRoot(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Errorf("stop envtest: %v", err)
		}
	})
	return env
}

const howToGetAssets = "build them with `export KUBEBUILDER_ASSETS=$(hack/envtest-binaries.sh)` (about 12 minutes the first time, cached afterwards)"

// StartEnv is Start for code without a test at hand (a TestMain sharing one control
// plane between a package's tests); the caller stops it.
func StartEnv(repoRoot string) (*Env, error) {
	assets := os.Getenv(infra.EnvKubebuilderAssets)
	if assets == "" {
		return nil, fmt.Errorf("%s is not set, so there is no kube-apiserver to talk to: run `make test`, or %s", infra.EnvKubebuilderAssets, howToGetAssets)
	}
	for _, bin := range []string{"kube-apiserver", "etcd"} {
		if _, err := os.Stat(filepath.Join(assets, bin)); err != nil {
			return nil, fmt.Errorf("%s not found in KUBEBUILDER_ASSETS=%s: run hack/envtest-binaries.sh", bin, assets)
		}
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, err
	}
	if err := atlasv1alpha1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory: assets,
		CRDDirectoryPaths:     []string{filepath.Join(repoRoot, "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		Scheme:                scheme,
	}
	cfg, err := env.Start()
	if err != nil {
		return nil, fmt.Errorf("start envtest (kube-apiserver + etcd from %s): %w", assets, err)
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		_ = env.Stop()
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	return &Env{Env: env, Config: cfg, Client: c, Scheme: scheme}, nil
}

// Stop stops the API server and etcd.
func (e *Env) Stop() error { return e.Env.Stop() }

// Kubectl is the kubectl built with the envtest binaries.
func (e *Env) Kubectl() string { return filepath.Join(e.Env.BinaryAssetsDirectory, "kubectl") }
