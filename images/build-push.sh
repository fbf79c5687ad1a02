#!/usr/bin/env bash
# Build one step image from images/STEP/Dockerfile (build context: the repository root), push it,
# and write its pushed digest reference (IMAGE@sha256:…) to DIGEST_DIR/STEP. Run from the
# repository root by Cloud Build (cloudbuild.yaml, IMAGE in Artifact Registry) and by
# `make build-images-local` (IMAGE in a registry on 127.0.0.1).
#
#   images/build-push.sh STEP IMAGE TAG DIGEST_DIR
#
# DOCKER_BUILD_FLAGS: extra `docker build` flags (the local build passes --network host).
set -euo pipefail
step=$1 image=$2 tag=$3 digest_dir=$4
die() { echo "error: $*" >&2; exit 1; }
[[ -f "images/$step/Dockerfile" ]] || die "no images/$step/Dockerfile (run from the repository root)"

# The previous :latest is the layer cache; the first build has none.
docker pull --quiet "$image:latest" >/dev/null 2>&1 \
    || echo "$step: no $image:latest yet: building without a layer cache"
start=$SECONDS
# shellcheck disable=SC2086  # DOCKER_BUILD_FLAGS is a list of flags
docker build --file "images/$step/Dockerfile" --cache-from "$image:latest" \
    --build-arg BUILDKIT_INLINE_CACHE=1 ${DOCKER_BUILD_FLAGS:-} \
    --tag "$image:$tag" --tag "$image:latest" .
echo "$step: built $image:$tag in $((SECONDS - start)) s"

# An image on a local stand-in base (images/local/standin-bases.sh) never leaves this machine.
standin=$(docker image inspect --format '{{ index .Config.Labels "io.yoda.stand-in" }}' "$image:$tag")
if [[ -n "$standin" && ! "$image" =~ ^(127\.0\.0\.1|localhost)(:[0-9]+)?/ ]]; then
    die "$image:$tag is built on a local stand-in for $standin: push it only to a registry on 127.0.0.1"
fi

docker push --quiet "$image:$tag" >/dev/null
docker push --quiet "$image:latest" >/dev/null
digest=$(docker image inspect --format '{{range .RepoDigests}}{{println .}}{{end}}' "$image:$tag" \
    | grep -m1 -F "$image@sha256:" || true)
[[ "$digest" =~ @sha256:[0-9a-f]{64}$ ]] || die "no pushed digest of $image:$tag (got '$digest')"
mkdir -p "$digest_dir"
echo "$digest" > "$digest_dir/$step"
echo "$step: $digest"
