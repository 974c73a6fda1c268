#!/usr/bin/env bash
# The main job on the example data: builds bnorm (installing what is missing), then runs
# forward and backward on every example in data/ and says where each output went.
# Usage: scripts/demo.sh [OUT_DIR]   (default out/)
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/build.sh build >/dev/null
out=${1:-out}
mkdir -p "$out"
bnorm=build/bnorm

run() { # prints the command, runs it, lists the outputs it wrote
  echo "\$ $*"
  "$@"
}

echo "== NCHW float32 (4, 3, 5, 5), data offset by 1e4 =="
run $bnorm forward --x data/x_nchw.npy --gamma data/gamma.npy --beta data/beta.npy \
    --y "$out/y_nchw.npy" --mean "$out/mean_nchw.npy" --invstd "$out/invstd_nchw.npy"
run $bnorm backward --x data/x_nchw.npy --gamma data/gamma.npy --dy data/dy_nchw.npy \
    --dx "$out/dx_nchw.npy" --dgamma "$out/dgamma_nchw.npy" --dbeta "$out/dbeta_nchw.npy"

echo "== the same x read from CSV with --shape =="
run $bnorm forward --x data/x_nchw.csv --shape 4,3,5,5 --dtype float32 \
    --gamma data/gamma.npy --beta data/beta.npy --y "$out/y_nchw_from_csv.npy"
cmp -s "$out/y_nchw.npy" "$out/y_nchw_from_csv.npy" && echo "(identical to y_nchw.npy)"

echo "== (N, C) = (16, 3) float64, CSV in and out =="
run $bnorm forward --x data/x.csv --gamma data/gamma.csv --beta data/beta.csv --eps 1e-3 \
    --y "$out/y.csv" --mean "$out/mean.csv" --invstd "$out/invstd.csv"
run $bnorm backward --x data/x.csv --gamma data/gamma.csv --dy data/dy.csv --eps 1e-3 \
    --dx "$out/dx.csv" --dgamma "$out/dgamma.csv" --dbeta "$out/dbeta.csv"

echo "== NHWC float64 (4, 5, 5, 3), heavy-tailed, channels last =="
run $bnorm forward --x data/x_nhwc.npy --axis -1 --y "$out/y_nhwc.npy" --mean "$out/mean_nhwc.npy"
run $bnorm backward --x data/x_nhwc.npy --axis -1 --dy data/dy_nhwc.npy --dx "$out/dx_nhwc.npy"

echo "== the family: layer and RMS norm over the features of (2, 6, 8) float32 tokens offset by 1e3 =="
run $bnorm forward --norm layer --x data/x_tokens.npy --gamma data/gamma_tokens.npy \
    --beta data/beta_tokens.npy --y "$out/y_layer.npy" --mean "$out/mean_layer.npy" --invstd "$out/invstd_layer.npy"
run $bnorm backward --norm rms --x data/x_tokens.npy --gamma data/gamma_tokens.npy \
    --dy data/dy_tokens.npy --dx "$out/dx_rms.npy" --dgamma "$out/dgamma_rms.npy"

echo "== the family: group norm (3 groups of 2 channels) and instance norm on NCHW (2, 6, 4, 4) =="
run $bnorm forward --norm group --groups 3 --x data/x_groups.npy --gamma data/gamma6.npy \
    --beta data/beta6.npy --y "$out/y_group.npy" --mean "$out/mean_group.npy"
run $bnorm backward --norm instance --x data/x_groups.npy --gamma data/gamma6.npy \
    --dy data/dy_groups.npy --dx "$out/dx_instance.npy" --dgamma "$out/dgamma_instance.npy"

echo "== gradcheck: bnorm's own backward against complex-step derivatives (3 random dy) =="
run $bnorm gradcheck --x data/x_nchw.npy --gamma data/gamma.npy --beta data/beta.npy \
    --report "$out/gradcheck_own.json" >/dev/null

echo "== gradcheck judging given gradients (here: the backward outputs written above) =="
run $bnorm gradcheck --x data/x.csv --gamma data/gamma.csv --dy data/dy.csv --eps 1e-3 \
    --dx "$out/dx.csv" --dgamma "$out/dgamma.csv" --dbeta "$out/dbeta.csv" \
    --report "$out/gradcheck_given.json" >/dev/null

echo
echo "Outputs written to $out/:"
ls -l "$out" | tail -n +2
