#!/usr/bin/env bash
# One prepared GPU check (the `device` tool's H200, or any CUDA machine): the GPU tests, then the
# kernel and soup benchmarks at the sizes of issue 14. Run from a copy of the repository root:
#
#   bash benchmarks/gpu_check.sh            # optional: .whl/ with a mesa wheel where mesa is missing
#
# Each part has its own time limit, so a slow part cannot hide the output of the others.
set -u
if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$PWD" PYTHONUNBUFFERED=1
export PARTICLES_KERNEL_CACHE=/tmp/particles-kernels
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm --format=csv
python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)"
echo "== GPU tests"
timeout 200 python3 -m pytest -q -p no:cacheprovider tests/particles/test_fused_gpu.py \
    -k "not interpreter" 2>&1 | tail -15
echo "== self-train, self-apply, classify: 100k and 10M particles"
timeout 150 python3 benchmarks/self_train.py --device cuda --sizes 100000,10000000 \
    --rounds 5 --min-seconds 0.1 --loop-particles 50 --loop-steps 3
echo "== 1M-particle soup, Attack + Learn + SelfTrain(10) + Respawn, genealogy on"
timeout 200 python3 benchmarks/soup.py --only main --particles 1000000 --epochs 10 \
    --device cuda --respawn
echo "== 10M-particle soup fits and runs"
timeout 200 python3 benchmarks/soup.py --only huge --huge-particles 10000000 --huge-epochs 2 \
    --device cuda --respawn
