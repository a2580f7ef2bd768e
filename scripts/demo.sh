#!/usr/bin/env bash
# The main job on the embedded default data (scikit-learn's digits), in folder $1:
# train a ResNet VAE, encode, fit a cluster to the 3s, sample, interpolate, reconstruct,
# evaluate and report.
set -euo pipefail
out="${1:-demo-output}"
vaekit="$(cd "$(dirname "$0")/.." && pwd)/.venv/bin/vaekit"
mkdir -p "$out"
cd "$out"
"$vaekit" train --encoder resnet --epochs 10
"$vaekit" encode -o latents.h5 --overwrite
"$vaekit" fit-cluster --label 3
"$vaekit" sample --cluster 3 -n 64 -o threes.png
"$vaekit" sample --prior -n 64 -o prior.png
"$vaekit" interpolate latents.h5:0 latents.h5:1 --steps 10 -o walk.png
"$vaekit" reconstruct -n 32 -o recon.png
"$vaekit" evaluate --split val --iwae-k 1000
"$vaekit" report -o report.html
echo "demo finished: the run is in $out/runs/latest; threes.png, prior.png, walk.png, recon.png, report.html"
