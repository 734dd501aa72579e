#!/usr/bin/env bash
# Downloads the RAVDESS speech corpus (audio only, actors 1-24, 1440 WAV files) from its
# Zenodo record, verifies the published MD5 and unpacks it to data/ravdess.
#
#   scripts/fetch-ravdess.sh [DEST]        (what `make ravdess` runs; DEST defaults to data/ravdess)
#
# Resumable: the download goes to DEST's parent/.ravdess-download/<zip>.part and an
# interrupted run continues where it stopped. Atomic: the zip is unpacked into a temporary
# folder beside DEST and renamed to DEST only when it is complete, so DEST is either absent
# or whole. Environment overrides (the tests use them with a small local zip):
#   RAVDESS_URL    default https://zenodo.org/record/1188976/files/Audio_Speech_Actors_01-24.zip
#   RAVDESS_MD5    default bc696df654c87fed845eb13823edef8a
#   RAVDESS_FILES  number of audio files expected after unpacking, default 1440 (0: no check)
#
# Licence of the data: CC BY-NC-SA 4.0 (Livingstone & Russo 2018, doi:10.1371/journal.pone.0196391).
set -euo pipefail

url=${RAVDESS_URL:-https://zenodo.org/record/1188976/files/Audio_Speech_Actors_01-24.zip}
md5=${RAVDESS_MD5:-bc696df654c87fed845eb13823edef8a}
expect=${RAVDESS_FILES:-1440}
dest=${1:-data/ravdess}
dest=${dest%/}

die() { echo "fetch-ravdess: $*" >&2; exit 1; }

case "${1:-}" in -h|--help) sed -n '2,16p' "$0"; exit 0 ;; esac
[ $# -le 1 ] || die "expected at most one argument (the destination folder), got $#"
for tool in curl unzip md5sum; do
  command -v "$tool" >/dev/null || die "'$tool' is not installed (Debian: apt-get install curl unzip coreutils; scripts/install-deps.sh installs them)"
done
[[ $md5 =~ ^[0-9a-fA-F]{32}$ ]] || die "RAVDESS_MD5 '$md5' is not a 32-digit hexadecimal MD5"
[[ $expect =~ ^[0-9]+$ ]] || die "RAVDESS_FILES '$expect' is not a whole number"

count_audio() { find "$1" -type f \( -iname '*.wav' -o -iname '*.flac' \) | wc -l; }

if [ -d "$dest" ]; then
  have=$(count_audio "$dest")
  if [ "$expect" -eq 0 ] || [ "$have" -eq "$expect" ]; then
    echo "fetch-ravdess: $dest already holds $have audio files; nothing to do (remove it to fetch again)"
    exit 0
  fi
  die "$dest exists but holds $have audio files, not $expect; move it away and run again"
fi

parent=$(dirname "$dest")
mkdir -p "$parent" || die "cannot create $parent"
work="$parent/.ravdess-download"
mkdir -p "$work"
zip_name=$(basename "${url%%\?*}")
[ -n "$zip_name" ] || zip_name=ravdess.zip
part="$work/$zip_name.part"
zip="$work/$zip_name"

check_md5() { # file -> 0 when it matches
  local got
  got=$(md5sum "$1" | cut -d' ' -f1)
  [ "${got,,}" = "${md5,,}" ] && return 0
  echo "fetch-ravdess: MD5 mismatch for $url: got $got, expected $md5" >&2
  return 1
}

if [ -f "$zip" ] && ! check_md5 "$zip"; then
  echo "fetch-ravdess: discarding the earlier download $zip" >&2
  rm -f "$zip"
fi
if [ ! -f "$zip" ]; then
  echo "fetch-ravdess: downloading $url"
  progress=(--progress-bar)
  [ -t 2 ] || progress=(--silent --show-error)
  # -C - resumes a .part left by an interrupted run; --fail turns HTTP errors into exit codes
  if ! curl --fail --location --retry 3 --retry-delay 2 -C - "${progress[@]}" -o "$part" "$url"; then
    die "download of $url failed (partial data kept in $part; run again to resume)"
  fi
  if ! check_md5 "$part"; then
    rm -f "$part" # a corrupt or wrong file cannot be resumed into a right one
    die "the downloaded file does not match the published checksum; it was removed (check RAVDESS_URL)"
  fi
  mv -f "$part" "$zip"
fi

tmp=$(mktemp -d "$parent/.ravdess-unpack.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
echo "fetch-ravdess: unpacking $zip"
unzip -q "$zip" -d "$tmp" || die "cannot unpack $zip (corrupt archive?)"
# The Zenodo zip holds Actor_01..Actor_24 at its top level; a zip wrapped in one folder is
# accepted too.
root=$tmp
entries=("$tmp"/*)
if [ ${#entries[@]} -eq 1 ] && [ -d "${entries[0]}" ] && [[ $(basename "${entries[0]}") != Actor_* ]]; then
  root=${entries[0]}
fi
have=$(count_audio "$root")
if [ "$expect" -ne 0 ] && [ "$have" -ne "$expect" ]; then
  die "the archive holds $have audio files, expected $expect"
fi
chmod 755 "$root" # mktemp -d made it private
mv "$root" "$dest" || die "cannot move the unpacked corpus to $dest"
rm -f "$zip"
rmdir "$work" 2>/dev/null || true
echo "fetch-ravdess: $dest ready ($have audio files). Licence: CC BY-NC-SA 4.0, credit Livingstone & Russo (2018)."
