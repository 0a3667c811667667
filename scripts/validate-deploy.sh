#!/usr/bin/env bash
# Validates natgw's deployment files offline (no Docker engine, no cluster, no network
# beyond the Go module proxy for the first download):
#   - deploy/k8s: every manifest decoded strictly into the k8s.io/api types, cross-object
#     checks, kustomization.yaml, and `kubectl kustomize` output when kubectl is installed;
#   - deploy/compose.yaml: loaded by compose-go (the Compose Specification schema) plus checks;
#   - Dockerfile and .dockerignore: BuildKit's parser and linter (`docker build --check` rules)
#     plus checks against go.mod, cmd/natgw/serve.go and the Kubernetes manifests.
# The checks are Go tests in deploy/, a module of its own so that their dependencies stay out
# of natgw's go.mod. Idempotent; extra arguments go to `go test` (e.g. -run Compose -v).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root/deploy"
go vet .
go test -count=1 "$@" .
