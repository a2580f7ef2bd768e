#!/usr/bin/env bash
# The main job on the embedded default data (scikit-learn's digits), in folder $1:
# train a ResNet VAE; each later pipeline step is added here as it lands.
set -euo pipefail
out="${1:-demo-output}"
vaekit="$(cd "$(dirname "$0")/.." && pwd)/.venv/bin/vaekit"
mkdir -p "$out"
cd "$out"
"$vaekit" train --encoder resnet --epochs 10
echo "demo finished: the run is in $out/runs/latest"
