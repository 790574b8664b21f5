# Zero-shot evaluation. CKPT, DATASETS, ROOT are defined in the top Makefile.
EVAL_OUT ?=
.PHONY: test-eval

eval: $(STAMP) ## zero-shot classification and retrieval of the make train run (or CKPT=run dir or step_*.pt): DATASETS=cifar10,flickr30k ROOT=data/eval [EVAL_OUT=dir] [ARGS="--recipe R eval.batch_size=16 ..."]
	@test -e "$(CKPT)" || { echo "make eval: no checkpoint at $(CKPT): run make train first, or set CKPT=<run dir or step_*.pt>" >&2; exit 2; }
	$(BIN)/python -m lightclip eval --checkpoint "$(CKPT)" --datasets "$(DATASETS)" --root "$(ROOT)" $(if $(EVAL_OUT),--out "$(EVAL_OUT)") $(ARGS)

test-eval: $(STAMP) ## the evaluation tests only
	$(BIN)/python -m pytest -q tests/eval $(PYTEST_ARGS)
