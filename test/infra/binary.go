package infra

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

var atlas struct {
	once sync.Once
	path string
	err  error
}

// AtlasBinary builds the atlas binary from the repository once per test process and
// returns its path; tests run it as users do, in processes of its own.
func AtlasBinary(t testing.TB) string {
	t.Helper()
	root := RepoRoot(t)
	atlas.once.Do(func() {
		dir, err := os.MkdirTemp("", "atlas-bin-")
		if err != nil {
			atlas.err = err
			return
		}
		atlas.path = filepath.Join(dir, "atlas")
		cmd := exec.Command("go", "build", "-o", atlas.path, ".")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			atlas.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if atlas.err != nil {
		t.Fatal(atlas.err)
	}
	return atlas.path
}
