#!/usr/bin/env bash
# `make build-images-local`: the five step images built from their Dockerfiles as they are, by the
# same script Cloud Build runs (images/build-push.sh), pushed to a registry on 127.0.0.1 instead of
# Artifact Registry, their digests written to a lock of the cloud lock's form. Bases that cannot be
# pulled here get local stand-ins first (images/local/standin-bases.sh), passed to the build as
# BASE_IMAGE and recorded in the lock as stand-ins. Prints each image's size, build time and
# largest layers.
#
#   images/local/build-local.sh REGISTRY STORAGE LOCK_FILE
#   e.g. images/local/build-local.sh 127.0.0.1:5000 ~/.cache/yoda-phi3/registry images/digests.docker.json
set -euo pipefail
cd "$(dirname "$0")/../.."
registry=$1 storage=$2 lock=$3
steps=(data_transformation fine_tuning inference evaluation registry)
die() { echo "error: $*" >&2; exit 1; }

command -v docker >/dev/null || die "docker is missing: apt-get install docker.io"
docker info >/dev/null 2>&1 \
    || die "no Docker daemon answers: start one (e.g. \`dockerd &\` as root) and rerun"

bash images/local/registry.sh start "$registry" "$storage"
bash images/local/standin-bases.sh build/standins

digests=build/digests-local
rm -rf "$digests"
declare -A seconds
for step in "${steps[@]}"; do
    start=$SECONDS
    # the Dockerfile's base where it is here (the real one), else its stand-in, tagged NAME:TAG
    base=$(sed -n 's/^ARG BASE_IMAGE=//p' "images/$step/Dockerfile")
    docker image inspect "$base" >/dev/null 2>&1 || base=${base%@sha256:*}
    BASE_IMAGE=$base DOCKER_BUILD_FLAGS="--network host" bash images/build-push.sh "$step" \
        "$registry/yoda/yoda-${step//_/-}" local "$digests"
    seconds[$step]=$((SECONDS - start))
done
bash images/write-lock.sh "$digests" "$lock" >/dev/null
echo "wrote $lock"

echo
printf '%-20s %9s %11s  %s\n' image size build+push "largest layers"
for step in "${steps[@]}"; do
    image=$(< "$digests/$step")
    size=$(docker image inspect --format '{{.Size}}' "$image")
    layers=$(docker history --no-trunc --format '{{.Size}}	{{.CreatedBy}}' "$image" \
        | sort -t$'\t' -k1,1 -h -r | head -n 3 | tr -s ' ' \
        | sed -E $'s@\t\\|[0-9]+ ([A-Za-z_]+=[^ ]* )*@\t@; s@\t/bin/sh -c (#\\(nop\\) +)?@\t@; s@\t$@\tbase file system@; s@^([^\t]*)\t(.{1,48}).*@\\1 \\2@' \
        | paste -sd';' - | sed 's/;/; /g')
    printf '%-20s %6s MB %10ss  %s\n' "$step" "$((size / 1000000))" "${seconds[$step]}" "$layers"
done
