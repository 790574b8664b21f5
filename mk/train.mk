# Training: `make train ENCODER=swin_nano DATA=<shard folder or brace pattern> [OBJECTIVES=clip] [ARGS="k=v ..."]`
TRAIN_ENCODERS := resnet18 mobilenet_v2 swin_nano
TRAIN_RECIPE = recipes/train/$(ENCODER)$(if $(filter clip,$(OBJECTIVES)),_clip,).yaml

.PHONY: train train-tiny

train: $(STAMP) ## train: ENCODER=resnet18|mobilenet_v2|swin_nano DATA=shards [OBJECTIVES=clip] [ARGS="k=v ..."]
	@if [ -z "$(filter $(ENCODER),$(TRAIN_ENCODERS))" ]; then \
		echo "make train: unknown ENCODER '$(ENCODER)'; choose one of: $(TRAIN_ENCODERS)" >&2; exit 2; fi
	@if [ -z "$(filter $(OBJECTIVES),lightclip clip)" ]; then \
		echo "make train: unknown OBJECTIVES '$(OBJECTIVES)'; choose lightclip or clip" >&2; exit 2; fi
	@if [ -z "$(DATA)" ]; then \
		echo "make train: set DATA to a shard folder or pattern, e.g. make train DATA=data/yfcc15m_v2" >&2; exit 2; fi
	$(BIN)/python -m lightclip train --recipe $(TRAIN_RECIPE) data.shards=$(DATA) $(ARGS)

train-tiny: $(STAMP) ## tiny CPU training run (32 px): DATA=shards [ARGS="k=v ..."]
	@if [ -z "$(DATA)" ]; then echo "make train-tiny: set DATA to a shard folder" >&2; exit 2; fi
	$(BIN)/python -m lightclip train --recipe recipes/train/tiny.yaml data.shards=$(DATA) $(ARGS)
