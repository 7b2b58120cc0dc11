#!/bin/sh
# Installs headless Chromium and chromedriver for the web pages' browser tests
# (crates/slipway-server/tests/browser.rs). Idempotent: does nothing when both
# /usr/bin/chromium and /usr/bin/chromedriver are already there. Installs Debian's
# `chromium` and `chromium-driver` packages otherwise (needs root or sudo, and apt-get).
set -eu

CHROMIUM=/usr/bin/chromium
CHROMEDRIVER=/usr/bin/chromedriver

if [ -x "$CHROMIUM" ] && [ -x "$CHROMEDRIVER" ]; then
    echo "chromium and chromedriver already installed" >&2
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "error: chromium/chromedriver are not installed and apt-get is not available; install $CHROMIUM and $CHROMEDRIVER by hand" >&2
    exit 1
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi

echo "installing chromium and chromium-driver from Debian packages" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver >&2

if [ -x "$CHROMIUM" ] && [ -x "$CHROMEDRIVER" ]; then
    echo "installed $CHROMIUM and $CHROMEDRIVER" >&2
else
    echo "error: the packages installed no $CHROMIUM or no $CHROMEDRIVER" >&2
    exit 1
fi
