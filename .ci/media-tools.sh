#!/usr/bin/env bash
# Installs the media tools the real-media tests use (server/sfu, media/ogg,
# media/ivf): opusenc/opusdec (opus-tools), ffmpeg, espeak-ng and sox, from
# the distribution's packages when any is missing. The tests skip with a
# message naming the package when a tool is absent; CI installs them all.
set -euo pipefail

missing=()
for pair in opusenc:opus-tools opusdec:opus-tools ffmpeg:ffmpeg espeak-ng:espeak-ng sox:sox; do
	tool=${pair%%:*}
	pkg=${pair#*:}
	if ! command -v "$tool" >/dev/null 2>&1; then
		missing+=("$pkg")
	fi
done
if [ ${#missing[@]} -eq 0 ]; then
	echo "media-tools.sh: opus-tools, ffmpeg, espeak-ng and sox found"
	exit 0
fi
# Unique package names, in order.
pkgs=$(printf '%s\n' "${missing[@]}" | awk '!seen[$0]++' | tr '\n' ' ')
if [ "$(id -u)" -ne 0 ]; then
	echo "media-tools.sh: missing $pkgs and installing needs root" >&2
	exit 1
fi
echo "media-tools.sh: installing $pkgs from the distribution's packages"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $pkgs
