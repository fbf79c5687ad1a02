#!/usr/bin/env bash
# Write the image lock that compile reads, step -> REGISTRY/PATH/NAME@sha256:… (digests only),
# and under "bases" the base each image was built on (step -> NAME:TAG@sha256:…, or
# `local stand-in sha256:<image id> for …`), from the files images/build-push.sh wrote. Used by
# cloudbuild.yaml and `make build-images-local`.
#
#   images/write-lock.sh DIGEST_DIR LOCK_FILE
set -euo pipefail
digest_dir=$1 lock=$2
steps=(data_transformation fine_tuning inference evaluation registry)
for file in "${steps[@]}" "${steps[@]/%/.base}"; do
    [[ -s "$digest_dir/$file" ]] || { echo "error: no $file in $digest_dir" >&2; exit 1; }
    # what goes between JSON quotes as it is
    [[ "$(< "$digest_dir/$file")" =~ ^[A-Za-z0-9._/:@\ -]+$ ]] \
        || { echo "error: $digest_dir/$file is not an image reference" >&2; exit 1; }
done
# entries SUFFIX INDENT: one `"step": "value"` line per step, comma-separated
entries() {
    for i in "${!steps[@]}"; do
        separator=$([[ $i -lt $((${#steps[@]} - 1)) ]] && echo "," || true)
        printf '%s"%s": "%s"%s\n' "$2" "${steps[$i]}" "$(< "$digest_dir/${steps[$i]}$1")" "$separator"
    done
}
mkdir -p "$(dirname "$lock")"
{
    echo "{"
    entries "" "  " | sed '$ s/$/,/'
    echo '  "bases": {'
    entries .base "    "
    echo "  }"
    echo "}"
} > "$lock"
cat "$lock"
