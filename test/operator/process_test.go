package operator_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/atlas-platform/atlas-operator/test/infra"
	"github.com/atlas-platform/atlas-operator/test/kube"
)

// startManagerProcess runs `atlas manager` (the real binary) against the envtest API
// server with args, as a user in system:masters; it is stopped (SIGINT, then SIGKILL
// after 15 s) when the test ends.
func startManagerProcess(t testing.TB, env *kube.Env, args ...string) *exec.Cmd {
	t.Helper()
	bin := infra.AtlasBinary(t)
	path := adminKubeconfig(t, env, "operator")
	cmd := exec.Command(bin, append([]string{"manager", "--kubeconfig", path, "--consumer-image", testImage}, args...)...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopProcess(cmd) })
	return cmd
}

// stopProcess interrupts the process and waits for it, killing it after 15 s.
func stopProcess(cmd *exec.Cmd) {
	if cmd.ProcessState != nil {
		return
	}
	_ = cmd.Process.Signal(os.Interrupt)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// adminKubeconfig writes a kubeconfig for the user name in system:masters on the envtest
// API server and returns its path.
func adminKubeconfig(t testing.TB, env *kube.Env, name string) string {
	t.Helper()
	user, err := env.Env.AddUser(envtest.User{Name: name, Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	kc, err := user.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, kc, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
