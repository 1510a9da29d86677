#!/usr/bin/env bash
# The base image of the container check: debian:bookworm-slim, made here rather than pulled,
# since the machine has no registry: debootstrap --variant=minbase from the apt mirror this
# machine uses, slimmed like Debian's official -slim image, as a root-filesystem tarball that
# is cached between runs and remade when older than GS_BASE_MAX_AGE_DAYS (30), so that it
# picks up security updates, or when the mirror or the recipe changed.
#
#   scripts/container-base.sh            make (or reuse) the tarball; its path is the last line
#   scripts/container-base.sh --import   and import it into podman's default storage as
#                                        docker.io/library/debian:bookworm-slim
#
# scripts/container-check.sh sources this file for container_base_tarball and
# container_base_import, and imports the tarball into its own private podman storage.
# Settings: GS_CONTAINER_CACHE (the cache directory, default
# ${XDG_CACHE_HOME:-$HOME/.cache}/genserv), GS_DEBIAN_MIRROR (default: from /etc/apt),
# GS_BASE_MAX_AGE_DAYS (30). Needs root (or sudo) for debootstrap.
#
# When sourced, the caller provides what the functions use: step/ok/die and sudo
# (scripts/lib/steps.sh), and a work directory $work.

cache=${GS_CONTAINER_CACHE:-${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/genserv}
suite=bookworm
base_ref=docker.io/library/debian:bookworm-slim
max_age_days=${GS_BASE_MAX_AGE_DAYS:-30}
# Bump when the way the base is made changes, so that cached tarballs are remade.
base_recipe=1

# Hold the container scripts' lock on the cache (fd 9, until exit): one of them at a time
# writes it.
container_cache_lock() {
    mkdir -p "$cache"
    exec 9>"$cache/.container-check.lock"
    flock -w 900 9 || die "another container check holds $cache/.container-check.lock"
}

# The Debian mirrors this machine's apt uses: the first URI that serves suite $1.
apt_uris() {
    local files=() f
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
        /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] && files+=("$f")
    done
    [ ${#files[@]} -gt 0 ] || return 0
    awk -v want="$1" '
        function has(list, w,   n, a, i) { n = split(list, a, /[ \t]+/); for (i = 1; i <= n; i++) if (a[i] == w) return 1; return 0 }
        function flush() { if (types != "" && has(types, "deb") && has(suites, want) && uris != "") { split(uris, u, /[ \t]+/); print u[1]; found = 1; exit } types = uris = suites = "" }
        FNR == 1 { flush() }
        FILENAME ~ /\.sources$/ {
            if ($0 ~ /^[ \t]*$/) { flush(); next }
            if ($0 ~ /^Types:/) { sub(/^Types:[ \t]*/, ""); types = $0 }
            else if ($0 ~ /^URIs:/) { sub(/^URIs:[ \t]*/, ""); uris = $0 }
            else if ($0 ~ /^Suites:/) { sub(/^Suites:[ \t]*/, ""); suites = $0 }
            next
        }
        /^[ \t]*deb[ \t]/ {
            line = $0; gsub(/\[[^]]*\]/, "", line); n = split(line, w, /[ \t]+/)
            i = (w[1] == "") ? 2 : 1
            if (w[i + 2] == want) { print w[i + 1]; found = 1; exit }
        }
        END { if (!found) flush() }
    ' "${files[@]}"
}

# Make or reuse $cache/debian-$suite-slim-rootfs.tar; sets base_tarball to its path.
# shellcheck disable=SC2154 # work comes from the caller (see above)
container_base_tarball() {
    local mirror security meta rootfs
    mirror=${GS_DEBIAN_MIRROR:-$(apt_uris "$suite")}
    mirror=${mirror:-http://deb.debian.org/debian}
    security=$(apt_uris "$suite-security")
    meta="recipe=$base_recipe suite=$suite mirror=$mirror security=$security"
    base_tarball="$cache/debian-$suite-slim-rootfs.tar"

    if [ -f "$base_tarball" ] && [ "$(cat "$base_tarball.meta" 2>/dev/null)" = "$meta" ] &&
        [ -z "$(find "$base_tarball" -mtime +"$max_age_days")" ]; then
        ok "cached: $base_tarball ($(du -m "$base_tarball" | cut -f1) MB," \
            "$(date -r "$base_tarball" +%F))"
        return 0
    fi
    echo "  debootstrap --variant=minbase $suite from $mirror (about 30 s)"
    rootfs="$work/rootfs"
    timeout 600 "${sudo[@]}" debootstrap --variant=minbase "$suite" "$rootfs" "$mirror" \
        >"$work/debootstrap.log" 2>&1 || {
        tail -20 "$work/debootstrap.log" >&2
        die "debootstrap failed (log: $work/debootstrap.log)"
    }
    # What Debian's official -slim image does to a minbase: no documentation, manuals or
    # translations (now and for every later install), no package caches or lists, apt
    # sources for the release, its updates and its security archive.
    "${sudo[@]}" sh -eu -c '
        r=$1 mirror=$2 security=$3 suite=$4
        cat >"$r/etc/dpkg/dpkg.cfg.d/docker" <<EOF
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/info/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/lintian/overrides/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
EOF
        cat >"$r/etc/apt/apt.conf.d/docker-clean" <<EOF
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
        echo "Acquire::Languages \"none\";" >"$r/etc/apt/apt.conf.d/docker-no-languages"
        echo "Acquire::GzipIndexes \"true\";" >"$r/etc/apt/apt.conf.d/docker-gzip-indexes"
        rm -f "$r/etc/apt/sources.list"
        {
            printf "Types: deb\nURIs: %s\nSuites: %s %s-updates\nComponents: main\n" "$mirror" "$suite" "$suite"
            [ -z "$security" ] || printf "\nTypes: deb\nURIs: %s\nSuites: %s-security\nComponents: main\n" "$security" "$suite"
        } >"$r/etc/apt/sources.list.d/debian.sources"
        find "$r/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
        find "$r/usr/share/doc" -mindepth 1 -type d -empty -delete
        rm -rf "$r"/usr/share/info/* "$r"/usr/share/linda/* "$r"/usr/share/lintian/overrides/* \
            "$r"/usr/share/locale/* "$r"/usr/share/man/* "$r"/usr/share/groff/* \
            "$r"/var/lib/apt/lists/* "$r"/var/cache/apt/*.bin "$r"/var/cache/apt/archives/*.deb \
            "$r"/var/log/* "$r"/tmp/* "$r"/etc/resolv.conf "$r"/etc/hostname
        mkdir -p "$r/var/lib/apt/lists/partial"
    ' sh "$rootfs" "$mirror" "$security" "$suite"
    "${sudo[@]}" tar --numeric-owner -C "$rootfs" --exclude='./dev/*' --exclude='./proc/*' \
        --exclude='./sys/*' -cf "$base_tarball.tmp" .
    "${sudo[@]}" rm -rf "$rootfs"
    "${sudo[@]}" chown "$(id -u):$(id -g)" "$base_tarball.tmp"
    mv -f "$base_tarball.tmp" "$base_tarball"
    printf '%s\n' "$meta" >"$base_tarball.meta"
    ok "made $base_tarball ($(du -m "$base_tarball" | cut -f1) MB)"
}

# Import tarball $1 as $base_ref with podman, run as "$2..." (e.g. a wrapper with a time bound
# and private storage); the image gets the official one's PATH and CMD.
container_base_import() {
    local tarball=$1
    shift
    "$@" import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'CMD ["bash"]' --quiet "$tarball" "$base_ref" >/dev/null
    ok "imported as $base_ref"
}

# Run as a script: make the tarball (and import it with --import), print its path.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    set -euo pipefail
    cd "$(dirname "$0")/.."
    import=0
    case "${1:-}" in
    "") ;;
    --import) import=1 ;;
    *)
        echo "usage: $0 [--import]" >&2
        exit 2
        ;;
    esac
    # shellcheck source=scripts/lib/steps.sh
    . scripts/lib/steps.sh
    # shellcheck source=scripts/lib/cleanup.sh
    . scripts/lib/cleanup.sh
    cleanup_sudo=("${sudo[@]}")

    pkgs=(debootstrap)
    [ "$import" = 0 ] || pkgs+=(podman runc uidmap)
    step "tools: ${pkgs[*]}"
    need_packages "${pkgs[@]}"
    container_cache_lock
    cleanup_workdir work /var/tmp/genserv-container-base.XXXXXX "logs kept in"
    chmod 755 "$work"

    step "base image $base_ref (debootstrap, cached)"
    container_base_tarball
    [ "$import" = 0 ] || container_base_import "$base_tarball" timeout 300 "${sudo[@]}" podman
    echo "$base_tarball"
fi
