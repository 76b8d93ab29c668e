#!/usr/bin/env bash
# The GPU check of the pipeline (issue #18): what `device: auto` does on a machine with CUDA.
#
#   bash benchmarks/gpu_check.sh OUT [DEFAULT_RESULTS]
#
# 1. The tiny pipeline (config/test.yaml) with training.device and assimilation.device set to
#    auto, on every core, in a scratch copy of the workflow; its per-rule times
#    (benchmarks/pipeline_timing.py).
# 2. The tiny stream's cycles per second on CPU and on CUDA (benchmarks/assimilation_speed.py).
# 3. With DEFAULT_RESULTS (a default pipeline's results folder, or the part of one that a 2011
#    stream reads: models/, ensemble/{calibration,stream_tuning,oi_covariance}.nc, obs/2010-2011
#    from Dec 2 to Jan 10 at least, reference/2011.nc at least at Jan 1 00 UTC), the default
#    stream's cycles per second on CPU and on CUDA (O2Lnet's pass as auto resolves it, then in
#    bfloat16 on CUDA), and the analysis cost of HLOBA and latent 4D-Var on each
#    (benchmarks/method_cost.py).
# 4. Training steps of the default-size autoencoder and O2Lnet on CUDA (float32, bfloat16) and on
#    the CPU (benchmarks/training_speed.py).
# Everything is logged to OUT/gpu_check.log; the tiny run's benchmark files and logs are packed in
# OUT/tiny_run.tar.gz. A step that fails is logged and the next one runs; the exit status is that
# of the tiny pipeline. Needs hloba importable (pip install -e . or PYTHONPATH) and Snakemake.
# Time limits per step (seconds): TINY_LIMIT (default 420), STEP_LIMIT (default 240); STEPS
# (default "1 2 3 4") names the steps to run (2 reads step 1's results).
set -u
out=$(mkdir -p "$1" && cd "$1" && pwd)
default=${2:+$(cd "$2" && pwd)}
repo=$(cd "$(dirname "$0")/.." && pwd)
py=${PYTHON:-python3}
cores=$(nproc)
log=$out/gpu_check.log
: >"$log"
step() { echo "== $(date -u +%T) $*" | tee -a "$log"; }
run() { timeout "${STEP_LIMIT:-240}" "$@" >>"$log" 2>&1 || echo "   (exit $?)" | tee -a "$log"; }

step "machine: $cores cores; $("$py" -c 'import torch; print(torch.__version__, torch.cuda.get_device_name() if torch.cuda.is_available() else "no CUDA")')"
nvidia-smi -L >>"$log" 2>&1

work=$(mktemp -d)
cp -r "$repo"/{Snakefile,workflow,config,config.yaml,envs,profiles} "$work"/
printf 'training:\n  device: auto\nassimilation:\n  device: auto\n' >"$work/device_auto.yaml"
steps=" ${STEPS:-1 2 3 4} "
status=0
if [[ $steps == *" 1 "* ]]; then
    step "1. tiny pipeline, device auto, $cores cores (in $work)"
    (cd "$work" && timeout "${TINY_LIMIT:-420}" "$py" -m snakemake --cores "$cores" --scheduler greedy --keep-going \
        --configfile config/test.yaml device_auto.yaml) >>"$log" 2>&1
    status=$?
    step "   tiny pipeline exit $status"
    grep -h "device\|cuda" "$work"/results/logs/*/*.log 2>/dev/null | grep -v "^ *$" | sort | uniq -c | sort -rn | head -20 >>"$log"
    (cd "$work" && run "$py" "$repo/benchmarks/pipeline_timing.py" --results results --markdown)
    tar -czf "$out/tiny_run.tar.gz" -C "$work" results/benchmarks results/logs .snakemake/log 2>/dev/null
fi

if [[ $steps == *" 2 "* ]]; then
    step "2. tiny stream: cycles per second, CPU (2 threads) and CUDA"
    (cd "$work" && run "$py" "$repo/benchmarks/assimilation_speed.py" --configfile config/test.yaml --results results \
        --days 20 --devices cpu,cuda --threads 2)
fi

if [[ $steps == *" 3 "* && -n "$default" ]]; then
    step "3. default stream (2011, from $default): cycles per second, CPU (2 threads) and CUDA"
    run "$py" "$repo/benchmarks/assimilation_speed.py" --results "$default" --year 2011 --days 10 \
        --devices cpu,cuda --threads 2
    printf 'assimilation:\n  o2lnet_precision: bfloat16\n' >"$work/bfloat16.yaml"
    step "   O2Lnet's pass in bfloat16 on CUDA"
    run "$py" "$repo/benchmarks/assimilation_speed.py" --results "$default" --year 2011 --days 10 \
        --devices cuda --configfile "$work/bfloat16.yaml"
    for device in cuda cpu; do
        step "   analysis cost of hloba and l4dvar on $device (2 days from Jan 1)"
        run "$py" "$repo/benchmarks/method_cost.py" --results "$default" --year 2011 --days 2 \
            --methods hloba,l4dvar --device "$device" --threads 2
    done
fi

if [[ $steps == *" 4 "* ]]; then
    step "4. training steps at the default size"
    run "$py" "$repo/benchmarks/training_speed.py" --device cuda --steps 20 --precision float32 bfloat16
    run "$py" "$repo/benchmarks/training_speed.py" --device cpu --steps 2 --threads "$cores" --precision float32
fi
step "done"
exit $status
