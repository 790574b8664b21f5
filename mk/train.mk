# Training: `make train ENCODER=swin_nano [DATA=<shard folder or brace pattern>] [OBJECTIVES=clip] [ARGS="k=v ..."]`
# DATA defaults to OUT, the folder `make data` writes; the run goes to RUN_DIR (runs/ENCODER[_clip]).
TRAIN_ENCODERS := resnet18 mobilenet_v2 swin_nano
TRAIN_RECIPE = recipes/train/$(ENCODER)$(if $(filter clip,$(OBJECTIVES)),_clip,).yaml

# The spec's first shard must exist locally (pipeline.base.shards reads the spec: folders, brace
# patterns, lists); remote specs (pipe:, s3://...) are left to the trainer.
SHARDS_PRESENT = import sys; from pathlib import Path; from pipeline.base.shards import expand_spec; \
	first = expand_spec(sys.argv[1])[0]; sys.exit(0 if "://" in first or first.startswith("pipe:") or Path(first).is_file() else 1)
define check_shards
	@$(BIN)/python -c '$(SHARDS_PRESENT)' "$(1)" 2>/dev/null || { \
	  echo "make $@: no shards in $(1): run make data first (it writes $(OUT)), or set DATA=<shard folder or brace pattern>" >&2; \
	  exit 2; }
endef

.PHONY: train train-tiny

train: $(STAMP) ## train on the shards of make data: ENCODER=resnet18|mobilenet_v2|swin_nano [DATA=shards] [OBJECTIVES=clip] [RUN_DIR=...] [ARGS="k=v ..."]
	@if [ -z "$(filter $(ENCODER),$(TRAIN_ENCODERS))" ]; then \
		echo "make train: unknown ENCODER '$(ENCODER)'; choose one of: $(TRAIN_ENCODERS)" >&2; exit 2; fi
	@if [ -z "$(filter $(OBJECTIVES),lightclip clip)" ]; then \
		echo "make train: unknown OBJECTIVES '$(OBJECTIVES)'; choose lightclip or clip" >&2; exit 2; fi
	$(call check_shards,$(DATA))
	$(BIN)/python -m lightclip train --recipe $(TRAIN_RECIPE) data.shards=$(DATA) run.out_dir=$(RUN_DIR) $(ARGS)

train-tiny: $(STAMP) ## tiny CPU training run (32 px) into runs/tiny: [DATA=shards, e.g. runs/demo/data after make demo] [ARGS="k=v ..."]
	$(call check_shards,$(DATA))
	$(BIN)/python -m lightclip train --recipe recipes/train/tiny.yaml data.shards=$(DATA) $(ARGS)
