#!/usr/bin/env bash
# Download the wheels that the GPU device machine lacks into .whl/ (git-ignored), so a
# `run` call with carry [".whl"] can install them offline (see docs/DEVICE.md).
#
# The device image has Python 3.12, torch, numpy, opencv-python-headless, onnx, onnxruntime,
# pillow, lxml, matplotlib, joblib, requests, ... (/work/.library/device/KINDS.md) but none of
# the packages below. Versions are the ones this project's venv resolved; bump them together
# with the venv. pip matches the platform tags exactly, hence the long --platform list.
#
# Usage (repo root or anywhere):
#   scripts/fetch_device_wheels.sh           wheels into .whl/ (56 MiB; carry ".whl")
#   scripts/fetch_device_wheels.sh --pack    also installs them (for cp312) into one
#                                            .devsite/site.tar.xz (38 MiB; carry ".devsite")
# The working tree plus what a run carries must stay under 64 MiB; the script prints both.
# scripts/device_train.sh takes .devsite/site.tar.xz when it is there, else .whl/*.whl.
# PYTHON=... picks the interpreter whose pip downloads (any version: the tags are explicit).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}

# name==version, one per line. The first six are the project's own dependencies; the rest are
# their non-stdlib requirements missing from the device image (music21 needs chardet,
# jsonpickle, more-itertools, webcolors; joblib, matplotlib, numpy, requests are there).
PACKAGES=(
  verovio==6.4.1
  music21==9.9.2        # ships its corpus (~half the wheel): the synth reads real pieces from it
  converter21==4.0.1
  musicdiff==5.2
  pymupdf==1.28.2
  resvg-py==0.5.0
  chardet==7.7.0
  jsonpickle==4.1.4
  more-itertools==11.2.1
  webcolors==25.10.0
)

grep -qxF '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
mkdir -p .whl
for spec in "${PACKAGES[@]}"; do
  "$PYTHON" -m pip download -q --no-deps --only-binary=:all: \
    --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform manylinux1_x86_64 --platform any \
    -d .whl "$spec"
done

# Only one version of each package may be in .whl/ (two stop the whole install there).
dupes=$(ls .whl/*.whl | xargs -n1 basename | cut -d- -f1 | tr 'A-Z-' 'a-z_' | sort | uniq -d)
if [[ -n "$dupes" ]]; then
  echo "more than one wheel of: $dupes -- delete the stale ones from .whl/" >&2
  exit 1
fi

# Requirements of each wheel (no extras), to check by hand against KINDS.md's package list.
for w in .whl/*.whl; do
  reqs=$(unzip -p "$w" '*.dist-info/METADATA' | grep '^Requires-Dist' | grep -v 'extra ==' \
    | sed 's/^Requires-Dist: //' | tr '\n' ';' || true)
  printf '%-60s %s\n' "$(basename "$w")" "${reqs:-(none)}"
done
du -ch .whl/*.whl | sort -h

if [[ ${1:-} == --pack ]]; then
  # pip --target with an explicit platform does what `pip install` does on the device; xz
  # squeezes the shared libraries and music21's corpus (text) much better than the wheels'
  # deflate. About 1.5 minutes of one core.
  grep -qxF '/.devsite/' .git/info/exclude || echo '/.devsite/' >> .git/info/exclude
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --only-binary=:all: \
    --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform manylinux1_x86_64 --platform any \
    --target "$tmp/site" .whl/*.whl
  # Data the device never reads (scale tunings, language samples, a test recording, MuPDF's
  # C headers): 2.5 MiB of the pack, room for about 500 more carried crops. Modules stay:
  # music21 imports music21.scale.scala.scl at start-up, so only its .scl files go.
  rm -rf "$tmp/site/music21/languageExcerpts/trainingData" "$tmp/site/pymupdf/mupdf-devel"
  find "$tmp/site/music21/scale/scala/scl" -name '*.scl' -delete
  find "$tmp/site/music21/audioSearch" -name '*.wav' -delete
  mkdir -p .devsite
  tar -C "$tmp/site" -cf - . | nice -n 15 xz -9e >.devsite/site.tar.xz.partial
  mv .devsite/site.tar.xz.partial .devsite/site.tar.xz
  ls -l .devsite/site.tar.xz
fi

# What travels: tracked files, untracked files git does not ignore, and the carried folder.
tree=$( (git ls-files -z; git ls-files -z --others --exclude-standard) | xargs -0 du -cb | tail -1 | cut -f1)
whl=$(du -cb .whl/*.whl | tail -1 | cut -f1)
site=$( [[ -f .devsite/site.tar.xz ]] && stat -c %s .devsite/site.tar.xz || echo 0)
awk -v t="$tree" -v w="$whl" -v s="$site" 'BEGIN {
  m = 1048576; printf "working tree %.1f MiB; + .whl %.1f MiB = %.1f MiB", t/m, w/m, (t+w)/m
  if (s > 0) printf "; + .devsite %.1f MiB = %.1f MiB", s/m, (t+s)/m
  printf " (limit 64 MiB)\n" }'
