# syntax=docker/dockerfile:1
#
# Image of csi-secrets-store-provider-alibabacloud.
#
#   docker build -t csi-secrets-store-provider-alibabacloud .
#
# The build stage runs the same two commands as the README's build section;
# the build script of the host compiles the built-in WebAssembly plugins
# (wasm32-wasip2) and embeds them in the binary, so the runtime stage needs
# nothing but the binary. The chart (charts/csi-secrets-store-provider-alibabacloud)
# relies on the binary path, the user id and the config directory below;
# tests/chart/test_dockerfile.py keeps them in step.

# Debian 12 (bookworm), the same glibc as the runtime image below.
FROM docker.io/library/rust:1.95.0-bookworm AS build
WORKDIR /src
# rust-toolchain.toml pins 1.95.0, the image's toolchain; only the wasm
# target is missing.
RUN rustup target add wasm32-wasip2
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked -p csi-secrets-store-provider-alibabacloud \
    && install -D -m 0755 target/release/csi-secrets-store-provider-alibabacloud /out/csi-secrets-store-provider-alibabacloud
# The upstream image's binary path, as a symbolic link to ours: a DaemonSet
# written for the upstream image that names it in `command` starts this
# binary, which reads the upstream flags. It sits in a directory so that
# COPY keeps it a link (COPY follows a link given as its source).
RUN mkdir -p /out/upstream-bin \
    && ln -s /usr/local/bin/csi-secrets-store-provider-alibabacloud /out/upstream-bin/secrets-store-csi-driver-provider-alibaba-cloud

# Distroless: glibc, libgcc, CA certificates, no shell or package manager.
FROM gcr.io/distroless/cc-debian12:nonroot
LABEL org.opencontainers.image.title="csi-secrets-store-provider-alibabacloud" \
      org.opencontainers.image.description="Secrets Store CSI Driver provider for Alibaba Cloud KMS and OOS, with WebAssembly backend plugins" \
      org.opencontainers.image.source="https://github.com/alibabacloud-csi/csi-secrets-store-provider-alibabacloud" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /out/csi-secrets-store-provider-alibabacloud /usr/local/bin/csi-secrets-store-provider-alibabacloud
COPY --from=build /out/upstream-bin/ /bin/
# The built-in defaults apply when /etc/csi-secrets-store-provider-alibabacloud/config.toml
# is absent; the chart mounts its rendered config.toml there and custom
# plugins under /etc/csi-secrets-store-provider-alibabacloud/plugins/.
# 65532 is distroless's "nonroot"; numeric so that Kubernetes can verify
# runAsNonRoot.
USER 65532:65532
EXPOSE 8989
ENTRYPOINT ["/usr/local/bin/csi-secrets-store-provider-alibabacloud"]
CMD ["serve"]
