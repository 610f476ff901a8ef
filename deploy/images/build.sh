#!/usr/bin/env bash
# Build the local images from Debian's packages with podman, each tagged by a hash of
# what it is built from, and skip any that already exist (podman's storage, outside
# the clone, is the cache):
#
#   localhost/smokesignal-debian:bookworm-HASH    debootstrap minbase, imported
#   localhost/smokesignal-python:3.11-HASH        python.Dockerfile on it
#   localhost/smokesignal-postgres:15-HASH        postgres.Dockerfile on it
#   localhost/smokesignal-rabbitmq:3.10-HASH      rabbitmq.Dockerfile on it
#   localhost/smokesignal:HASH                    deploy/Dockerfile on the Python image
#
# Prints the names as shell assignments (PYTHON_IMAGE=… POSTGRES_IMAGE=…
# RABBITMQ_IMAGE=… SMOKESIGNAL_IMAGE=…) on stdout and writes them to
# $SMOKESIGNAL_CACHE/images/images.env; progress goes to stderr.
# `build.sh --base-only` skips the smokesignal image.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache=${SMOKESIGNAL_CACHE:-$HOME/.cache/smokesignal}/images
mkdir -p "$cache"
export CONTAINERS_CONF=${CONTAINERS_CONF:-$repo/deploy/podman/containers.conf}
# Debian's mirror for debootstrap; images use the same one through their apt sources.
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
# A CA bundle for pip inside the build (a TLS-intercepting proxy's CA lives here).
ca_bundle=${SMOKESIGNAL_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}

log() { echo "build.sh: $*" >&2; }

hash_of() { # files and strings → 12 hex digits
    { for item in "$@"; do
        if [ -f "$item" ]; then sha256sum <"$item"; else printf '%s\n' "$item"; fi
    done; } | sha256sum | cut -c1-12
}

exists() { podman image exists "$1"; }

# podman keeps HEALTHCHECK only in the docker image format.
build() { # tag dockerfile context [podman build args...]
    local tag=$1 file=$2 context=$3
    shift 3
    log "building $tag"
    podman build --quiet --format docker --layers -t "$tag" -f "$file" "$@" "$context" >/dev/null
}

# --- Debian bookworm minbase -------------------------------------------------------------
debian_recipe="debootstrap --variant=minbase bookworm v1"
debian=localhost/smokesignal-debian:bookworm-$(hash_of "$debian_recipe")
if ! exists "$debian"; then
    rootfs=$(mktemp -d "$cache/rootfs.XXXXXX")
    trap 'rm -rf "$rootfs"' EXIT
    log "debootstrap bookworm into $rootfs (about a minute)"
    debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$cache/debootstrap.log" 2>&1 \
        || { tail -20 "$cache/debootstrap.log" >&2; exit 1; }
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    tar -C "$rootfs" -c . | podman import --quiet - "$debian" >/dev/null
    rm -rf "$rootfs"
    trap - EXIT
fi

base_image() { # name version dockerfile [extra files]
    local name=$1 version=$2 file=$here/$3
    shift 3
    local tag
    tag=localhost/smokesignal-$name:$version-$(hash_of "$debian" "$file" "$@")
    if ! exists "$tag"; then
        build "$tag" "$file" "$here" --build-arg "DEBIAN_IMAGE=$debian"
    fi
    echo "$tag"
}

python_image=$(base_image python 3.11 python.Dockerfile)
postgres_image=$(base_image postgres 15 postgres.Dockerfile "$here/postgres-entrypoint.sh")
rabbitmq_image=$(base_image rabbitmq 3.10 rabbitmq.Dockerfile "$here/rabbitmq-entrypoint.sh")

# --- the project image -------------------------------------------------------------------
smokesignal_image=
if [ "${1:-}" != "--base-only" ]; then
    # The build context: exactly what deploy/Dockerfile copies (see its .dockerignore),
    # tarred reproducibly so its hash names the image.
    context=$(mktemp -d "$cache/context.XXXXXX")
    trap 'rm -rf "$context"' EXIT
    (cd "$repo" && tar -c --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner \
        --exclude=__pycache__ --exclude='*.pyc' \
        pyproject.toml README.md shared services deploy/Dockerfile \
        deploy/entrypoint.sh deploy/healthcheck.py) >"$context/context.tar"
    smokesignal_image=localhost/smokesignal:$(hash_of "$python_image" "$context/context.tar")
    if ! exists "$smokesignal_image"; then
        tar -C "$context" -xf "$context/context.tar"
        rm "$context/context.tar"
        build "$smokesignal_image" "$context/deploy/Dockerfile" "$context" \
            --build-arg "PYTHON_IMAGE=$python_image" --secret "id=pip-ca,src=$ca_bundle"
    fi
    rm -rf "$context"
    trap - EXIT
fi

{
    echo "PYTHON_IMAGE=$python_image"
    echo "POSTGRES_IMAGE=$postgres_image"
    echo "RABBITMQ_IMAGE=$rabbitmq_image"
    [ -z "$smokesignal_image" ] || echo "SMOKESIGNAL_IMAGE=$smokesignal_image"
} | tee "$cache/images.env"
