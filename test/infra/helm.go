package infra

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

// EnvHelm is the variable with the path of the real helm binary.
const EnvHelm = "ATLAS_TEST_HELM"

// Helm returns the path of the real helm binary (hack/helm.sh builds it).
func Helm(t testing.TB) string {
	t.Helper()
	return Require(t, EnvHelm, "helm binary", "run `export "+EnvHelm+"=$(hack/helm.sh)` (builds Helm from the Go module proxy and caches it)")
}

// RunHelm runs helm with args and returns its standard output, or an error carrying its
// standard error.
func RunHelm(t testing.TB, env []string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(Helm(t), args...)
	cmd.Env = append(cmd.Environ(), env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("helm %v: %w: %s", args, err, errOut.String())
	}
	return out.String(), nil
}

// Objects splits a multi-document YAML stream into its objects (empty documents skipped).
func Objects(raw []byte) ([]*unstructured.Unstructured, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(raw), 4096)
	var out []*unstructured.Unstructured
	for {
		var obj map[string]any
		if err := dec.Decode(&obj); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return nil, err
		}
		if len(obj) == 0 {
			continue
		}
		out = append(out, &unstructured.Unstructured{Object: obj})
	}
}
