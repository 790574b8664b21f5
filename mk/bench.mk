# One-GPU throughput benchmark: `make bench-gpu [BENCH_GPU_ARGS="--tiny --out PATH --budget-seconds 360"]`
BENCH_GPU_ARGS ?=

.PHONY: bench-gpu

bench-gpu: $(STAMP) ## train steps vs open_clip and peak, from shards, small regime, speed switches, loader on one GPU (tiny on CPU) -> bench/results/gpu.json
	$(BIN)/python bench/bench_gpu.py $(BENCH_GPU_ARGS)
