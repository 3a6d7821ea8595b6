#!/usr/bin/env bash
# Every engine of benchmarks/gpu_check.py that this machine can run, one after another; one JSON line each in
# OUT_DIR/gpu_check.jsonl. Meant for a GPU machine; CI never runs it.
#   bash benchmarks/gpu_check.sh OUT_DIR
set -u
out="${1:-runs/gpu-check}"
mkdir -p "$out"
log="$out/gpu_check.jsonl"
gpus=$(python -c "import torch; print(torch.cuda.device_count())")
python benchmarks/gpu_check.py --engine plain --out "$log" || echo '{"engine": "plain", "failed": true}' >> "$log"
if [ "$gpus" -ge 2 ]; then
  torchrun --standalone --nproc_per_node "$gpus" benchmarks/gpu_check.py --engine ddp --out "$log" \
    || echo '{"engine": "ddp", "failed": true}' >> "$log"
fi
accelerate launch --config_file recipes/accelerate/fsdp.yaml --num_processes "$gpus" benchmarks/gpu_check.py \
  --engine fsdp --out "$log" || echo '{"engine": "fsdp", "failed": true}' >> "$log"
if python -c "import deepspeed" 2>/dev/null; then
  accelerate launch --config_file recipes/accelerate/deepspeed_zero3.yaml --num_processes "$gpus" \
    benchmarks/gpu_check.py --engine deepspeed --out "$log" || echo '{"engine": "deepspeed", "failed": true}' >> "$log"
else
  echo '{"engine": "deepspeed", "skipped": "deepspeed is not installed"}' >> "$log"
fi
cat "$log"
