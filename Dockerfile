# syntax=docker/dockerfile:1
#
# Commons ID: a static binary on distroless, running as an unprivileged user.
#
#   docker build -t commonsid .
#   docker run -p 8080:8080 -v commonsid-data:/data \
#     -e COMMONSID_ISSUER=https://id.example.org commonsid
#
# The build context keeps .git (see .dockerignore) so that the binary records
# the commit it was built from (`commonsid version`). A release may also set
# its version: --build-arg VERSION=v1.2.3.

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG VERSION=
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -buildvcs=auto \
      -ldflags="-s -w ${VERSION:+-X main.version=$VERSION}" \
      -o /out/commonsid ./cmd/commonsid \
 && /out/commonsid version \
 && mkdir -p /out/data

# distroless/static: no shell, no package manager; CA certificates, tzdata and
# a "nonroot" user (65532) included.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/commonsid /usr/local/bin/commonsid
# The data folder (SQLite database, key-encryption key, feed mark) must be
# writable by the user and not readable by others.
COPY --from=build --chown=65532:65532 --chmod=0700 /out/data /data
ENV COMMONSID_DATA=/data \
    COMMONSID_ADDR=0.0.0.0:8080 \
    COMMONSID_LOG_FORMAT=json
VOLUME ["/data"]
EXPOSE 8080
USER 65532:65532
# The image has no shell and no HTTP client: probe /healthz (the process
# runs) and /readyz (the database answers) from the orchestrator instead,
# e.g. a Kubernetes httpGet probe or the proxy's health check.
HEALTHCHECK NONE
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/commonsid"]
CMD ["serve"]
