# syntax=docker/dockerfile:1
# The connector's image. Build from the repository root (the whole module is the
# context; connector.Dockerfile.dockerignore beside this file trims it):
#
#   docker build -f terraform/connector.Dockerfile -t IMAGE .
#   gcloud builds submit --config terraform/connector.cloudbuild.yaml \
#     --substitutions _IMAGE=IMAGE .
#
# GO_VERSION should be the go.mod go line; GOTOOLCHAIN=auto fetches a newer toolchain if
# go.mod asks for one.
ARG GO_VERSION=1.26

FROM golang:${GO_VERSION} AS build
ENV CGO_ENABLED=0 GOTOOLCHAIN=auto GOFLAGS=-buildvcs=false
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    go build -trimpath -ldflags="-s -w" -o /out/connector ./connector

# Static binary on a distroless base: CA certificates for wss:// and Google APIs, no
# shell, runs as an unprivileged user. Cloud Run sends SIGTERM straight to it (it is
# PID 1) and sets PORT.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/connector /connector
USER nonroot:nonroot
ENTRYPOINT ["/connector"]
