# syntax=docker/dockerfile:1
#
# natgw container image (linux/amd64 only: the onnxruntime build and the CPU kernels,
# compiled with -march=x86-64-v3, are x86-64; the host CPU needs AVX2).
#
#   docker build --build-arg VERSION="$(git describe --always --dirty)" -t natgw:dev .
#   docker run --rm -p 8080:8080 natgw:dev
#
# Stages: "ort" fetches onnxruntime's libonnxruntime.so.1 with the repo's own install script,
# "build" compiles the cgo binary against OpenBLAS, "runtime" is debian:bookworm-slim with
# only the shared libraries the two need.

ARG GO_VERSION=1.26.8
ARG NODE_VERSION=22

# onnxruntime 1.24.1 comes from the npm package onnxruntime-node; the script pins and
# verifies its sha256, so this stage only needs npm.
FROM node:${NODE_VERSION}-bookworm-slim AS ort
WORKDIR /src
COPY scripts/install-onnxruntime.sh scripts/install-onnxruntime-web.sh scripts/
RUN bash scripts/install-onnxruntime.sh && bash scripts/install-onnxruntime-web.sh

FROM golang:${GO_VERSION}-bookworm AS build
# The golang image has gcc; OpenBLAS headers and the link library are what cgo needs.
RUN apt-get update \
	&& apt-get install -y --no-install-recommends libopenblas-dev \
	&& rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG VERSION=dev
ENV CGO_ENABLED=1
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
	go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/natgw ./cmd/natgw
# The repo may ship no tasks yet: an absent models folder becomes an empty one (the gateway
# then starts and reports not ready) instead of failing the build.
RUN mkdir -p /out/models && if [ -d models ]; then cp -a models/. /out/models/; fi

FROM debian:bookworm-slim AS runtime
# libopenblas0: the binary's BLAS; libstdc++6: onnxruntime; busybox: wget for HEALTHCHECK
# (about 1 MB, lighter than curl and its libraries); ca-certificates: rediss:// URLs.
RUN apt-get update \
	&& apt-get install -y --no-install-recommends libopenblas0 libstdc++6 busybox ca-certificates \
	&& rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 natgw \
	&& useradd --system --uid 10001 --gid natgw --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin natgw
COPY --from=ort /src/third_party/onnxruntime/lib/libonnxruntime.so.1 /opt/onnxruntime/lib/libonnxruntime.so.1
COPY --from=ort /src/third_party/onnxruntime-web /opt/onnxruntime-web
COPY --from=build /out/natgw /usr/local/bin/natgw
COPY --from=build --chown=root:root /out/models /srv/natgw/models
WORKDIR /srv/natgw
ENV NATGW_ADDR=:8080 \
	NATGW_MODELS=/srv/natgw/models \
	ONNXRUNTIME_LIB=/opt/onnxruntime/lib/libonnxruntime.so.1 \
	NATGW_ORT_WEB_DIR=/opt/onnxruntime-web
# Numeric so that Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
USER 10001:10001
EXPOSE 8080
# Liveness, not readiness: an image without tasks is healthy but never ready. The port
# follows NATGW_ADDR when it is overridden as ":PORT".
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
	CMD busybox wget -q -T 2 -O /dev/null "http://127.0.0.1:${NATGW_ADDR##*:}/v2/health/live" || exit 1
# natgw turns readiness off, waits --shutdown-delay, then drains on SIGTERM.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/natgw"]
CMD ["serve"]
