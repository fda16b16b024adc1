#!/usr/bin/env sh
# Find a Chromium for the static figures (kaleido) and the browser test; install Debian's when missing and possible.
# Quiet when one is found. Without one: installs `chromium` with apt-get when run as root, else says how.
# BROWSER_REQUIRED=1 makes a missing browser an error (make figures, CI); otherwise the browser tests skip.
set -u
found() {
    if [ -n "${BROWSER_PATH:-}" ] && [ -x "$BROWSER_PATH" ]; then echo "$BROWSER_PATH"; return 0; fi
    for b in chromium chromium-browser google-chrome google-chrome-stable; do
        if command -v "$b" >/dev/null 2>&1; then command -v "$b"; return 0; fi
    done
    return 1
}
if found >/dev/null; then exit 0; fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing Debian's chromium (static figures and the browser test need it)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1 \
        || { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1; }
fi
if found >/dev/null; then exit 0; fi
echo "no Chromium found: install it (Debian/Ubuntu: sudo apt-get install chromium) or set BROWSER_PATH to a" \
     "Chrome/Chromium executable. Without it 'make figures' cannot export images and the browser test skips." >&2
[ "${BROWSER_REQUIRED:-0}" = 1 ] && exit 1
exit 0
