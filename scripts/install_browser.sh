#!/usr/bin/env bash
# Installs headless Chromium and its driver for the browser end-to-end tests (tests/e2e).
# Idempotent: does nothing when both are present. Never fails `make test`: where it cannot install
# (not root, not Debian/apt), it says so and the browser tests skip (or fail under CI=true or
# MXM_REQUIRE_BROWSER=1).
set -euo pipefail

CHROMIUM=/usr/bin/chromium
CHROMEDRIVER=/usr/bin/chromedriver

if [[ -x "$CHROMIUM" && -x "$CHROMEDRIVER" ]]; then
    exit 0
fi

if [[ "$(id -u)" -eq 0 ]] && command -v apt-get >/dev/null 2>&1 && [[ -f /etc/debian_version ]]; then
    echo "install_browser: installing chromium and chromium-driver with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    # Headless use needs none of the recommends (udev, upower, mesa...); the UI ships its fonts.
    if apt-get update -qq &&
        apt-get install -y -qq --no-install-recommends chromium chromium-driver &&
        [[ -x "$CHROMIUM" && -x "$CHROMEDRIVER" ]]; then
        exit 0
    fi
    echo "install_browser: installing with apt-get failed (no package mirror reachable?)" >&2
fi

echo "install_browser: $CHROMIUM or $CHROMEDRIVER is missing and cannot be installed here" \
    "(that needs root on Debian with apt-get): the browser tests in tests/e2e will be skipped," \
    "or fail where CI=true or MXM_REQUIRE_BROWSER=1. Install the Debian packages chromium and" \
    "chromium-driver to run them."
exit 0
