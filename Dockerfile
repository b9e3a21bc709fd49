# One image, one binary: the operator and both consumers.
# Build: make docker-build IMG=... (needs a Docker engine).
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath \
    -ldflags "-s -w -X github.com/atlas-platform/atlas-operator/internal/version.Version=${VERSION}" \
    -o /out/atlas .

FROM gcr.io/distroless/static:nonroot
COPY --from=build /out/atlas /atlas
USER 65532:65532
ENTRYPOINT ["/atlas"]
CMD ["manager"]
