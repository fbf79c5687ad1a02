#!/usr/bin/env bash
# Write the image lock that compile reads, step -> REGISTRY/PATH/NAME@sha256:… (digests only),
# from the digest files images/build-push.sh wrote. Used by cloudbuild.yaml and
# `make build-images-local`.
#
#   images/write-lock.sh DIGEST_DIR LOCK_FILE
set -euo pipefail
digest_dir=$1 lock=$2
steps=(data_transformation fine_tuning inference evaluation registry)
for step in "${steps[@]}"; do
    [[ -s "$digest_dir/$step" ]] || { echo "error: no digest for $step in $digest_dir" >&2; exit 1; }
done
mkdir -p "$(dirname "$lock")"
{
    echo "{"
    for i in "${!steps[@]}"; do
        separator=$([[ $i -lt $((${#steps[@]} - 1)) ]] && echo "," || true)
        printf '  "%s": "%s"%s\n' "${steps[$i]}" "$(< "$digest_dir/${steps[$i]}")" "$separator"
    done
    echo "}"
} > "$lock"
cat "$lock"
