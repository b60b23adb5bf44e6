#!/usr/bin/env bash
# Build the wheel, install it (not editable) into a fresh venv, and run sweep -> flag -> sql -> export
# from that install: what a user of `pip install .` and the KubeRay job get. ~1.5 min, mostly pip.
set -euo pipefail
project="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# No PYTHONPATH: the venv must import hubscan from the wheel, never from the source tree.
unset PYTHONPATH

# From a clean copy of the source: a left-over build/ or *.egg-info would hide missing package data.
mkdir "$work/source"
tar -C "$project" --exclude=build --exclude='*.egg-info' --exclude=.git --exclude=__pycache__ \
    --exclude=.tmp --exclude='hubscan-*store' -cf - . | tar -C "$work/source" -xf -
python -m pip wheel -q --no-deps --no-build-isolation -w "$work/dist" "$work/source"
python -m venv "$work/venv"
# (the local index mirror warns once per package it lacks; those lines are noise here)
"$work/venv/bin/python" -m pip install -q "$work"/dist/hubscan-*.whl 2> >(grep -v 'is ignored' >&2)
cd "$work"  # away from the source tree, so neither the driver nor Ray workers can import it
where="$("$work/venv/bin/python" -c 'import hubscan.pipeline as p, hubscan.queries as q; print(p.__file__, q.__file__)')"
case "$where" in
  "$work/venv/"*" $work/venv/"*) echo "wheel smoke: hubscan imported from the wheel" ;;
  *) echo "wheel smoke: hubscan imported from $where, not the wheel" >&2; exit 1 ;;
esac

"$work/venv/bin/python" -m hubscan.testbed.demohub.small_repos "$work/repos"
hubscan="$work/venv/bin/hubscan"
"$hubscan" sweep --source "local:$work/repos" --store "$work/store" >/dev/null
"$hubscan" flag --store "$work/store" >/dev/null
models="$("$hubscan" sql "SELECT count(*) AS n FROM models" --store "$work/store" --format csv | tail -1 | tr -d "\r")"
flagged="$("$hubscan" sql find_undeclared_derivatives --store "$work/store" --format csv | grep -c finetune || true)"
"$hubscan" export --store "$work/store" --format csv -o "$work/suspicious.csv"
exported="$(grep -c 'smoke/base' "$work/suspicious.csv" || true)"
echo "wheel smoke: $models models, $flagged undeclared-derivative rows, $exported exported pairs"
if [ "$models" != 7 ] || [ "$flagged" -lt 2 ] || [ "$exported" -lt 2 ]; then
  echo "wheel smoke: expected 7 models, at least 2 flagged and 2 exported fine-tune pairs" >&2
  exit 1
fi
