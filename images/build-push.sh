#!/usr/bin/env bash
# Build one step image from images/STEP/Dockerfile (build context: the repository root), push it,
# and write its pushed digest reference (IMAGE@sha256:…) to DIGEST_DIR/STEP and the base it was
# built on to DIGEST_DIR/STEP.base. Run from the repository root by Cloud Build (cloudbuild.yaml,
# IMAGE in Artifact Registry) and by `make build-images-local` (IMAGE in a registry on 127.0.0.1).
#
#   images/build-push.sh STEP IMAGE TAG DIGEST_DIR
#
# The base is the Dockerfile's `ARG BASE_IMAGE=` default: NAME:TAG@sha256:… where a digest could be
# had, else NAME:TAG, which is resolved to its digest here and built on by that digest. Either way
# STEP.base holds NAME:TAG@sha256:…, the base's registry digest. BASE_IMAGE may name only a local
# stand-in for that base (images/local/standin-bases.sh); STEP.base then reads
# `local stand-in sha256:<image id> for <the Dockerfile's base>`.
# DOCKER_BUILD_FLAGS: extra `docker build` flags (the local build passes --network host).
set -euo pipefail
step=$1 image=$2 tag=$3 digest_dir=$4
die() { echo "error: $*" >&2; exit 1; }
dockerfile=images/$step/Dockerfile
[[ -f "$dockerfile" ]] || die "no $dockerfile (run from the repository root)"
label() { docker image inspect --format '{{ index .Config.Labels "io.yoda.stand-in" }}' "$1"; }

pinned=$(sed -n 's/^ARG BASE_IMAGE=//p' "$dockerfile")
[[ -n "$pinned" ]] || die "$dockerfile has no ARG BASE_IMAGE=… default"
base=${BASE_IMAGE:-$pinned}
standin=$(label "$base" 2>/dev/null || true)
if [[ -n "$standin" ]]; then
    [[ "$standin" == "${pinned%@sha256:*}" ]] \
        || die "$base is a local stand-in for $standin, not for $pinned"
    used="local stand-in $(docker image inspect --format '{{.Id}}' "$base") for $pinned"
else
    [[ "$base" == "$pinned" ]] || die "BASE_IMAGE=$base is not a local stand-in for $pinned"
    name=${base%@*} repo=${base%@*}
    [[ "${name##*/}" == *:* ]] && repo=${name%:*}
    if [[ "$base" == *@sha256:* ]]; then
        docker image inspect "$repo@${base#*@}" >/dev/null 2>&1 \
            || docker pull --quiet "$repo@${base#*@}" >/dev/null \
            || die "cannot pull the base $base: is its digest right? (images/$step/Dockerfile)"
        used=$base
    else  # by tag: pulled now, so that the build uses exactly the digest recorded
        docker pull --quiet "$base" >/dev/null || die "cannot pull the base $base"
        digest=$(docker image inspect --format '{{range .RepoDigests}}{{println .}}{{end}}' "$base" \
            | grep -m1 -E "^(docker\.io/(library/)?)?$repo@sha256:[0-9a-f]{64}$" || true)
        [[ -n "$digest" ]] || die "no registry digest of the base $base"
        used=$base@${digest#*@}
    fi
    base=$used
fi
echo "$step: base $used"

# The previous :latest is the layer cache; the first build has none.
docker pull --quiet "$image:latest" >/dev/null 2>&1 \
    || echo "$step: no $image:latest yet: building without a layer cache"
start=$SECONDS
# shellcheck disable=SC2086  # DOCKER_BUILD_FLAGS is a list of flags
docker build --file "$dockerfile" --build-arg BASE_IMAGE="$base" --cache-from "$image:latest" \
    --build-arg BUILDKIT_INLINE_CACHE=1 ${DOCKER_BUILD_FLAGS:-} \
    --tag "$image:$tag" --tag "$image:latest" .
echo "$step: built $image:$tag in $((SECONDS - start)) s"

# An image on a local stand-in base (images/local/standin-bases.sh) never leaves this machine.
standin=$(label "$image:$tag")
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
echo "$used" > "$digest_dir/$step.base"
echo "$step: $digest"
