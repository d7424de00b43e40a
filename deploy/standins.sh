#!/bin/sh
# Make sure the base images that docker/Dockerfile and docker/compose.yaml name exist in podman's
# storage: pull each one, and where no registry answers, build a stand-in under the official
# name from a Debian bookworm rootfs (debootstrap --variant=minbase, podman import, then
# deploy/standins/<name>.Containerfile). The rootfs tarball and the images are kept, so a second
# run is fast. Stand-ins carry the label wechat-link-bot.standin=true; `make test-deploy-clean`
# removes them. Env: DEPLOY_CACHE (default ~/.cache/wechat-link-bot/deploy), DEBIAN_MIRROR.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
cache=${DEPLOY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/wechat-link-bot/deploy}
base=localhost/wechat-link-bot-standin/bookworm:minbase
mkdir -p "$cache"

# The Debian mirror this machine's apt uses (deb822 "URIs:" or one-line "deb URL bookworm").
mirror() {
  [ -n "${DEBIAN_MIRROR:-}" ] && { echo "$DEBIAN_MIRROR"; return; }
  found=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources \
      2>/dev/null | sed -n -e 's/^URIs:[[:space:]]*//p' -e 's/^deb[[:space:]]\+\(\[[^]]*\][[:space:]]\+\)\?\([^[:space:]]\+\)[[:space:]]\+bookworm[[:space:]].*/\2/p' \
      | grep -E '/debian/?$' | head -n 1)
  echo "${found:-http://deb.debian.org/debian}"
}

base_image() {
  podman image exists "$base" && return
  tarball="$cache/bookworm-minbase.tar"
  if [ ! -s "$tarball" ]; then
    url=$(mirror)
    echo "debootstrap --variant=minbase bookworm from $url (once; cached in $cache)"
    rm -rf "$cache/rootfs"
    debootstrap --variant=minbase bookworm "$cache/rootfs" "$url" >"$cache/debootstrap.log" 2>&1 \
      || { tail -n 20 "$cache/debootstrap.log" >&2; exit 1; }
    tar -C "$cache/rootfs" -cf "$tarball.tmp" .
    mv "$tarball.tmp" "$tarball"
    rm -rf "$cache/rootfs"
  fi
  podman import --quiet "$tarball" "$base" >/dev/null
}

# ensure IMAGE STANDIN: the official IMAGE, pulled, or the stand-in built from STANDIN.Containerfile.
ensure() {
  image=docker.io/library/$1
  podman image exists "$image" && return
  if timeout 60 podman pull --quiet "$image" >/dev/null 2>&1; then
    echo "pulled $image"
    return
  fi
  echo "no registry answered for $image: building a stand-in"
  base_image
  podman build --quiet --network host --label wechat-link-bot.standin=true -t "$image" \
    -f "$here/standins/$2.Containerfile" "$here/standins" >/dev/null
}

ensure python:3.11-slim python
ensure nginx:1.27 nginx
ensure redis:7 redis
