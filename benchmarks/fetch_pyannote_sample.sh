#!/usr/bin/env bash
# pyannote.audio's wheel ships a 30 s two-speaker recording with its reference RTTM
# (pyannote/audio/sample/). It is real conversational speech, the only such clip a package
# registry offers, and not ours to redistribute: this unpacks it into .cache/ (git-ignored)
# for benchmarks/diarization.py and the tests that use it when present.
set -euo pipefail
python="${1:-.venv/bin/python}"
target=".cache/pyannote_sample"
if [ -f "$target/sample.wav" ] && [ -f "$target/sample.rttm" ]; then exit 0; fi
download="$(mktemp -d)"
trap 'rm -rf "$download"' EXIT
"$python" -m pip download --quiet --no-deps --dest "$download" "pyannote.audio==4.0.7"
mkdir -p "$target"
"$python" - "$download" "$target" <<'PY'
import pathlib, sys, zipfile
wheel = next(pathlib.Path(sys.argv[1]).glob("*.whl"))
with zipfile.ZipFile(wheel) as archive:
    for name in ("sample.wav", "sample.rttm"):
        data = archive.read(f"pyannote/audio/sample/{name}")
        (pathlib.Path(sys.argv[2]) / name).write_bytes(data)
PY
echo "unpacked pyannote.audio's sample into $target"
