#!/usr/bin/env bash
# Make every base image that images/*/Dockerfile names (ARG BASE_IMAGE=NAME:TAG[@sha256:…])
# available to `docker build`: present already, or pulled (the real base), or, where it cannot be
# pulled (no Docker Hub here, in CI), built as a local stand-in from Debian bookworm (debootstrap)
# with the same Python minor version, interpreter location and PATH as the real base, and tagged
# NAME:TAG (a local build cannot make a registry digest), which build-local.sh passes as BASE_IMAGE.
# Stand-ins carry the label io.yoda.stand-in=NAME:TAG, which every image built on them inherits;
# images/build-push.sh records them as stand-ins in the lock and refuses to push their images
# anywhere but a loopback registry.
#
#   images/local/standin-bases.sh [WORK_DIR]     (default build/standins; needs root for debootstrap)
set -euo pipefail
cd "$(dirname "$0")/../.."
work=${1:-build/standins}
here=images/local
rootfs_image=yoda-standin/debian:bookworm-minbase
python_minor=3.11  # Debian bookworm's Python

die() { echo "error: $*" >&2; exit 1; }

bases() { sed -n 's/^ARG BASE_IMAGE=//p' images/*/Dockerfile | sort -u; }

have() { docker image inspect "$1" >/dev/null 2>&1; }
label() { docker image inspect --format '{{ index .Config.Labels "io.yoda.stand-in" }}' "$1" 2>/dev/null; }

rootfs() {
    have "$rootfs_image" && return
    command -v debootstrap >/dev/null || die "debootstrap is missing: apt-get install debootstrap (needed to stand in for bases that cannot be pulled)"
    local dir="$work/rootfs"
    rm -rf "$dir"
    echo "debootstrap: Debian bookworm (minbase + python3, python3-venv, ca-certificates) into $dir" >&2
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
        bookworm "$dir" >"$work/debootstrap.log" 2>&1 \
        || die "debootstrap failed: see $work/debootstrap.log"
    tar -C "$dir" -c . | docker import - "$rootfs_image" >/dev/null
    rm -rf "$dir"
}

# build_standin KIND NAME:TAG [build args…]: images/local/KIND.Dockerfile tagged NAME:TAG
build_standin() {
    local kind=$1 base=$2
    shift 2
    local context="$work/context-$kind"
    rm -rf "$context" && mkdir -p "$context"
    cp "$here/$kind.Dockerfile" "$context/Dockerfile"
    cp "${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}" "$context/ca-certificates.crt"
    docker build --quiet --network host --build-arg ROOTFS="$rootfs_image" \
        --build-arg REAL_BASE="$base" "$@" --tag "$base" "$context" >/dev/null \
        || die "building the stand-in for $base failed (rerun: docker build $context)"
}

python_standin() {  # the python:3.11 slim stand-in, also the base of the pyaction one
    local name=yoda-standin/python:$python_minor-slim-bookworm
    have "$name" || { rootfs; build_standin python "$name"; }
    echo "$name"
}

mkdir -p "$work"
for base in $(bases); do
    tagged=${base%@sha256:*}
    if have "$base" && [[ -z "$(label "$base")" ]]; then
        echo "base $base: present (the real base)"
        continue
    fi
    if [[ -n "$(label "$tagged")" ]]; then
        echo "base $base: present (local stand-in $tagged)"
        continue
    fi
    if timeout 120 docker pull --quiet "$base" >/dev/null 2>&1; then
        echo "base $base: pulled (the real base)"
        continue
    fi
    start=$SECONDS
    case "$base" in
        python:"$python_minor"*)
            rootfs; build_standin python "$tagged"
            what="bookworm's Python $python_minor as /usr/local/bin/python" ;;
        cicirello/pyaction:"$python_minor"*)
            build_standin pyaction "$tagged" --build-arg PYTHON_STANDIN="$(python_standin)"
            what="the python stand-in plus git" ;;
        pytorch/pytorch:*)
            torch=${tagged#pytorch/pytorch:}; torch=${torch%%-*}
            rootfs; build_standin pytorch "$tagged" --build-arg TORCH_VERSION="$torch"
            what="Python $python_minor as /opt/conda/bin/python, torch $torch from PyPI" ;;
        *)
            die "base $base cannot be pulled and has no local stand-in (python:$python_minor*, cicirello/pyaction:$python_minor*, pytorch/pytorch:*)" ;;
    esac
    echo "base $base: cannot be pulled here: built a local stand-in $tagged ($what; Debian bookworm) in $((SECONDS - start)) s"
done
