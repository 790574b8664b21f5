# Export and inference targets (lightclip.export, lightclip.inference).
EXPORT_OUT ?= exports/$(notdir $(basename $(patsubst %/,%,$(CKPT))))
IMAGES ?=
LABELS ?= a dog,a cat
BACKEND ?= torch

export: $(STAMP) ## inference model of the make train run (or CKPT=run dir or step_*.pt) as safetensors + ONNX in EXPORT_OUT (exports/NAME) [ARGS="--recipe R export.opset=17 ..."]
	@test -e "$(CKPT)" || { echo "make export: no checkpoint at $(CKPT): run make train first, or set CKPT=<run dir or step_*.pt>" >&2; exit 2; }
	$(BIN)/python -m lightclip export --checkpoint $(CKPT) --out $(EXPORT_OUT) $(ARGS)

classify: $(STAMP) ## zero-shot label probabilities: make classify IMAGES="a.jpg b.jpg" LABELS="a dog,a cat"
	@test -n "$(IMAGES)" || { echo 'usage: make classify IMAGES="a.jpg b.jpg" LABELS="a dog,a cat" [EXPORT_OUT=DIR] [BACKEND=onnx]'; exit 2; }
	$(BIN)/python -m lightclip classify --model $(EXPORT_OUT) $(IMAGES) --labels "$(LABELS)" --backend $(BACKEND) $(ARGS)

bench-export: $(STAMP) ## parameters, MACs and CPU latency (PyTorch vs onnxruntime) -> bench/results/export.json
	$(BIN)/python bench/bench_export.py

.PHONY: classify bench-export
