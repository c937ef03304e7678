#!/usr/bin/env bash
# Builds the spoken prompts the SIP sender embeds: for each language an intro
# phrase and one file per digit, 8 kHz mono signed 16-bit PCM WAV, leading and
# trailing silence trimmed, no dither (sox -D) so a rebuild is byte-identical
# on the same espeak-ng and sox. The output is committed; run this only to change
# the prompts. Needs: apt-get install -y espeak-ng sox
#
# Layout (the same one an operator's own recordings must follow):
#   <lang>/intro.wav  <lang>/0.wav ... <lang>/9.wav
#
# Usage: build.sh [OUTDIR]   (default: this directory, the embedded prompts)
set -euo pipefail
out=${1:-$(dirname "$0")}
mkdir -p "$out"
cd "$out"

command -v espeak-ng >/dev/null || { echo "espeak-ng missing: apt-get install -y espeak-ng sox" >&2; exit 1; }
command -v sox >/dev/null || { echo "sox missing: apt-get install -y espeak-ng sox" >&2; exit 1; }

# language folder | espeak-ng voice | intro phrase
langs=(
  "en|en-us|Your verification code is"
  "de|de|Ihr Bestätigungscode lautet"
  "fr|fr-fr|Votre code de vérification est"
  "es|es|Su código de verificación es"
  "ru|ru|Ваш код подтверждения"
)

say() { # voice text out.wav
  espeak-ng -v "$1" -s 150 --stdout "$2" |
    sox -D -t wav - -r 8000 -c 1 -b 16 -e signed-integer "$3" \
      silence 1 0.02 0.5% reverse silence 1 0.02 0.5% reverse
}

for entry in "${langs[@]}"; do
  IFS='|' read -r dir voice intro <<<"$entry"
  mkdir -p "$dir"
  say "$voice" "$intro" "$dir/intro.wav"
  for d in 0 1 2 3 4 5 6 7 8 9; do
    say "$voice" "$d" "$dir/$d.wav"
  done
  echo "built $dir ($voice)"
done
