#!/bin/sh
# Installs the PostgreSQL server binaries the store's tests start a throwaway server with.
# Idempotent: does nothing when initdb and pg_ctl are already on PATH or in Debian's
# /usr/lib/postgresql/<version>/bin. Installs Debian's `postgresql` package otherwise
# (needs root and apt-get), and prints the binaries' folder.
set -eu

find_bin_dir() {
    if command -v pg_ctl >/dev/null 2>&1 && command -v initdb >/dev/null 2>&1; then
        dirname "$(command -v pg_ctl)"
        return 0
    fi
    for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        if [ -x "$dir/pg_ctl" ] && [ -x "$dir/initdb" ]; then
            echo "$dir"
            return 0
        fi
    done
    return 1
}

if bin_dir=$(find_bin_dir); then
    echo "PostgreSQL binaries already installed in $bin_dir" >&2
    echo "$bin_dir"
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "error: PostgreSQL is not installed and apt-get is not available; install the PostgreSQL server binaries (initdb, pg_ctl) by hand" >&2
    exit 1
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi

echo "installing PostgreSQL from Debian packages" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends postgresql >&2

# The package starts a cluster of its own on some systems; the tests never use it.
if bin_dir=$(find_bin_dir); then
    echo "$bin_dir"
else
    echo "error: the postgresql package installed no initdb/pg_ctl" >&2
    exit 1
fi
