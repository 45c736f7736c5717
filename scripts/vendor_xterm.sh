#!/bin/sh
# Vendor xterm.js (MIT) into the dashboard's static files at the pinned versions: the terminal,
# its stylesheet, the fit addon (the terminal sized to its panel) and the canvas renderer (the
# default DOM renderer writes inline <style> the page's CSP refuses). Each file is copied from
# its npm package unchanged, beside its LICENSE, and checked against the sha256 recorded here;
# a new version means new pins and new sums (run with UPDATE=1 to print them, then paste them).
set -eu

XTERM=5.5.0
FIT=0.10.0
CANVAS=0.7.0

SUMS="
1f991ac3b4b283ebf96e60ae23a00a52765dd3a2e46fa6fdda9f1aab032f7495  xterm.js
ba8e6985669488981ccf40c0cefe3aba80722cb6c92de7ad628b0bd717faf2b6  xterm.css
b569f629d00f2626a8100df2a1798210535621e42164dfd426a6fe5aac7b0ccd  xterm.LICENSE
bdaefa370b1bfc42ee88d46fe6072400902a4d4b2d45cd93438dda9b23c97089  xterm-addon-fit.js
e256f01188af527e4d06d21d06fbf785ae9c50d4b328bf03cbe0ba7f0aa4228f  xterm-addon-fit.LICENSE
7b3e904d5bec98b54d26674994cf994396c4af0971010ffd0d4983229b65d933  xterm-addon-canvas.js
689ceb10716bd7a87a804c14951d7c2b818cbd60aab83d540902470ce3b13444  xterm-addon-canvas.LICENSE
"

root=$(cd "$(dirname "$0")/.." && pwd)
static="$root/api/dashboard/static"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cd "$work"
npm pack --silent "@xterm/xterm@$XTERM" "@xterm/addon-fit@$FIT" "@xterm/addon-canvas@$CANVAS" >/dev/null
for tarball in *.tgz; do
  mkdir "${tarball%.tgz}"
  tar -xzf "$tarball" -C "${tarball%.tgz}"
done

copy() {  # <package folder> <file in it> <name in static/>
  cp "$work/$1/package/$2" "$work/$3"
}
copy "xterm-xterm-$XTERM" lib/xterm.js xterm.js
copy "xterm-xterm-$XTERM" css/xterm.css xterm.css
copy "xterm-xterm-$XTERM" LICENSE xterm.LICENSE
copy "xterm-addon-fit-$FIT" lib/addon-fit.js xterm-addon-fit.js
copy "xterm-addon-fit-$FIT" LICENSE xterm-addon-fit.LICENSE
copy "xterm-addon-canvas-$CANVAS" lib/addon-canvas.js xterm-addon-canvas.js
copy "xterm-addon-canvas-$CANVAS" LICENSE xterm-addon-canvas.LICENSE

FILES="xterm.js xterm.css xterm.LICENSE xterm-addon-fit.js xterm-addon-fit.LICENSE
xterm-addon-canvas.js xterm-addon-canvas.LICENSE"
if [ "${UPDATE:-}" = 1 ]; then
  # shellcheck disable=SC2086
  sha256sum $FILES
  exit 0
fi
echo "$SUMS" | grep . | sha256sum --check --quiet
# shellcheck disable=SC2086
cp $FILES "$static/"
echo "xterm.js $XTERM, addon-fit $FIT, addon-canvas $CANVAS vendored into $static"
