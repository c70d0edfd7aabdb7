# sluice in a container: a static binary on an empty image, run as a
# non-root user.
#
#   docker build --build-arg VERSION="$(git describe --tags --always --dirty)" -t sluice .
#   docker run -d --name sluice --network host \
#     --ulimit nofile=1048576:1048576 --stop-timeout 45 \
#     -v /etc/sluice:/etc/sluice:ro sluice
#
# The config is read from /etc/sluice/sluice.toml (mount it); reload it with
# `docker kill -s HUP sluice`. `docker stop` sends SIGTERM and sluice drains
# for up to drain_timeout (default 30s), so give it a stop timeout above that
# (docker's default is 10s). No port is exposed here: publish the ports your
# rules listen on (-p 8080:8080, -p 5353:5353/udp) or use --network host. See
# docs/OPERATIONS.md.

# The Go toolchain must be at least the go line of go.mod.
ARG GO_VERSION=1.26

FROM golang:${GO_VERSION} AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -buildvcs=false \
      -ldflags "-s -w -X main.version=${VERSION}" \
      -o /out/sluice ./cmd/sluice
# Empty directories for the final image: the config mount point and a place
# for unix sockets that the non-root user may write.
RUN mkdir -p /out/etc/sluice /out/run/sluice

FROM scratch
COPY --from=build /out/sluice /sluice
COPY --from=build /out/etc/sluice /etc/sluice
COPY --from=build --chown=65532:65532 /out/run/sluice /run/sluice
USER 65532:65532
ENTRYPOINT ["/sluice"]
CMD ["-c", "/etc/sluice/sluice.toml"]
