#!/usr/bin/env bash
# Installs Debian's chromium for the report's headless-browser test (tests/test_report.py)
# when there is none, we are root and apt-get exists. Never fails: without a browser
# that one test skips and says why.
for browser in chromium chromium-browser google-chrome google-chrome-stable; do
    if command -v "$browser" >/dev/null 2>&1; then
        exit 0
    fi
done
if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "no Chromium and no root apt-get: the report's browser test will skip"
    exit 0
fi
echo "installing chromium for the report's browser test (apt-get)"
if ! (apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends chromium) >/tmp/vaekit-apt.log 2>&1; then
    echo "apt-get could not install chromium (see /tmp/vaekit-apt.log): the browser test will skip"
fi
exit 0
