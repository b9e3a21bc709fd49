// Package image_test builds the container image the way `make image` does (a static linux
// binary, then hack/image) and inspects the tarball: its config, its filesystem and the
// binary in it. No Docker engine, registry or network is used.
package image_test

import (
	"archive/tar"
	"bufio"
	"bytes"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

const (
	testVersion = "v0.0.0-imagetest"
	testTag     = "atlas-operator:imagetest"
	epoch       = 1700000000
	caBundle    = "/etc/ssl/certs/ca-certificates.crt"
)

func TestImage(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the image's binary is built for and run on linux")
	}
	if testing.Short() {
		t.Skip("-short: builds the static binary and the image (~25 s warm, minutes on a cold build cache)")
	}
	root := repoRoot(t)
	tmp := t.TempDir()

	// The same build as `make image`: static, stripped, version stamped.
	binary := filepath.Join(tmp, "atlas-linux-"+runtime.GOARCH)
	goCmd(t, root, []string{"CGO_ENABLED=0", "GOOS=linux", "GOARCH=" + runtime.GOARCH},
		"build", "-trimpath",
		"-ldflags", "-s -w -X github.com/atlas-platform/atlas-operator/internal/version.Version="+testVersion,
		"-o", binary, ".")
	// hack/image built once (what `go run ./hack/image` does), run a few times below.
	tool := filepath.Join(tmp, "image-tool")
	goCmd(t, root, nil, "build", "-o", tool, "./hack/image")

	buildImage := func(t *testing.T, output, format string) {
		t.Helper()
		cmd := exec.CommandContext(t.Context(), tool,
			"--binary", binary, "--output", output, "--tag", testTag,
			"--version", testVersion, "--arch", runtime.GOARCH, "--format", format)
		cmd.Env = append(os.Environ(), "SOURCE_DATE_EPOCH="+strconv.Itoa(epoch))
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("hack/image --format %s: %v\n%s", format, err, out)
		}
		t.Logf("hack/image: %s", bytes.TrimSpace(out))
	}

	ociTar := filepath.Join(tmp, "dist", "atlas-image.tar")
	buildImage(t, ociTar, "oci")
	wantBinary := sha256File(t, binary)
	_, caErr := os.Stat(caBundle)
	withCA := caErr == nil // hack/image copies the build host's bundle when it has one

	t.Run("oci layout", func(t *testing.T) {
		img, annotations := openOCIArchive(t, ociTar)
		if got := annotations["org.opencontainers.image.ref.name"]; got != "imagetest" {
			t.Errorf("index ref.name annotation = %q, want %q", got, "imagetest")
		}
		if got := annotations["io.containerd.image.name"]; got != "docker.io/library/"+testTag {
			t.Errorf("index io.containerd.image.name annotation = %q", got)
		}
		mt, err := img.MediaType()
		if err != nil || mt != types.OCIManifestSchema1 {
			t.Errorf("manifest media type = %q, %v; want %q", mt, err, types.OCIManifestSchema1)
		}
		checkConfig(t, img, withCA)
		files := readFS(t, img)
		checkFilesystem(t, files, withCA)
		checkBinary(t, files["atlas"], wantBinary)
	})

	t.Run("docker load reads the oci archive", func(t *testing.T) {
		// manifest.json beside index.json is what `docker load` reads; go-containerregistry's
		// tarball package reads it the same way.
		img, err := tarball.ImageFromPath(ociTar, nil)
		if err != nil {
			t.Fatalf("reading %s as a docker tarball: %v", ociTar, err)
		}
		ociImg, _ := openOCIArchive(t, ociTar)
		wantCfg, err := ociImg.ConfigName()
		if err != nil {
			t.Fatal(err)
		}
		if got, err := img.ConfigName(); err != nil || got != wantCfg {
			t.Errorf("manifest.json config = %v, %v; want the OCI manifest's %v", got, err, wantCfg)
		}
		checkConfig(t, img, withCA)
	})

	t.Run("reproducible", func(t *testing.T) {
		again := filepath.Join(t.TempDir(), "again.tar")
		buildImage(t, again, "oci")
		if a, b := sha256File(t, ociTar), sha256File(t, again); a != b {
			t.Errorf("two builds of the same binary differ: %s vs %s", a, b)
		}
	})

	t.Run("docker format", func(t *testing.T) {
		dockerTar := filepath.Join(t.TempDir(), "atlas-image-docker.tar")
		buildImage(t, dockerTar, "docker")
		img, err := tarball.ImageFromPath(dockerTar, nil)
		if err != nil {
			t.Fatalf("reading %s: %v", dockerTar, err)
		}
		mt, err := img.MediaType()
		if err != nil || mt != types.DockerManifestSchema2 {
			t.Errorf("manifest media type = %q, %v; want %q", mt, err, types.DockerManifestSchema2)
		}
		checkConfig(t, img, withCA)
		files := readFS(t, img)
		checkFilesystem(t, files, withCA)
		if got := sha256Hex(files["atlas"].content); got != wantBinary {
			t.Errorf("/atlas sha256 = %s, want %s", got, wantBinary)
		}
	})

	t.Run("refuses a dynamically linked binary", func(t *testing.T) {
		dynamic := ""
		for _, p := range []string{"/bin/ls", "/usr/bin/env", "/bin/sh"} {
			if isDynamicELF(p) {
				dynamic = p
				break
			}
		}
		if dynamic == "" {
			t.Skip("no dynamically linked binary on this host")
		}
		out, err := exec.CommandContext(t.Context(), tool, "--binary", dynamic,
			"--output", filepath.Join(t.TempDir(), "x.tar"), "--arch", runtime.GOARCH).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "dynamically linked") {
			t.Errorf("hack/image --binary %s: err=%v, output %q; want a refusal naming dynamic linking", dynamic, err, out)
		}
	})
}

// checkConfig asserts the runtime config: a non-root numeric user, /atlas manager, labels.
func checkConfig(t *testing.T, img v1.Image, withCA bool) {
	t.Helper()
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatalf("reading the image config: %v", err)
	}
	c := cf.Config
	if !slices.Equal(c.Entrypoint, []string{"/atlas"}) {
		t.Errorf("Entrypoint = %q, want [/atlas]", c.Entrypoint)
	}
	if !slices.Equal(c.Cmd, []string{"manager"}) {
		t.Errorf("Cmd = %q, want [manager]", c.Cmd)
	}
	uid, _, _ := strings.Cut(c.User, ":")
	if c.User != "65532:65532" || uid == "" || uid == "0" || uid == "root" {
		t.Errorf("User = %q, want the numeric non-root 65532:65532", c.User)
	}
	if c.WorkingDir != "/" {
		t.Errorf("WorkingDir = %q, want /", c.WorkingDir)
	}
	if cf.OS != "linux" || cf.Architecture != runtime.GOARCH {
		t.Errorf("platform = %s/%s, want linux/%s", cf.OS, cf.Architecture, runtime.GOARCH)
	}
	for k, want := range map[string]string{
		"org.opencontainers.image.version": testVersion,
		"org.opencontainers.image.title":   "atlas-operator",
		"org.opencontainers.image.source":  "https://github.com/atlas-platform/atlas-operator",
	} {
		if got := c.Labels[k]; got != want {
			t.Errorf("label %s = %q, want %q", k, got, want)
		}
	}
	if withCA && !slices.Contains(c.Env, "SSL_CERT_FILE="+caBundle) {
		t.Errorf("Env = %q, want SSL_CERT_FILE=%s", c.Env, caBundle)
	}
	if want := time.Unix(epoch, 0).UTC(); !cf.Created.Time.Equal(want) {
		t.Errorf("Created = %v, want SOURCE_DATE_EPOCH %v", cf.Created.Time, want)
	}
}

type file struct {
	hdr     *tar.Header
	content []byte
}

// readFS flattens the image's layers (mutate.Extract) into path -> entry, paths without
// the leading slash.
func readFS(t *testing.T, img v1.Image) map[string]file {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	files := map[string]file{}
	tr := tar.NewReader(rc)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("reading the image filesystem: %v", err)
		}
		name := strings.TrimPrefix(path.Clean("/"+hdr.Name), "/")
		content, err := io.ReadAll(tr)
		if err != nil {
			t.Fatalf("reading %s from the image: %v", name, err)
		}
		files[name] = file{hdr: hdr, content: content}
	}
	if len(files) == 0 {
		t.Fatal("the image filesystem is empty")
	}
	return files
}

func checkFilesystem(t *testing.T, files map[string]file, withCA bool) {
	t.Helper()
	atlas, ok := files["atlas"]
	switch {
	case !ok:
		t.Fatal("/atlas is missing from the image")
	case atlas.hdr.Typeflag != tar.TypeReg:
		t.Errorf("/atlas is tar type %q, want a regular file", atlas.hdr.Typeflag)
	case atlas.hdr.Mode&0o111 == 0:
		t.Errorf("/atlas mode %o is not executable", atlas.hdr.Mode)
	case atlas.hdr.Uid != 0 || atlas.hdr.Gid != 0:
		t.Errorf("/atlas owned by %d:%d, want 0:0 (the non-root user must not be able to replace it)", atlas.hdr.Uid, atlas.hdr.Gid)
	}

	// No shell and nothing else to execute: no /bin, /sbin or /usr at all.
	for _, shell := range []string{"bin/sh", "bin/bash", "bin/ash", "bin/dash", "busybox", "bin/busybox", "usr/bin/sh"} {
		if _, ok := files[shell]; ok {
			t.Errorf("the image contains a shell: /%s", shell)
		}
	}
	for name := range files {
		top, _, _ := strings.Cut(name, "/")
		if top == "bin" || top == "sbin" || top == "usr" || top == "lib" || top == "lib64" {
			t.Errorf("the image contains /%s (want no system directories)", name)
		}
	}
	// The regular files are exactly these; only /atlas is executable or ELF.
	want := []string{"atlas", "etc/group", "etc/nsswitch.conf", "etc/passwd"}
	if withCA {
		want = append(want, strings.TrimPrefix(caBundle, "/"))
	}
	var got []string
	for name, f := range files {
		if f.hdr.Typeflag == tar.TypeDir {
			continue
		}
		got = append(got, name)
		if name != "atlas" && (f.hdr.Mode&0o111 != 0 || bytes.HasPrefix(f.content, []byte("\x7fELF"))) {
			t.Errorf("/%s is executable or an ELF binary; only /atlas may be", name)
		}
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("files in the image = %q, want %q", got, want)
	}

	if tmp, ok := files["tmp"]; !ok || tmp.hdr.Typeflag != tar.TypeDir || tmp.hdr.Mode&0o7777 != 0o1777 {
		t.Errorf("/tmp missing or not a 1777 directory: %+v", tmp.hdr)
	}
	if withCA {
		if ca := files[strings.TrimPrefix(caBundle, "/")]; !bytes.Contains(ca.content, []byte("-----BEGIN CERTIFICATE-----")) {
			t.Errorf("%s in the image holds no PEM certificate", caBundle)
		}
	}
	if got := lookupID(files["etc/passwd"].content, "65532", 2); got != "nonroot" {
		t.Errorf("/etc/passwd maps uid 65532 to %q, want nonroot:\n%s", got, files["etc/passwd"].content)
	}
	if got := lookupID(files["etc/group"].content, "65532", 2); got != "nonroot" {
		t.Errorf("/etc/group maps gid 65532 to %q, want nonroot:\n%s", got, files["etc/group"].content)
	}
}

// checkBinary: /atlas is the binary that was built, statically linked, and it runs.
func checkBinary(t *testing.T, atlas file, wantSHA string) {
	t.Helper()
	if got := sha256Hex(atlas.content); got != wantSHA {
		t.Fatalf("/atlas sha256 = %s, want the built binary's %s", got, wantSHA)
	}
	f, err := elf.NewFile(bytes.NewReader(atlas.content))
	if err != nil {
		t.Fatalf("/atlas is not ELF: %v", err)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("/atlas has a PT_INTERP program header: dynamically linked, needs a libc the image lacks")
		}
	}
	if libs, err := f.ImportedLibraries(); err != nil || len(libs) > 0 {
		t.Errorf("/atlas imports shared libraries %q (%v); want none", libs, err)
	}

	// Run the copy taken out of the image.
	exe := filepath.Join(t.TempDir(), "atlas")
	if err := os.WriteFile(exe, atlas.content, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(t.Context(), exe, "version")
	cmd.Dir = t.TempDir()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("/atlas version: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "atlas "+testVersion) {
		t.Errorf("/atlas version printed %q, want it to name %s", out, testVersion)
	}
	t.Logf("/atlas version: %s", bytes.TrimSpace(out))
}

// lookupID returns the name of the passwd/group line whose field idx (0-based) is id.
func lookupID(content []byte, id string, idx int) string {
	sc := bufio.NewScanner(bytes.NewReader(content))
	for sc.Scan() {
		fields := strings.Split(sc.Text(), ":")
		if len(fields) > idx && fields[idx] == id {
			return fields[0]
		}
	}
	return ""
}

// openOCIArchive unpacks the tarball and opens it as an OCI image layout holding one image.
func openOCIArchive(t *testing.T, tarPath string) (v1.Image, map[string]string) {
	t.Helper()
	dir := t.TempDir()
	untar(t, tarPath, dir)
	if _, err := os.Stat(filepath.Join(dir, "oci-layout")); err != nil {
		t.Fatalf("no oci-layout file in %s: %v", tarPath, err)
	}
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatalf("opening the OCI layout: %v", err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatalf("reading index.json: %v", err)
	}
	if len(im.Manifests) != 1 {
		t.Fatalf("index.json lists %d manifests, want 1", len(im.Manifests))
	}
	desc := im.Manifests[0]
	img, err := idx.Image(desc.Digest)
	if err != nil {
		t.Fatalf("opening image %s: %v", desc.Digest, err)
	}
	return img, desc.Annotations
}

func untar(t *testing.T, tarPath, dir string) {
	t.Helper()
	f, err := os.Open(tarPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatalf("reading %s: %v", tarPath, err)
		}
		if !filepath.IsLocal(hdr.Name) {
			t.Fatalf("%s: entry %q escapes the archive root", tarPath, hdr.Name)
		}
		dst := filepath.Join(dir, hdr.Name)
		switch hdr.Typeflag {
		case tar.TypeDir:
			err = os.MkdirAll(dst, 0o755)
		case tar.TypeReg:
			err = writeFrom(dst, tr)
		default:
			t.Fatalf("%s: unexpected entry %q of type %q", tarPath, hdr.Name, hdr.Typeflag)
		}
		if err != nil {
			t.Fatalf("unpacking %s: %v", hdr.Name, err)
		}
	}
}

func writeFrom(dst string, r io.Reader) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	f, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func isDynamicELF(p string) bool {
	f, err := elf.Open(p)
	if err != nil {
		return false
	}
	defer f.Close()
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			return true
		}
	}
	return false
}

func goCmd(t *testing.T, dir string, env []string, args ...string) {
	t.Helper()
	// go test puts its own toolchain's bin directory first on PATH.
	cmd := exec.CommandContext(t.Context(), "go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	start := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	t.Logf("go %s: %s", args[0], time.Since(start).Round(time.Millisecond))
}

func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
}

func sha256File(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return sha256Hex(b)
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
