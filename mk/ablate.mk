# The objective ablation: `make ablate [ARGS="seeds=[0] out_dir=runs/abl ..."]`.
.PHONY: ablate

ablate: $(STAMP) ## CLIP vs each LightCLIP term over 3 seeds on the demo world -> runs/ablation/ablation.md
	$(BIN)/python -m lightclip_demo ablate $(ARGS)
