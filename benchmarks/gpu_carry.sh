#!/usr/bin/env bash
# Fills .whl/ (gitignored) with what benchmarks/gpu_paper_grid.sh needs on a GPU machine with no internet: the
# Python 3.12 wheels missing there (Snakemake and its dependencies, Keras, and the workflow's versions of the
# rest, as pinned in requirements.txt) and a copy of the real mini archive. Run it here, then carry .whl.
#
#   bash benchmarks/gpu_carry.sh [path/to/train.zip]
set -euo pipefail
cd "$(dirname "$0")/.."
ARCHIVE=${1:-../shared/data/dogs-vs-cats-mini/train.zip}
PIP=("${PYTHON:-.venv/bin/python}" -m pip)
mkdir -p .whl
"${PIP[@]}" wheel -q --no-deps -w .whl connection_pool==0.0.3  # Snakemake's; published as a source archive only
"${PIP[@]}" download -q --only-binary=:all: --python-version 3.12 --implementation cp --find-links .whl \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
  snakemake==9.27.1 keras==3.15.1 jsonschema==4.26.0 imagehash==4.3.2
# The GPU image has these (its package list: /work/.library/device/KINDS.md); carried, they would shadow its builds.
for name in numpy pandas scipy pillow h5py ml_dtypes matplotlib contourpy kiwisolver fonttools cycler pyparsing \
  python_dateutil six pyyaml psutil absl_py rich markdown_it_py mdurl pygments jinja2 markupsafe requests urllib3 \
  idna certifi charset_normalizer packaging attrs typing_extensions platformdirs tabulate wrapt tzdata; do
  rm -f .whl/"$name"-*.whl
done
cp "$ARCHIVE" .whl/train.zip
du -sh .whl
