# The objective ablation: `make ablate [ARGS="seeds=[0] out_dir=runs/abl ..."]`.
.PHONY: ablate

ablate: $(STAMP) ## CLIP vs each LightCLIP term over 3 seeds on the demo world -> runs/ablation/ablation.md
	$(BIN)/python -m lightclip_demo ablate $(ARGS)

.PHONY: ablate-suite
ablate-suite: $(STAMP) ## the variants on every world of recipes/ablation/suite.yaml, 5 seeds, 95% intervals -> runs/suite/suite.md
	$(BIN)/python -m lightclip_demo ablate --suite $(ARGS)

.PHONY: ablate-suite-long
ablate-suite-long: $(STAMP) ## the same at the demo's 800 steps, three worlds (recipes/ablation/suite_long.yaml) -> runs/suite_long/suite.md
	$(BIN)/python -m lightclip_demo ablate --suite --recipe recipes/ablation/suite_long.yaml $(ARGS)
