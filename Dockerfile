# syntax=docker/dockerfile:1
# mjpeg-relay: a static binary on distroless, for linux/amd64 and linux/arm64.
#
#   docker buildx build --platform linux/amd64,linux/arm64 -t mjpeg-relay .
#   docker run -p 54017:54321 mjpeg-relay http://camera.local/video
#
# The compiler always runs natively ($BUILDPLATFORM) and cross-compiles for
# $TARGETPLATFORM: no QEMU emulation of rustc. The binary is static glibc
# (+crt-static); it resolves host names with reqwest's pure-Rust hickory
# resolver, so no NSS is needed and distroless/static suffices.
#
# Base images are pinned by digest. To update, pull the tag and take its
# digest, e.g. `docker buildx imagetools inspect rust:1-slim-trixie`
# (or let Dependabot/Renovate do it). Offline builds override the pins:
#   --build-arg RUST_IMAGE=rust:1-slim-trixie
#   --build-arg RUNTIME_IMAGE=gcr.io/distroless/static-debian12:nonroot
ARG RUST_IMAGE=rust:1-slim-trixie@sha256:34fb2f168c432d421a09883c663b275b33cbb30f6b18642fbd09a684c6546d0e
ARG RUNTIME_IMAGE=gcr.io/distroless/static-debian12:nonroot@sha256:d093aa3e30dbadd3efe1310db061a14da60299baff8450a17fe0ccc514a16639

FROM --platform=$BUILDPLATFORM ${RUST_IMAGE} AS build
ARG TARGETARCH
WORKDIR /src
SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# C cross linker (ring builds a little C) + Rust std for the target. The cross
# packages follow the (digest-pinned) build image's Debian release.
# hadolint ignore=DL3008
RUN set -eux; \
    build_arch="$(dpkg --print-architecture)"; \
    case "$TARGETARCH" in \
      amd64) target=x86_64-unknown-linux-gnu;  gnu=x86-64-linux-gnu ;; \
      arm64) target=aarch64-unknown-linux-gnu; gnu=aarch64-linux-gnu ;; \
      *) echo "unsupported TARGETARCH '$TARGETARCH'" >&2; exit 1 ;; \
    esac; \
    if [ "$TARGETARCH" != "$build_arch" ]; then \
      apt-get update; \
      apt-get install -y --no-install-recommends "gcc-$gnu" "libc6-dev-$TARGETARCH-cross"; \
      rm -rf /var/lib/apt/lists/*; \
    fi; \
    rustup target add "$target"; \
    echo "$target" > /rust-target

ENV CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
    CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER=x86_64-linux-gnu-gcc \
    CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc \
    CC_x86_64_unknown_linux_gnu=x86_64-linux-gnu-gcc
ARG RUSTFLAGS="-C target-feature=+crt-static"

# Dependencies only: this layer is reused until Cargo.toml/Cargo.lock change,
# so a source edit rebuilds in seconds.
COPY Cargo.toml Cargo.lock ./
RUN set -eux; \
    mkdir -p src; echo 'fn main() {}' > src/main.rs; touch src/lib.rs; \
    cargo build --release --locked --bin mjpeg-relay --target "$(cat /rust-target)"; \
    rm -rf src target/*/release/mjpeg-relay* target/*/release/deps/mjpeg_relay-* \
           target/*/release/deps/libmjpeg_relay-* target/*/release/.fingerprint/mjpeg-relay-*

COPY src ./src
RUN set -eux; \
    cargo build --release --locked --bin mjpeg-relay --target "$(cat /rust-target)"; \
    cp "target/$(cat /rust-target)/release/mjpeg-relay" /mjpeg-relay

# --platform=$TARGETPLATFORM is Docker's default; podman needs it spelled out
# or the arm64 image silently gets amd64 base layers.
# hadolint ignore=DL3065
FROM --platform=$TARGETPLATFORM ${RUNTIME_IMAGE}
ARG VERSION=0.2.0
LABEL org.opencontainers.image.title="mjpeg-relay" \
      org.opencontainers.image.description="One MJPEG camera in, many viewers out" \
      org.opencontainers.image.source="https://github.com/mjpeg-relay/mjpeg-relay" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="MIT"
COPY --from=build /mjpeg-relay /mjpeg-relay
USER 65532:65532
EXPOSE 54321 9090
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 CMD ["/mjpeg-relay", "healthcheck"]
ENTRYPOINT ["/mjpeg-relay"]
