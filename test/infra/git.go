package infra

import (
	"bytes"
	"errors"
	"net"
	"net/http"
	"net/http/cgi"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// GitRepo is a real Git repository served over HTTP for the test, the way a Git host
// serves one: Git's own smart-HTTP server (`git http-backend`) behind Go's CGI handler,
// listening on an address pods reach. Commits are made in a working copy and pushed to the
// served (bare) repository, so a clone over HTTP sees exactly what was committed.
//
// Written here rather than taken from fluxcd/pkg/gittestserver: that server is go-git's
// implementation of the protocol, while `git http-backend` is the one Git hosts run, and
// net/http/cgi needs no new module.
type GitRepo struct {
	// URL is the repository's clone URL, e.g. http://10.244.0.1:41234/atlas.git.
	URL    string
	Branch string
	work   string
	git    string
	t      testing.TB
}

// NewGitRepo serves an empty repository (branch main) on host, for the test's lifetime.
func NewGitRepo(t testing.TB, host string) *GitRepo {
	t.Helper()
	gitBin, err := exec.LookPath("git")
	if err != nil {
		t.Fatalf("git is not installed, so there is no Git server for this test: apt-get install -y git (%v)", err)
	}
	root := t.TempDir()
	r := &GitRepo{Branch: "main", work: filepath.Join(root, "work"), git: gitBin, t: t}
	bare := filepath.Join(root, "served", "atlas.git")
	r.run(root, "init", "--quiet", "--bare", "--initial-branch", r.Branch, bare)
	r.run(root, "init", "--quiet", "--initial-branch", r.Branch, r.work)
	r.run(r.work, "remote", "add", "origin", bare)

	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatalf("listen for the Git server on %s: %v", host, err)
	}
	srv := &http.Server{Handler: &cgi.Handler{
		Path: gitBin,
		Args: []string{"http-backend"},
		Root: "/",
		Env: []string{
			"GIT_PROJECT_ROOT=" + filepath.Dir(bare),
			"GIT_HTTP_EXPORT_ALL=1", // serve without a git-daemon-export-ok file
		},
	}}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Logf("git server: %v", err)
		}
	}()
	t.Cleanup(func() { _ = srv.Close() })
	r.URL = "http://" + ln.Addr().String() + "/atlas.git"
	return r
}

// Write puts content at path (slash-separated, relative to the repository's root) in the
// working copy; Commit records it.
func (r *GitRepo) Write(path string, content []byte) {
	r.t.Helper()
	p := filepath.Join(r.work, filepath.FromSlash(path))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		r.t.Fatal(err)
	}
	if err := os.WriteFile(p, content, 0o644); err != nil {
		r.t.Fatal(err)
	}
}

// Remove deletes path from the working copy; Commit records it.
func (r *GitRepo) Remove(path string) {
	r.t.Helper()
	r.run(r.work, "rm", "--quiet", path)
}

// Commit commits every change of the working copy with message, pushes it to the served
// repository and returns the commit's SHA.
func (r *GitRepo) Commit(message string) string {
	r.t.Helper()
	r.run(r.work, "add", "--all")
	r.run(r.work, "-c", "user.name=e2e", "-c", "user.email=e2e@atlas.invalid", "commit", "--quiet", "-m", message)
	r.run(r.work, "push", "--quiet", "origin", r.Branch)
	return strings.TrimSpace(r.run(r.work, "rev-parse", "HEAD"))
}

func (r *GitRepo) run(dir string, args ...string) string {
	r.t.Helper()
	cmd := exec.Command(r.git, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "HOME="+dir) // no user or system config
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		r.t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return out.String()
}
