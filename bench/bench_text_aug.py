"""Caption augmentation quality and speed on the shipped caption set (bench/data/captions.txt).

For the default synonym replacement (``same_sense``) and the plain nlpaug one (``any_sense``):
the share of synonym variants with a replacement that is rare (below the recipe's frequency
floor), multiword, a proper noun or of another part of speech than the word it replaces
(target: under 2%), a sample table of caption -> variant pairs, and captions per CPU-second
through the full variant set of the recipe (target: at least 2,000). Writes
bench/results/text_aug.json; ``--markdown`` prints the sample table for the docs.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import json
import os
import platform
import re
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("NLTK_DATA", str(REPO / ".nltk_data"))

CAPTIONS = REPO / "bench" / "data" / "captions.txt"
RECIPE = REPO / "recipes" / "data" / "yfcc15m_v2.yaml"
VARIANTS, SAMPLES, TARGET_SHARE, TARGET_SPEED = 4, 12, 0.02, 2000
PROBLEMS = ("rare", "multiword", "proper_noun", "other_pos")
_WORD = re.compile(r"[\w'-]+|[^\w\s]")


def recipe_config():
    """The augmentation section of the paper recipe, as the build reads it."""
    from pipeline.augment_text import AugmentConfig
    from pipeline.base.configs import from_dict, load_recipe

    return from_dict(AugmentConfig, load_recipe(RECIPE)["augment"], "augment")


def replacements(caption: str, variant: str) -> list[tuple[list[str], list[str]]]:
    """(old words, new words) for each word or span the variant replaced or inserted.

    Same word count: position by position. Otherwise a word diff. ``a``/``an`` changes that
    follow a replacement are grammar, not replacements, and are left out.
    """
    old, new = _WORD.findall(caption), _WORD.findall(variant)
    if len(old) == len(new):
        pairs = [([b], [a]) for b, a in zip(old, new) if b.lower() != a.lower()]
    else:
        ops = difflib.SequenceMatcher(
            a=[w.lower() for w in old], b=[w.lower() for w in new], autojunk=False
        ).get_opcodes()
        pairs = [(old[i1:i2], new[j1:j2]) for op, i1, i2, j1, j2 in ops if op in ("replace", "insert")]
    return [(b, a) for b, a in pairs if {w.lower() for w in b + a} != {"a", "an"}]


def _is_proper(word: str) -> bool:
    from nltk.corpus import wordnet

    lemmas = wordnet.lemmas(word.lower())
    names = [lem for lem in lemmas if lem.name().lower() == word.lower()]
    return bool(names) and all(lem.name()[0].isupper() or lem.synset().instance_hypernyms() for lem in names)


def problems(old: list[str], new: list[str], tags: dict[str, str], floor: float) -> set[str]:
    """Which of :data:`PROBLEMS` one replacement has (``tags``: original word -> Penn tag)."""
    from nltk.corpus import wordnet
    from wordfreq import zipf_frequency

    from pipeline.synonyms import _TAG_POS

    if len(old) != 1 or len(new) != 1:
        return {"multiword"}
    (before,), (after,) = old, new
    found = set()
    if zipf_frequency(after, "en") < floor:
        found.add("rare")
    if (after[0].isupper() and not before[0].isupper()) or _is_proper(after):
        found.add("proper_noun")
    pos = _TAG_POS.get(tags.get(before, ""))
    lemma = wordnet.morphy(after.lower(), pos) if pos else None
    if pos is None or lemma is None or not wordnet.synsets(lemma, pos):
        found.add("other_pos")
    return found


def quality(captions: list[str], config) -> dict:
    """Variant-level shares of each problem for synonym-only variants of ``config``."""
    from pipeline.augment_text import caption_variants, textblob_pos_tag

    synonym_only = dataclasses.replace(config, methods=("synonym",), variants=VARIANTS)
    counts = dict.fromkeys(PROBLEMS, 0)
    bad = changed = total = 0
    pairs = []
    for i, caption in enumerate(captions):
        tags = dict(textblob_pos_tag(_WORD.findall(caption)))
        for variant in caption_variants(f"{i:012d}", caption, synonym_only):
            found = set().union(
                *(problems(o, n, tags, config.synonym.min_zipf) for o, n in replacements(caption, variant))
            )
            total, changed, bad = total + 1, changed + (variant != caption), bad + bool(found)
            for name in found:
                counts[name] += 1
            pairs.append((caption, variant))
    return {
        "variants": total,
        "changed_share": round(changed / total, 4),
        "problem_share": round(bad / total, 4),
        "by_problem": {k: round(v / total, 4) for k, v in counts.items()},
        "samples": [list(p) for p in pairs[:: max(1, len(pairs) // SAMPLES)][:SAMPLES]],
    }


def speed(captions: list[str], config) -> dict:
    """Captions per CPU-second through every method: a first pass that reads each word's
    WordNet entries for the first time, and a second one (new keys) that finds them cached."""
    from pipeline import synonyms
    from pipeline.augment_text import _cached_pos_tag, augmenters, caption_variants

    augmenters(config)
    synonyms.candidates.cache_clear()
    result = {}
    for name in ("cold", "warm"):
        _cached_pos_tag.cache_clear()  # every caption is tagged in both passes
        cpu = time.process_time()
        for i, caption in enumerate(captions):
            caption_variants(f"{name}{i}", caption, config)
        result[f"{name}_captions_per_cpu_s"] = round(len(captions) / (time.process_time() - cpu), 1)
    return {"variants_per_caption": config.variants, "methods": list(config.methods), **result}


def markdown(samples: dict[str, list[list[str]]]) -> str:
    lines = ["| caption | same_sense variant | any_sense variant |", "|---|---|---|"]
    for (caption, ours), (_, old) in zip(samples["same_sense"], samples["any_sense"]):
        lines.append(f"| {caption} | {ours} | {old} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markdown", action="store_true", help="print the sample table")
    args = parser.parse_args()
    captions = [line.strip() for line in CAPTIONS.read_text().splitlines() if line.strip()]
    config = recipe_config()
    any_sense = dataclasses.replace(config, synonym=dataclasses.replace(config.synonym, mode="any_sense"))
    speeds = speed(captions, config)  # first: the cold pass must see WordNet unread
    modes = {"same_sense": quality(captions, config), "any_sense": quality(captions, any_sense)}
    result = {
        "machine": f"{platform.machine()} {os.cpu_count()} cores (shared), {platform.python_version()}",
        "load_average": os.getloadavg(),
        "captions": len(captions),
        "recipe": RECIPE.name,
        "synonym": dataclasses.asdict(config.synonym),
        "quality": modes,
        "target_problem_share": TARGET_SHARE,
        "speed": speeds,
        "target_captions_per_cpu_s": TARGET_SPEED,
    }
    out = REPO / "bench" / "results" / "text_aug.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    summary = {m: {k: q[k] for k in ("problem_share", "by_problem", "changed_share")} for m, q in modes.items()}
    print(json.dumps({"quality": summary, "speed": result["speed"]}, indent=2))
    if args.markdown:
        print(markdown({m: q["samples"] for m, q in modes.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
