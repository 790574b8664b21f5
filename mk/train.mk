# Training: `make train ENCODER=swin_nano [DATA=<shard folder or brace pattern>] [OBJECTIVES=clip] [ARGS="k=v ..."]`
# DATA defaults to OUT, the folder `make data` writes; the run goes to RUN_DIR (runs/ENCODER[_clip]).
TRAIN_ENCODERS := resnet18 mobilenet_v2 swin_nano
TRAIN_RECIPE = recipes/train/$(ENCODER)$(if $(filter clip,$(OBJECTIVES)),_clip,).yaml

# A shard folder (or a single shard) must exist; brace patterns and `::` lists are checked by the trainer.
define check_shards
	@case "$(1)" in *'{'*|*::*) ;; *) 	  if [ ! -f "$(1)" ] && [ ! -f "$(1)/manifest.json" ] && ! ls "$(1)"/*.tar >/dev/null 2>&1; then 	    echo "make $@: no shards in $(1): run make data first (it writes $(OUT)), or set DATA=<shard folder or brace pattern>" >&2; 	    exit 2; fi;; esac
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
