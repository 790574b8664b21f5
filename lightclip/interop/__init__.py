"""Interoperation with the CLIP ecosystem: the open_clip export format (:mod:`.openclip_format`),
open_clip models loaded for inference and evaluation (:mod:`.openclip_load`), and results in
CLIP_benchmark's shape (:mod:`.benchmark_results`). open_clip itself is imported only where a
model is loaded (the ``interop`` extra); the export needs timm and tokenizers only."""
