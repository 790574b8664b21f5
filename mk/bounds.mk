# The other tested end of the dependency ranges. `make setup` installs constraints.txt (webdataset
# 0.2.86, the newest open_clip_torch[training] admits); this target layers BOUND_PINS over .venv in
# .venv-bounds (its own site-packages first, then .venv's) and runs the loader and shard tests there.
BOUND_PINS ?= webdataset==0.2.111
BOUND_TESTS ?= tests/stream tests/pipeline/test_shards.py tests/eval/test_datasets.py
BOUNDS_VENV := .venv-bounds
.PHONY: test-bounds

test-bounds: $(STAMP) ## loader and shard tests at the other tested bound of the ranges: BOUND_PINS="webdataset==0.2.111"
	rm -rf $(BOUNDS_VENV) && $(PY) -m venv $(BOUNDS_VENV)
	$(BIN)/python -c "import site; print(site.getsitepackages()[0])" > "$$($(BOUNDS_VENV)/bin/python -c 'import site; print(site.getsitepackages()[0])')/zz_lightclip_venv.pth"
	$(BOUNDS_VENV)/bin/pip install -q --no-deps $(BOUND_PINS)
	$(BOUNDS_VENV)/bin/python -c "import webdataset; print('webdataset', webdataset.__version__)"
	$(BOUNDS_VENV)/bin/python -m pytest -q -p no:cacheprovider $(BOUND_TESTS) $(PYTEST_ARGS)
