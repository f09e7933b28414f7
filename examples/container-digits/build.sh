#!/bin/sh
# Builds the image the container-digits example runs in, with Debian's tools and no
# container engine: mmdebstrap installs bookworm's python3 and numpy into a directory, and
# `ogpu image build` writes it as an OCI image archive whose command is python3 (the task's
# args name the script). Needs root, mmdebstrap and the Debian mirror; takes about a
# minute. The archive (about 180 MiB) is not committed.
#
#   examples/container-digits/build.sh [OUT]     default: examples/container-digits/image.oci.tar
#
# `ogpu` is taken from $OGPU, else from PATH.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/image.oci.tar}
ogpu=${OGPU:-ogpu}
rootfs=$(mktemp -d)
trap 'rm -rf "$rootfs"' EXIT
# What a task never reads is left out: documentation, translations, apt's package lists
# and numpy's own tests.
mmdebstrap --quiet --variant=essential --include=python3-numpy \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --customize-hook='rm -rf "$1"/usr/lib/python3/dist-packages/numpy/*/tests "$1"/var/lib/apt/lists/*' \
    bookworm "$rootfs" http://deb.debian.org/debian
# The device nodes it made: the sandbox makes its own /dev, and an image holds none.
rm -rf "${rootfs:?}"/dev/*
# One BLAS thread: the same sums in the same order on every provider, so that a verifier's
# replay lands on the executor's checkpoint bit for bit.
"$ogpu" image build "$rootfs" -o "$out" --entrypoint python3 \
    --env PATH=/usr/local/bin:/usr/bin:/bin --env OPENBLAS_NUM_THREADS=1 --env PYTHONDONTWRITEBYTECODE=1
