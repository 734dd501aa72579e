#!/usr/bin/env bash
# Downloads a pretrained Whisper encoder (OpenAI's MIT-licensed weights) from the Hugging Face hub
# and checks it by value before it is put in place.
#
#   scripts/fetch-whisper.sh NAME [DEST]    (what `make whisper-base` / `make whisper-tiny.en` run)
#
# NAME is a model with a known encoder digest in scripts/whisper-digests.txt (whisper-base,
# whisper-tiny.en); DEST defaults to models/NAME. Two files arrive: config.json and
# model.safetensors from https://huggingface.co/openai/NAME/resolve/main/.
#
# Resumable: downloads go to DEST/.download/<file>.part and an interrupted run continues where it
# stopped. Checked by value: the encoder's tensors (decoder tensors are ignored), rounded to float16,
# must hash to the digest kept in the repository (scripts/encoder-digest.lua computes it; the same
# digest as the encoder files in ../shared/models), so a corrupted or substituted file is refused and
# removed. Atomic: DEST/model.safetensors and DEST/config.json appear only after the check passed.
# Environment overrides (the tests use them with a small local model):
#   WHISPER_URL     base URL holding config.json and model.safetensors
#                   (default https://huggingface.co/openai/NAME/resolve/main)
#   WHISPER_DIGEST  expected encoder digest (default: NAME's line in scripts/whisper-digests.txt)
#   SERLUA          the serlua binary that computes the digest (default build/serlua)
set -euo pipefail

die() { echo "fetch-whisper: $*" >&2; exit 1; }
here=$(cd "$(dirname "$0")" && pwd)

case "${1:-}" in -h|--help|"") sed -n '2,22p' "$0"; [ -n "${1:-}" ] && exit 0; exit 2 ;; esac
[ $# -le 2 ] || die "expected a model name and at most a destination folder, got $# arguments"
name=$1
[[ $name =~ ^[A-Za-z0-9._-]+$ ]] || die "model name '$name' has characters other than letters, digits, '.', '_', '-'"
dest=${2:-models/$name}
dest=${dest%/}
url=${WHISPER_URL:-https://huggingface.co/openai/$name/resolve/main}
serlua=${SERLUA:-build/serlua}

digest=${WHISPER_DIGEST:-}
if [ -z "$digest" ]; then
  digest=$(awk -v n="$name" '$1 == n { print $2 }' "$here/whisper-digests.txt")
  [ -n "$digest" ] || die "no encoder digest is known for '$name' (known: $(awk '!/^#/ && NF { printf "%s ", $1 }' "$here/whisper-digests.txt"))"
fi
[[ $digest =~ ^[0-9a-f]{64}$ ]] || die "digest '$digest' is not 64 lowercase hexadecimal digits (SHA-256)"
command -v curl >/dev/null || die "'curl' is not installed (scripts/install-deps.sh installs it)"
[ -x "$serlua" ] || die "$serlua not found: build serlua first (make), or set SERLUA"

if [ -f "$dest/model.safetensors" ] && [ -f "$dest/config.json" ]; then
  echo "fetch-whisper: $dest already holds model.safetensors and config.json; nothing to do (remove them to fetch again)"
  exit 0
fi

work="$dest/.download"
mkdir -p "$work" || die "cannot create $work"

fetch() { # file -> $work/file.part, resumed when a part is there
  local part="$work/$1.part" progress=(--progress-bar)
  [ -t 2 ] || progress=(--silent --show-error)
  echo "fetch-whisper: downloading $url/$1"
  # -C - resumes a .part left by an interrupted run; --fail turns HTTP errors into exit codes
  curl --fail --location --retry 3 --retry-delay 2 -C - "${progress[@]}" -o "$part" "$url/$1" \
    || die "download of $url/$1 failed (partial data kept in $part; run again to resume)"
}

fetch config.json
fetch model.safetensors

# The check loads the pair as a folder (config.json is checked against the tensors).
check="$work/check"
rm -rf "$check"
mkdir -p "$check"
mv -f "$work/config.json.part" "$check/config.json"
mv -f "$work/model.safetensors.part" "$check/model.safetensors"
discard() { rm -rf "$check" "$work/digest.err"; rmdir "$work" 2>/dev/null || true; }
got=$("$serlua" "$here/encoder-digest.lua" "$check" 2>"$work/digest.err") || {
  why=$(tr '\n' ' ' < "$work/digest.err")
  discard
  die "the downloaded files are not a Whisper encoder serlua can read (${why% }); they were removed (check WHISPER_URL)"
}
rm -f "$work/digest.err"
if [ "$got" != "$digest" ]; then
  discard
  die "the encoder in $url/model.safetensors is not $name's (encoder digest $got, expected $digest); the download was removed"
fi
# config.json first: a folder with model.safetensors is taken as complete
mv -f "$check/config.json" "$dest/config.json"
mv -f "$check/model.safetensors" "$dest/model.safetensors"
rmdir "$check"
rmdir "$work" 2>/dev/null || true
echo "fetch-whisper: $dest ready (encoder digest $got). Weights: OpenAI, MIT licence."
