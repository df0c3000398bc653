# shellcheck shell=bash
# The container sandbox backend's tests run on a private Podman: its own
# configuration and storage in the cache folder (nothing of the system's is
# changed), serving the Docker Engine API on a socket of its own, with a
# sandbox image built from Debian's packages by debootstrap (once per recipe,
# kept in the cache folder). Sourced by scripts/test.sh (after common.sh);
# Podman needs root.

PODMAN_TMP=""
PODMAN_PID=""
# What the sandbox image holds; a change here builds a new image.
SANDBOX_IMAGE_PACKAGES="python3,python-is-python3"

# A command with the private configuration in its environment.
with_podman_config() {
    CONTAINERS_CONF="$CAIRN_CACHE_DIR/podman/containers.conf" \
        CONTAINERS_STORAGE_CONF="$CAIRN_CACHE_DIR/podman/storage.conf" \
        TMPDIR="$CAIRN_CACHE_DIR/podman/tmp" "$@"
}

# Podman with the private configuration.
pod() {
    with_podman_config podman "$@"
}

# The Debian mirror this machine installs its packages from.
debian_mirror() {
    local uri
    uri=$(grep -h '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' | head -n 1)
    if [[ -z $uri ]]; then
        uri=$(grep -h '^deb ' /etc/apt/sources.list 2>/dev/null | awk '{print $2}' | head -n 1)
    fi
    [[ -n $uri ]] || die "no Debian mirror found in /etc/apt (needed to build the sandbox image)"
    printf '%s\n' "$uri"
}

debian_release() {
    # shellcheck disable=SC1091 # the machine's own release file
    (. /etc/os-release && printf '%s\n' "$VERSION_CODENAME")
}

# Builds a Debian root file system (minbase, plus the packages named, comma
# separated, if any, and an empty folder at the root if named) into a tar
# file.
debootstrap_image() {
    local tar=$1 packages=$2 what=$3 folder=${4:-} release tmp include=()
    release=$(debian_release)
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/cairn-image.XXXXXX")
    [[ -z $packages ]] || include=(--include="$packages")
    log "setup: building $what with debootstrap ($release; once, kept in the cache folder)"
    if ! debootstrap --variant=minbase "${include[@]}" "$release" "$tmp/rootfs" \
        "$(debian_mirror)" >"$tmp/debootstrap.log" 2>&1; then
        tail -n 30 "$tmp/debootstrap.log" >&2
        rm -rf "$tmp"
        die "debootstrap failed"
    fi
    rm -rf "$tmp/rootfs/var/lib/apt/lists/"* "$tmp/rootfs/usr/share/doc" "$tmp/rootfs/usr/share/man" \
        "$tmp/rootfs/usr/share/locale"
    [[ -z $folder ]] || mkdir -p "$tmp/rootfs/$folder"
    mkdir -p "$(dirname "$tar")"
    tar -C "$tmp/rootfs" -cf "$tar.partial" .
    mv "$tar.partial" "$tar"
    rm -rf "$tmp"
}

# Writes the private configuration: no default rlimits (hosts whose hard
# limits are lower refuse them), cgroupfs (no systemd needed), no network
# for containers unless asked, everything under the cache folder.
write_podman_config() {
    local root=$1
    mkdir -p "$root/storage" "$root/run" "$root/tmp" "$root/cni"
    printf '%s\n' \
        '[containers]' \
        'default_ulimits = []' \
        'default_sysctls = []' \
        'netns = "none"' \
        'log_driver = "k8s-file"' \
        '' \
        '[network]' \
        'network_backend = "cni"' \
        "network_config_dir = \"$root/cni\"" \
        '' \
        '[engine]' \
        'cgroup_manager = "cgroupfs"' \
        'runtime = "runc"' \
        'events_logger = "file"' \
        "events_logfile_path = \"$root/events.log\"" \
        "tmp_dir = \"$root/tmp\"" \
        "static_dir = \"$root/storage/libpod\"" \
        "volume_path = \"$root/storage/volumes\"" \
        "image_copy_tmp_dir = \"$root/tmp\"" >"$root/containers.conf"
    printf '%s\n' \
        '[storage]' \
        'driver = "overlay"' \
        "graphroot = \"$root/storage\"" \
        "runroot = \"$root/run\"" >"$root/storage.conf"
}

start_container_engine() {
    local root="$CAIRN_CACHE_DIR/podman" missing=() tool key image tar waited=0
    [[ $(id -u) -eq 0 ]] || die "the container sandbox tests run a rootful Podman: run the test command as root"
    for tool in podman runc debootstrap catatonit; do
        command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
    done
    [[ ${#missing[@]} -eq 0 ]] || apt_install podman runc debootstrap catatonit uidmap
    write_podman_config "$root"
    key=$(printf '%s %s' "$SANDBOX_IMAGE_PACKAGES" "$(debian_release)" | sha256sum | cut -c1-12)
    image="localhost/cairn-sandbox-test:$key"
    if ! pod image exists "$image" 2>/dev/null; then
        tar="$CAIRN_CACHE_DIR/images/sandbox-$key.tar"
        [[ -s $tar ]] || debootstrap_image "$tar" "$SANDBOX_IMAGE_PACKAGES" "the sandbox image" workspace
        pod import --quiet --change 'WORKDIR /workspace' "$tar" "$image" >/dev/null ||
            die "cannot import the sandbox image into Podman"
    fi
    PODMAN_TMP=$(mktemp -d "${TMPDIR:-/tmp}/cairn-test-podman.XXXXXX")
    # Started with exec (not through `pod`), so that $! is Podman's own PID;
    # in its own folder, where its monitor leaves files such as `oom`.
    (cd "$PODMAN_TMP" && CONTAINERS_CONF="$root/containers.conf" CONTAINERS_STORAGE_CONF="$root/storage.conf" \
        TMPDIR="$root/tmp" exec podman system service --time=0 "unix://$PODMAN_TMP/podman.sock" \
        >"$PODMAN_TMP/service.log" 2>&1) &
    PODMAN_PID=$!
    until curl -sf --unix-socket "$PODMAN_TMP/podman.sock" http://podman/version >/dev/null 2>&1; do
        if [[ $waited -ge 60 ]] || ! kill -0 "$PODMAN_PID" 2>/dev/null; then
            cat "$PODMAN_TMP/service.log" >&2 || true
            die "Podman's API service did not start"
        fi
        sleep 0.5
        waited=$((waited + 1))
    done
    log "services: Podman's Docker-compatible API on $PODMAN_TMP/podman.sock, image $image"
    export CAIRN_TEST_CONTAINER_ENGINE="unix://$PODMAN_TMP/podman.sock"
    export CAIRN_TEST_CONTAINER_IMAGE="$image"
}

stop_container_engine() {
    [[ -n $PODMAN_TMP ]] || return 0
    if [[ -n $PODMAN_PID ]] && kill -0 "$PODMAN_PID" 2>/dev/null; then
        kill "$PODMAN_PID" 2>/dev/null || true
        wait "$PODMAN_PID" 2>/dev/null || true
    fi
    # Sandbox containers that tests dropped without stopping (the private
    # storage holds nothing else).
    pod rm --all --force >/dev/null 2>&1 || true
    rm -rf "$PODMAN_TMP"
    PODMAN_TMP=""
}

# Cairn's container image (deploy/Dockerfile) built here: its runtime stage
# as written, on a Debian root file system made by debootstrap in place of
# debian:bookworm-slim and with the binary the tests built in place of the
# release build stage (no registry of images is reachable here, so the
# stages FROM rust and node cannot be built). Its apt and pip steps fetch
# from this machine's package mirrors with this machine's CA bundle and pip
# index, given to the build in a mount (/root/.config/pip, left empty in the
# image). Layers are cached in the private storage: after the first build
# only the binary's layer is new. Prints the image's name.
build_cairn_image() {
    local key base tar tmp cert
    key=$(printf 'minbase, nothing added, %s' "$(debian_release)" | sha256sum | cut -c1-12)
    base="localhost/cairn-debian-minbase:$key"
    if ! pod image exists "$base" 2>/dev/null; then
        tar="$CAIRN_CACHE_DIR/images/minbase-$key.tar"
        [[ -s $tar ]] || debootstrap_image "$tar" "" "the image's base" >&2
        pod import --quiet --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
            "$tar" "$base" >/dev/null || die "cannot import the image's base into Podman"
    fi
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/cairn-image-build.XXXXXX")
    mkdir -p "$tmp/binary/out" "$tmp/pip"
    cp "$CARGO_TARGET_DIR/debug/cairn" "$tmp/binary/out/cairn"
    cert=${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}
    cp "$cert" "$tmp/pip/ca.crt" || die "no CA bundle at $cert (set PIP_CERT)"
    {
        echo '[global]'
        echo 'cert = /root/.config/pip/ca.crt'
        [[ -z ${PIP_INDEX_URL:-} ]] || echo "index-url = $PIP_INDEX_URL"
    } >"$tmp/pip/pip.conf"
    log "deploy: building deploy/Dockerfile's runtime stage on $base" >&2
    # The images of earlier runs, untagged by this one's (their layers below
    # the binary's stay cached).
    pod image prune --force >/dev/null 2>&1 || true
    if ! pod build --quiet --target runtime --network host --build-arg "RUNTIME_BASE=$base" \
        --build-context "build=$tmp/binary" --volume "$tmp/pip:/root/.config/pip:ro" \
        --file "$ROOT/deploy/Dockerfile" --tag localhost/cairn:smoke "$ROOT" >"$tmp/build.log" 2>&1; then
        tail -n 40 "$tmp/build.log" >&2
        rm -rf "$tmp"
        die "the image did not build"
    fi
    rm -rf "$tmp"
    printf '%s\n' localhost/cairn:smoke
}

# Each role in the image (scripts/image_smoke.py).
image_smoke() {
    local venv image
    venv=$(tools_venv)
    command -v psql >/dev/null 2>&1 || apt_install postgresql-client
    build_servers
    image=$(build_cairn_image)
    with_podman_config "$venv/bin/python" "$ROOT/scripts/image_smoke.py" --image "$image" \
        --llm "$CARGO_TARGET_DIR/debug/examples/scripted_llm" --s3s-fs "$CAIRN_TEST_S3S_FS" \
        --database-url "$CAIRN_TEST_POSTGRES_URL" --redis-url "$CAIRN_TEST_REDIS_URL"
}
