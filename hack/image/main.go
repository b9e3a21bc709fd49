// Command image builds the atlas container image without a Docker engine, a registry or a
// base image (`make image`). The image has one layer, made here in memory:
//
//	/atlas                                the static binary (0755, root-owned)
//	/etc/passwd, /etc/group               root, nobody and nonroot (65532)
//	/etc/nsswitch.conf                    "hosts: files dns" for Go's resolver
//	/etc/ssl/certs/ca-certificates.crt    the build host's CA bundle, when it has one
//	/tmp (1777), /home/nonroot, /root
//
// There is no shell and no other executable. The container runs as 65532:65532 with
// ENTRYPOINT ["/atlas"] and CMD ["manager"], like the Dockerfile's distroless image.
// Timestamps come from SOURCE_DATE_EPOCH (0 when unset), so the same binary gives the
// same image digest.
//
// --path, --cmd and --title pack another static program into the same image instead
// (hack/flux.sh packs Flux's controllers for the e2e tests this way): the binary goes to
// --path, which is also the ENTRYPOINT, and --cmd is the CMD (none when empty).
//
// Output formats (--format):
//
//	oci     (default) an OCI image layout in a tar, plus a Docker manifest.json that points
//	        into the same blobs — the shape `docker save` writes since Docker 25. Accepted by
//	        `skopeo copy oci-archive:…`, `podman load`, `ctr images import`, `docker load`
//	        and `crane push` (via tarball).
//	docker  the classic `docker save` tarball (manifest.json, gzip layers). Accepted by
//	        `docker load`, `podman load`, `skopeo copy docker-archive:…`, `crane push`.
//
// Usage:
//
//	go run ./hack/image --binary bin/atlas-linux-amd64 --output dist/atlas-image.tar \
//	    --tag atlas-operator:dev --version v1.2.3 --arch amd64
package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"debug/elf"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

const (
	nonrootUID = 65532
	// BinaryPath is where the atlas binary lives in the image.
	binaryPath = "/atlas"
	// CABundlePath is where the CA bundle goes in the image (Go reads it there by default).
	caBundlePath = "/etc/ssl/certs/ca-certificates.crt"
)

type options struct {
	binary   string
	output   string
	tag      string
	version  string
	arch     string
	format   string
	caBundle string
	source   string
	// path, cmd and title let the same builder pack another static program (the e2e tests'
	// Flux controllers, hack/flux.sh) into the same minimal image.
	path  string
	cmd   string
	title string
}

func main() {
	var o options
	defaultArch := os.Getenv("GOARCH")
	if defaultArch == "" {
		defaultArch = runtime.GOARCH
	}
	flag.StringVar(&o.binary, "binary", "", "the static linux binary to put in the image at --path (required)")
	flag.StringVar(&o.path, "path", binaryPath, "where the binary goes in the image; also the ENTRYPOINT")
	flag.StringVar(&o.cmd, "cmd", "manager", "the image's CMD: space-separated arguments, none when empty")
	flag.StringVar(&o.title, "title", "atlas-operator", "the title label (org.opencontainers.image.title)")
	flag.StringVar(&o.output, "output", "dist/atlas-image.tar", "the image tarball to write")
	flag.StringVar(&o.tag, "tag", "atlas-operator:dev", "the image name recorded in the tarball")
	flag.StringVar(&o.version, "version", "dev", "the version label (org.opencontainers.image.version)")
	flag.StringVar(&o.arch, "arch", defaultArch, "the image architecture (a GOARCH value); must match the binary")
	flag.StringVar(&o.format, "format", "oci", "oci: OCI layout tarball (+ Docker manifest.json); docker: `docker save` tarball")
	flag.StringVar(&o.caBundle, "ca-bundle", caBundlePath, "the CA bundle to copy into the image; skipped with a warning when missing")
	flag.StringVar(&o.source, "source", "https://github.com/atlas-platform/atlas-operator", "the source label (org.opencontainers.image.source)")
	flag.Parse()
	if flag.NArg() > 0 {
		fatal(fmt.Errorf("unexpected arguments: %q", flag.Args()))
	}
	if err := run(o); err != nil {
		fatal(err)
	}
}

func fatal(err error) {
	fmt.Fprintf(os.Stderr, "image: %v\n", err)
	os.Exit(1)
}

func run(o options) error {
	if o.binary == "" {
		return errors.New("--binary is required")
	}
	if !path.IsAbs(o.path) || path.Clean(o.path) != o.path || strings.Count(o.path, "/") != 1 {
		return fmt.Errorf("--path %q: want a file at the image's root, like /atlas", o.path)
	}
	if o.format != "oci" && o.format != "docker" {
		return fmt.Errorf("--format %q: want oci or docker", o.format)
	}
	tag, err := name.NewTag(o.tag)
	if err != nil {
		return fmt.Errorf("--tag %q: %w", o.tag, err)
	}
	epoch, err := sourceDateEpoch()
	if err != nil {
		return err
	}
	bin, err := os.ReadFile(o.binary)
	if err != nil {
		return fmt.Errorf("reading the binary: %w", err)
	}
	if err := checkStaticELF(bin, o.arch); err != nil {
		return fmt.Errorf("%s: %w", o.binary, err)
	}
	ca, err := os.ReadFile(o.caBundle)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		fmt.Fprintf(os.Stderr, "image: warning: no CA bundle at %s; the image will have no trusted CAs\n", o.caBundle)
		ca = nil
	case err != nil:
		return fmt.Errorf("reading the CA bundle: %w", err)
	}

	layerTar, err := rootFS(strings.TrimPrefix(o.path, "/"), bin, ca, epoch)
	if err != nil {
		return fmt.Errorf("building the root filesystem: %w", err)
	}
	img, err := buildImage(layerTar, ca != nil, o, epoch)
	if err != nil {
		return err
	}
	digest, err := img.Digest()
	if err != nil {
		return fmt.Errorf("computing the image digest: %w", err)
	}

	if dir := filepath.Dir(o.output); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("creating the output directory: %w", err)
		}
	}
	tmp := o.output + ".tmp"
	defer os.Remove(tmp)
	if o.format == "docker" {
		if err := tarball.WriteToFile(tmp, tag, img); err != nil {
			return fmt.Errorf("writing the docker tarball: %w", err)
		}
	} else if err := writeOCIArchive(tmp, tag, img, epoch); err != nil {
		return fmt.Errorf("writing the OCI archive: %w", err)
	}
	if err := os.Rename(tmp, o.output); err != nil {
		return fmt.Errorf("moving the tarball into place: %w", err)
	}
	fmt.Printf("wrote %s (%s format): %s linux/%s %s\n", o.output, o.format, tag, o.arch, digest)
	return nil
}

// sourceDateEpoch is SOURCE_DATE_EPOCH (reproducible-builds.org), or the Unix epoch.
func sourceDateEpoch() (time.Time, error) {
	s := os.Getenv("SOURCE_DATE_EPOCH")
	if s == "" {
		return time.Unix(0, 0).UTC(), nil
	}
	sec, err := strconv.ParseInt(s, 10, 64)
	if err != nil || sec < 0 {
		return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH=%q: want seconds since 1970", s)
	}
	return time.Unix(sec, 0).UTC(), nil
}

var elfMachines = map[string]elf.Machine{
	"amd64":   elf.EM_X86_64,
	"arm64":   elf.EM_AARCH64,
	"arm":     elf.EM_ARM,
	"386":     elf.EM_386,
	"ppc64le": elf.EM_PPC64,
	"s390x":   elf.EM_S390,
	"riscv64": elf.EM_RISCV,
}

// checkStaticELF refuses a binary that could not run in an image without a libc: not ELF,
// another architecture, or dynamically linked (a PT_INTERP program header).
func checkStaticELF(bin []byte, arch string) error {
	f, err := elf.NewFile(bytes.NewReader(bin))
	if err != nil {
		return fmt.Errorf("not an ELF binary (build it with GOOS=linux): %w", err)
	}
	defer f.Close()
	if want, ok := elfMachines[arch]; ok && f.Machine != want {
		return fmt.Errorf("built for %s, but --arch is %s", f.Machine, arch)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return errors.New("dynamically linked (has an ELF interpreter); build it with CGO_ENABLED=0")
		}
	}
	return nil
}

// rootFS is the image's only layer: an uncompressed tar with deterministic headers.
func rootFS(binName string, bin, ca []byte, mtime time.Time) ([]byte, error) {
	type entry struct {
		path    string
		mode    int64
		uid     int
		dir     bool
		content []byte
	}
	passwd := "root:x:0:0:root:/root:/sbin/nologin\n" +
		"nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n" +
		"nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"
	group := "root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n"
	entries := []entry{
		{path: binName, mode: 0o755, content: bin},
		{path: "etc", mode: 0o755, dir: true},
		{path: "etc/passwd", mode: 0o644, content: []byte(passwd)},
		{path: "etc/group", mode: 0o644, content: []byte(group)},
		{path: "etc/nsswitch.conf", mode: 0o644, content: []byte("hosts: files dns\n")},
		{path: "home", mode: 0o755, dir: true},
		{path: "home/nonroot", mode: 0o700, uid: nonrootUID, dir: true},
		{path: "root", mode: 0o700, dir: true},
		{path: "tmp", mode: 0o1777, dir: true},
	}
	if ca != nil {
		entries = append(entries,
			entry{path: "etc/ssl", mode: 0o755, dir: true},
			entry{path: "etc/ssl/certs", mode: 0o755, dir: true},
			entry{path: strings.TrimPrefix(caBundlePath, "/"), mode: 0o644, content: ca},
		)
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].path < entries[j].path })

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{
			Name:    e.path,
			Mode:    e.mode,
			Uid:     e.uid,
			Gid:     e.uid,
			ModTime: mtime,
		}
		if e.dir {
			h.Typeflag = tar.TypeDir
			h.Name += "/"
		} else {
			h.Typeflag = tar.TypeReg
			h.Size = int64(len(e.content))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("tar header %s: %w", e.path, err)
		}
		if _, err := tw.Write(e.content); err != nil {
			return nil, fmt.Errorf("tar content %s: %w", e.path, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("closing the tar: %w", err)
	}
	return buf.Bytes(), nil
}

func buildImage(layerTar []byte, withCA bool, o options, created time.Time) (v1.Image, error) {
	manifestType, configType, layerType := types.OCIManifestSchema1, types.OCIConfigJSON, types.OCILayer
	if o.format == "docker" {
		manifestType, configType, layerType = types.DockerManifestSchema2, types.DockerConfigJSON, types.DockerLayer
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithMediaType(layerType), tarball.WithCompressionLevel(gzip.DefaultCompression), tarball.WithCompressedCaching)
	if err != nil {
		return nil, fmt.Errorf("making the layer: %w", err)
	}

	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, manifestType), configType)
	img, err = mutate.Append(img, mutate.Addendum{
		Layer:     layer,
		MediaType: layerType,
		History: v1.History{
			Created:   v1.Time{Time: created},
			CreatedBy: "make image (hack/image)",
		},
	})
	if err != nil {
		return nil, fmt.Errorf("adding the layer: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("reading the config: %w", err)
	}
	cf = cf.DeepCopy()
	cf.OS = "linux"
	cf.Architecture = o.arch
	cf.Created = v1.Time{Time: created}
	cf.Config = v1.Config{
		User:       fmt.Sprintf("%d:%d", nonrootUID, nonrootUID),
		Entrypoint: []string{o.path},
		Cmd:        strings.Fields(o.cmd),
		WorkingDir: "/",
		Labels: map[string]string{
			"org.opencontainers.image.source":  o.source,
			"org.opencontainers.image.version": o.version,
			"org.opencontainers.image.title":   o.title,
		},
	}
	if withCA {
		cf.Config.Env = []string{"SSL_CERT_FILE=" + caBundlePath}
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, fmt.Errorf("setting the config: %w", err)
	}
	return img, nil
}

// writeOCIArchive writes img as an OCI image layout in a tar at p, with a Docker
// manifest.json beside index.json so that `docker load` takes it too (as `docker save`
// has written it since Docker 25).
func writeOCIArchive(p string, tag name.Tag, img v1.Image, mtime time.Time) error {
	dir, err := os.MkdirTemp("", "atlas-image-layout-")
	if err != nil {
		return fmt.Errorf("creating a scratch directory: %w", err)
	}
	defer os.RemoveAll(dir)

	lp, err := layout.Write(dir, empty.Index)
	if err != nil {
		return fmt.Errorf("writing the layout: %w", err)
	}
	if err := lp.AppendImage(img, layout.WithAnnotations(map[string]string{
		"io.containerd.image.name":          fullName(tag),
		"org.opencontainers.image.ref.name": tag.TagStr(),
	})); err != nil {
		return fmt.Errorf("adding the image to the layout: %w", err)
	}

	manifest, err := dockerManifest(tag, img)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "manifest.json"), manifest, 0o644); err != nil {
		return fmt.Errorf("writing manifest.json: %w", err)
	}
	return tarDir(dir, p, mtime)
}

// fullName is the tag as containerd and Docker spell it (docker.io/library/x:tag).
func fullName(tag name.Tag) string {
	registry := tag.RegistryStr()
	if registry == name.DefaultRegistry {
		registry = "docker.io"
	}
	return registry + "/" + tag.RepositoryStr() + ":" + tag.TagStr()
}

// dockerManifest is the manifest.json that `docker load` reads, pointing into blobs/.
func dockerManifest(tag name.Tag, img v1.Image) ([]byte, error) {
	cfgName, err := img.ConfigName()
	if err != nil {
		return nil, fmt.Errorf("config digest: %w", err)
	}
	layers, err := img.Layers()
	if err != nil {
		return nil, fmt.Errorf("listing the layers: %w", err)
	}
	blob := func(h v1.Hash) string { return path.Join("blobs", h.Algorithm, h.Hex) }
	entry := tarball.Descriptor{Config: blob(cfgName), RepoTags: []string{tag.String()}}
	for _, l := range layers {
		d, err := l.Digest()
		if err != nil {
			return nil, fmt.Errorf("layer digest: %w", err)
		}
		entry.Layers = append(entry.Layers, blob(d))
	}
	b, err := json.Marshal(tarball.Manifest{entry})
	if err != nil {
		return nil, fmt.Errorf("encoding manifest.json: %w", err)
	}
	return b, nil
}

// tarDir writes the files under dir into a tar at p, sorted, with fixed owners, modes and
// times, so the archive's bytes depend only on the content.
func tarDir(dir, p string, mtime time.Time) (err error) {
	f, err := os.Create(p)
	if err != nil {
		return fmt.Errorf("creating %s: %w", p, err)
	}
	defer func() {
		if cerr := f.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("closing %s: %w", p, cerr)
		}
	}()
	tw := tar.NewWriter(f)
	// WalkDir visits in lexical order.
	err = filepath.WalkDir(dir, func(file string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, file)
		if err != nil || rel == "." {
			return err
		}
		rel = filepath.ToSlash(rel)
		h := &tar.Header{Name: rel, ModTime: mtime}
		if d.IsDir() {
			h.Typeflag, h.Name, h.Mode = tar.TypeDir, rel+"/", 0o755
			return tw.WriteHeader(h)
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		h.Typeflag, h.Mode, h.Size = tar.TypeReg, 0o644, info.Size()
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		src, err := os.Open(file)
		if err != nil {
			return err
		}
		defer src.Close()
		_, err = io.Copy(tw, src)
		return err
	})
	if err != nil {
		return fmt.Errorf("archiving the layout: %w", err)
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("finishing the tar: %w", err)
	}
	return nil
}
