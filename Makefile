# Atlas consumer operator. `make help` lists the targets.

IMG ?= atlas-operator:dev
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
GO ?= go
GOTEST_FLAGS ?= -count=1 -p 2 -timeout 30m
PKG ?= ./...
VERSION_LDFLAGS = -X github.com/atlas-platform/atlas-operator/internal/version.Version=$(VERSION)
# make image: the image's architecture (a GOARCH value), tarball, format (oci|docker) and
# the timestamp written into it (the last commit's, for reproducible images).
IMAGE_ARCH ?= $(shell $(GO) env GOARCH)
IMAGE_TAR ?= dist/atlas-image.tar
IMAGE_FORMAT ?= oci
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 0)

## Tool binaries, installed into ./bin with pinned versions.
LOCALBIN ?= $(shell pwd)/bin
CONTROLLER_TOOLS_VERSION ?= v0.23.0
KUSTOMIZE_VERSION ?= v5.7.1
CONTROLLER_GEN ?= $(LOCALBIN)/controller-gen-$(CONTROLLER_TOOLS_VERSION)
KUSTOMIZE ?= $(LOCALBIN)/kustomize-$(KUSTOMIZE_VERSION)
KUBECTL ?= kubectl
CHART ?= charts/atlas-operator

.DEFAULT_GOAL := help
SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec

##@ General

.PHONY: help
help: ## Display this help.
	@awk 'BEGIN {FS = ":.*##"; printf "\nUsage:\n  make \033[36m<target>\033[0m\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) } ' $(MAKEFILE_LIST)

##@ Development

.PHONY: demo
demo: build ## Run the whole system on this machine (a real node, the operator, both consumers), live; needs root.
	bash hack/demo.sh

.PHONY: demo-down
demo-down: ## Stop everything a `make demo` started.
	bash hack/demo.sh down

.PHONY: manifests
manifests: controller-gen ## Generate the CRD and RBAC manifests under config/, and copy them into the chart.
	$(CONTROLLER_GEN) rbac:roleName=manager-role crd paths="./api/...;./controllers/..." output:crd:artifacts:config=config/crd/bases
	@# The same rules as a Role, for namespace scope (config/namespaced).
	sed 's/^kind: ClusterRole$$/kind: Role/' config/rbac/role.yaml > config/rbac/namespaced/manager_role.yaml
	@# The chart (charts/atlas-operator) renders the same CRDs and manager rules (one source).
	rm -rf $(CHART)/files/crds $(CHART)/files/rbac
	mkdir -p $(CHART)/files/crds $(CHART)/files/rbac
	cp config/crd/bases/*.yaml $(CHART)/files/crds/
	cp config/rbac/role.yaml $(CHART)/files/rbac/manager-role.yaml

.PHONY: generate
generate: controller-gen ## Generate DeepCopy methods.
	$(CONTROLLER_GEN) object:headerFile="hack/boilerplate.go.txt" paths="./api/..."

.PHONY: fmt
fmt: ## Run go fmt.
	$(GO) fmt ./...

.PHONY: vet
vet: ## Run go vet.
	$(GO) vet ./...

.PHONY: test
test: ## Run every test against real Postgres, Kafka, Elasticsearch, OpenSearch, kube-apiserver and a node (started and stopped by hack/test.sh).
	bash hack/test.sh $(PKG)

.PHONY: bench
bench: ## Run the Go benchmarks and print their figures.
	bash hack/test.sh --bench $(PKG)

.PHONY: fuzz
fuzz: ## Fuzz the event decoder for 60s.
	$(GO) test -run '^$$' -fuzz FuzzDecode -fuzztime 60s ./consumer/event/

##@ Build

.PHONY: build
build: ## Build the atlas binary into bin/atlas.
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(VERSION_LDFLAGS)" -o bin/atlas .

.PHONY: run
run: build ## Run the operator against the cluster in ~/.kube/config.
	bin/atlas manager

.PHONY: docker-build
docker-build: ## Build the container image (needs a Docker engine; none runs on the CI machines).
	docker build --build-arg VERSION=$(VERSION) -t $(IMG) .

.PHONY: image
image: ## Build the container image as an OCI tarball without a Docker engine: dist/atlas-image.tar
	CGO_ENABLED=0 GOOS=linux GOARCH=$(IMAGE_ARCH) $(GO) build -trimpath -ldflags "-s -w $(VERSION_LDFLAGS)" -o bin/atlas-linux-$(IMAGE_ARCH) .
	GOOS= GOARCH= SOURCE_DATE_EPOCH=$(SOURCE_DATE_EPOCH) $(GO) run ./hack/image --binary bin/atlas-linux-$(IMAGE_ARCH) \
		--output $(IMAGE_TAR) --tag $(IMG) --version $(VERSION) --arch $(IMAGE_ARCH) --format $(IMAGE_FORMAT)

##@ Deployment

.PHONY: install
install: manifests kustomize ## Install the CRDs into the cluster in ~/.kube/config.
	$(KUSTOMIZE) build config/crd | $(KUBECTL) apply --server-side -f -

.PHONY: uninstall
uninstall: manifests kustomize ## Uninstall the CRDs.
	$(KUSTOMIZE) build config/crd | $(KUBECTL) delete --ignore-not-found -f -

.PHONY: deploy
deploy: manifests kustomize ## Deploy the operator (image $(IMG)) to the cluster in ~/.kube/config.
	cd config/manager && $(KUSTOMIZE) edit set image controller=$(IMG)
	$(KUSTOMIZE) build config/default | $(KUBECTL) apply --server-side -f -

.PHONY: undeploy
undeploy: kustomize ## Remove the operator from the cluster.
	$(KUSTOMIZE) build config/default | $(KUBECTL) delete --ignore-not-found -f -

.PHONY: build-installer
build-installer: manifests generate kustomize ## Write dist/install.yaml with the CRDs and the operator.
	mkdir -p dist
	cd config/manager && $(KUSTOMIZE) edit set image controller=$(IMG)
	$(KUSTOMIZE) build config/default > dist/install.yaml

##@ Tools

.PHONY: controller-gen
controller-gen: $(CONTROLLER_GEN) ## Install controller-gen into ./bin.
$(CONTROLLER_GEN):
	$(call go-install-tool,$(CONTROLLER_GEN),sigs.k8s.io/controller-tools/cmd/controller-gen,$(CONTROLLER_TOOLS_VERSION))

.PHONY: kustomize
kustomize: $(KUSTOMIZE) ## Install kustomize into ./bin.
$(KUSTOMIZE):
	$(call go-install-tool,$(KUSTOMIZE),sigs.k8s.io/kustomize/kustomize/v5,$(KUSTOMIZE_VERSION))

# go-install-tool installs package $2 at version $3 into ./bin as $1 (versioned name).
define go-install-tool
@set -e; mkdir -p $(LOCALBIN); tmp=$$(mktemp -d); \
echo "installing $(2)@$(3)"; \
GOBIN=$$tmp GOFLAGS= $(GO) install $(2)@$(3); \
mv $$tmp/$$(basename $$(echo $(2) | sed 's|/v[0-9]*$$||')) $(1); rm -rf $$tmp
endef
