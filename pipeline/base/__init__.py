"""The shared base of the data pipeline and the trainer, free of Dask and img2dataset.

``configs`` (strict dataclass recipes with ``a.b=c`` overrides, ``base:`` inheritance in
``recipe_files``), ``tokenizer`` (the caption BPE and its special tokens), ``photometric`` and
``augment_image`` (the image transforms split between loader workers and the device, CLIP's
normalisation constants), ``shards``, ``verify`` and ``tarsafe`` (the shard layout, its checker
and its bounded reader), ``streamconfig``, ``progress`` and ``errors`` (``UserError``: one-line
errors for the user).
Nothing here imports the rest of ``pipeline``, ``lightclip`` or the demo application.
"""
