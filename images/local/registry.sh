#!/usr/bin/env bash
# A Docker registry on this machine for `make build-images-local` / `make run-docker`: Debian's
# docker-registry (the CNCF distribution registry), bound to 127.0.0.1 only, its storage in
# STORAGE. `start` reuses a registry already answering at ADDRESS; `stop` stops only the one
# `start` launched (by the PID it recorded).
#
#   images/local/registry.sh start|stop ADDRESS STORAGE      e.g. 127.0.0.1:5000 build/registry
set -euo pipefail
action=$1 address=$2 storage=$3
pid_file="$storage/registry.pid"
die() { echo "error: $*" >&2; exit 1; }
answers() { curl --silent --fail --max-time 2 "http://$address/v2/" >/dev/null 2>&1; }

case "$action" in
start)
    [[ "$address" =~ ^(127\.0\.0\.1|localhost):[0-9]+$ ]] \
        || die "LOCAL_REGISTRY=$address: the local registry must be on 127.0.0.1:PORT"
    if answers; then echo "registry: using the one running at $address"; exit 0; fi
    command -v docker-registry >/dev/null \
        || die "no registry answers at $address and docker-registry is missing: apt-get install docker-registry"
    mkdir -p "$storage/data"
    storage=$(cd "$storage" && pwd)
    cat > "$storage/config.yml" <<CONFIG
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $storage/data
  delete:
    enabled: true
http:
  addr: $address
CONFIG
    docker-registry serve "$storage/config.yml" >"$storage/registry.log" 2>&1 &
    echo $! > "$pid_file"
    for _ in $(seq 50); do
        if answers; then echo "registry: started at $address (pid $(< "$pid_file"), storage $storage/data)"; exit 0; fi
        kill -0 "$(< "$pid_file")" 2>/dev/null || break
        sleep 0.2
    done
    die "the registry did not start at $address: see $storage/registry.log"
    ;;
stop)
    if [[ -f "$pid_file" ]]; then
        pid=$(< "$pid_file")
        # only our registry: the PID of an earlier session may belong to another process by now
        if grep -qs docker-registry "/proc/$pid/cmdline" && kill "$pid" 2>/dev/null; then
            echo "registry: stopped (pid $pid)"
        fi
        rm -f "$pid_file"
    fi
    ;;
*) die "usage: $0 start|stop ADDRESS STORAGE" ;;
esac
