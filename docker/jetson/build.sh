#!/usr/bin/env bash
# Build a miro_edge Jetson image with the pins of versions.env:
#   docker/jetson/build.sh tx2|xavier-nx [more `docker build` arguments]
# Each key of the board (TX2_*, XAVIER_NX_*) becomes a --build-arg; the context is the repository
# root (see .dockerignore). Tags: miro-edge:<board> and miro-edge:<board>-<package version>.
# DOCKER=... runs another client (podman, or a stand-in in the tests).
set -euo pipefail

board="${1:-}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "${here}/../.." && pwd)"
case "${board}" in
  tx2) prefix=TX2_ ;;
  xavier-nx) prefix=XAVIER_NX_ ;;
  *) echo "Error: usage: $0 tx2|xavier-nx [docker build arguments]; got '${board}'" >&2; exit 2 ;;
esac
shift

build_args=()
while IFS= read -r line || [ -n "${line}" ]; do
  case "${line}" in ''|'#'*) continue ;; esac
  key="${line%%=*}"
  if [ "${key}" = "${line}" ] || [[ ! "${key}" =~ ^[A-Z0-9_]+$ ]]; then
    echo "Error: ${here}/versions.env: not a KEY=VALUE line: ${line}" >&2
    exit 1
  fi
  case "${key}" in "${prefix}"*) build_args+=(--build-arg "${line}") ;; esac
done < "${here}/versions.env"

version="$(sed -n 's/^version = "\(.*\)"$/\1/p' "${repo}/pyproject.toml")"
export DOCKER_BUILDKIT=1
exec "${DOCKER:-docker}" build \
  --file "${here}/${board}/Dockerfile" \
  --tag "miro-edge:${board}" --tag "miro-edge:${board}-${version}" \
  "${build_args[@]}" "$@" "${repo}"
