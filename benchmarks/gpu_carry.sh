#!/usr/bin/env bash
# Fills .whl/ (gitignored) with what benchmarks/gpu_paper_grid.sh needs on a GPU machine that has no
# internet: the Python 3.12 wheels missing there (versions as in requirements.txt's environment) and
# a copy of the real mini archive. Run it here, then carry .whl with the working tree (under 30 MB).
#
#   bash benchmarks/gpu_carry.sh [path/to/train.zip]
set -euo pipefail
cd "$(dirname "$0")/.."
ARCHIVE=${1:-../shared/data/dogs-vs-cats-mini/train.zip}
mkdir -p .whl
"${PYTHON:-.venv/bin/python}" -m pip download -q --only-binary=:all: --no-deps --python-version 3.12 \
  --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 -d .whl \
  keras==3.15.1 namex==0.1.0 optree==0.20.0 \
  jsonschema==4.26.0 jsonschema-specifications==2025.9.1 referencing==0.37.0 rpds-py==2026.9.1 attrs==26.1.0 \
  ImageHash==4.3.2 PyWavelets==1.9.0 \
  matplotlib==3.11.2 contourpy==1.3.3 cycler==0.12.1 fonttools==4.68.0 kiwisolver==1.5.1 pyparsing==3.3.3 \
  python-dateutil==4.0.0 six==1.17.0 typing_extensions==4.16.0
cp "$ARCHIVE" .whl/train.zip
du -sh .whl
