# The offline demo: synthetic world -> local HTTP server -> pipeline build (Dask) -> LightCLIP and
# CLIP-baseline training -> zero-shot evaluation -> runs/demo/report.md. CPU only, no network.
DEMO_OUT ?= runs/demo

demo: $(STAMP) ## the whole flow offline on a laptop (report in runs/demo/report.md); ARGS="world.train_samples=..."
	$(BIN)/python -m lightclip_demo --out $(DEMO_OUT) $(ARGS)
