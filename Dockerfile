# One image, one binary: the operator and both consumers.
# Build: make docker-build IMG=... (needs a Docker engine). Without one, `make image` builds
# the same image (static binary, non-root 65532, no shell) as an OCI tarball: hack/image.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
# Set by BuildKit for `docker buildx build --platform ...`; empty means the build machine's.
ARG TARGETARCH
RUN CGO_ENABLED=0 GOOS=linux GOARCH=${TARGETARCH} go build -trimpath \
    -ldflags "-s -w -X github.com/atlas-platform/atlas-operator/internal/version.Version=${VERSION}" \
    -o /out/atlas .

# distroless static: CA certificates, /etc/passwd with nonroot (65532), /tmp; no shell.
FROM gcr.io/distroless/static:nonroot
COPY --from=build /out/atlas /atlas
USER 65532:65532
ENTRYPOINT ["/atlas"]
CMD ["manager"]
