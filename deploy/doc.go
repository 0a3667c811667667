// Package deploy holds natgw's deployment files (compose.yaml, k8s/) and, in its tests, their
// offline validation: Kubernetes manifests decoded strictly into the k8s.io/api types plus
// cross-object checks, compose.yaml loaded by compose-go against the Compose schema, and the
// repository's Dockerfile parsed and linted by BuildKit's own front end.
//
// It is a module of its own so that these test-only dependencies stay out of natgw's go.mod;
// scripts/validate-deploy.sh runs it.
package deploy
