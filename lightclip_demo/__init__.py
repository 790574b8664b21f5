"""The offline demo application and the objective ablation, built on both libraries.

``lightclip_demo.world`` draws a synthetic image-text world, ``lightclip_demo.localserver``
serves it (and fault routes) on 127.0.0.1, ``lightclip_demo.run`` runs the whole flow (pipeline
build -> LightCLIP and CLIP training -> zero-shot evaluation -> ``demo_report``) and
``lightclip_demo.ablate`` trains objective variants over seeds (``ablation_report``).
``python -m lightclip_demo`` is its command line.

Layering: ``lightclip_demo`` -> ``lightclip`` -> ``pipeline``. This package may import both
libraries; ``lightclip`` never imports this package, and ``pipeline`` imports neither
(``tests/test_layers.py`` checks it).
"""
