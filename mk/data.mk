# Data pipeline: metadata (url, caption) -> WebDataset shards. Variables RECIPE, METADATA, OUT
# and ARGS come from the top Makefile.

.PHONY: data data-stats data-verify

data: $(STAMP) ## build shards from YFCC15M-V2 (or any url/caption jsonl, csv, tsv, parquet): make data METADATA=yfcc15m_clean_open_data.json [OUT=...] [RECIPE=...] [ARGS="key=value ..."]
	@if [ -z "$(METADATA)" ]; then \
	  echo "make data needs the YFCC15M-V2 metadata file: make data METADATA=/path/to/yfcc15m_clean_open_data.json"; \
	  echo "  Get it from DeCLIP's repository (github.com/Sense-GVT/DeCLIP, YFCC15M-V2 open data release):"; \
	  echo "  yfcc15m_clean_open_data.json, about 3.3 GB, 15,388,848 url/caption rows. See docs/data-pipeline.md."; \
	  echo "  To try the pipeline without it, run: make demo"; \
	  exit 2; \
	fi
	@test -f "$(METADATA)" || { echo "METADATA=$(METADATA) does not exist (see docs/data-pipeline.md; or run make demo)"; exit 2; }
	$(BIN)/python -m pipeline build --recipe $(RECIPE) metadata.path=$(METADATA) output=$(OUT) $(ARGS)

data-stats: $(STAMP) ## print the status counts of a build: make data-stats [OUT=...]
	$(BIN)/python -m pipeline stats $(OUT)

data-verify: $(STAMP) ## read every shard, check manifest counts, checksums and images: make data-verify [OUT=...]
	$(BIN)/python -m pipeline verify $(OUT)
