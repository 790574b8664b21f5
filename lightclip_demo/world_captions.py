"""Long captions of the synthetic world (``caption_style: long``).

A long caption has 15-30 words: a count of the objects and the background ("a photo of three
shapes on the sand"), then the objects it names, with counts of same-class objects ("two red
circles"), sizes and positions, often a relation ("the crimson disc is to the left of the box",
"... above a smaller shape"), then clauses picked at random: where the largest and smallest
objects lie, where named objects lie and how big they are, the background again. With
``caption_objects: some`` it names only some of the objects (one or two of the classes in the
image, never all when there are several), some of them by colour or by shape alone ("a red
shape", "a large disc"), as web captions do.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lightclip_demo.world import BACKGROUND_WORDS, COLOURS, SHAPES, Scene, Thing, _relation

MIN_WORDS, MAX_WORDS = 15, 30
ONE_ATTRIBUTE = 0.35  # share of mentions (caption_objects: some) by colour or shape alone
SIZE_WORD = 0.6  # share of one-object mentions with a size word, when it fits
PLACE_WORD = 0.5  # share of one-object mentions with a position phrase, when it fits
EXTRA_CLAUSE = 0.5  # chance of each further clause once the caption has MIN_WORDS words
RELATION = 0.7  # chance of a relation clause, when one fits (positions and sizes make room)
NUMBERS = ("no", "one", "two", "three", "four")
NOUNS = ("shapes", "objects")
PLACES = {
    "centre": "in the centre",
    "top left": "at the top left",
    "top right": "at the top right",
    "bottom left": "at the bottom left",
    "bottom right": "at the bottom right",
}
# Frames around ``{count}`` ("three shapes") and ``{bg}``; the object list follows.
OPENERS = (
    "a photo of {count} on {bg}",
    "{count} lying on {bg}",
    "this picture shows {count} against {bg}",
    "an image of {count} on {bg}",
    "on {bg} we see {count}",
    "a snapshot of {count} seen on {bg}",
    "{bg} with {count} on it",
    "a close-up of {count} on {bg}",
    "there are {count} on {bg}",
    "in this image {count} sit on {bg}",
)


def plural(word: str) -> str:
    """English plural of a shape word ("box" -> "boxes", "plus sign" -> "plus signs")."""
    return word + ("es" if word.endswith(("s", "x")) else "s")


def number(count: int, noun: str) -> str:
    """ "two shapes", "one shape"."""
    word = NUMBERS[count] if count < len(NUMBERS) else str(count)
    return f"{word} {noun if count != 1 else noun[:-1]}"


@dataclass
class Mention:
    """The objects of one class as a caption names them: ``colour``/``shape`` are the words
    used (None when left out); ``size`` and ``place`` say whether the phrase has them."""

    things: list[Thing]
    colour: str | None
    shape: str | None
    size: bool = False
    place: bool = False

    @property
    def full(self) -> bool:
        """Named by colour and shape (a class name a parser can read back)."""
        return self.colour is not None and self.shape is not None

    def noun(self) -> str:
        one = self.shape or "shape"
        return one if len(self.things) == 1 else plural(one)

    def phrase(self) -> str:
        """ "a large crimson disc at the top left", "two red shapes", "a box"."""
        thing, count = self.things[0], len(self.things)
        words = [thing.size] if self.size else []
        words += [self.colour] if self.colour else []
        text = " ".join([*words, self.noun()])
        if count > 1:
            text = f"{NUMBERS[count]} {text}"
        else:
            text = ("an " if text[0] in "aeiou" else "a ") + text
        return text + (" " + PLACES[thing.position] if self.place else "")

    def reference(self) -> str:
        """ "the crimson disc", "the red shape", "the box"."""
        return " ".join(["the", *([self.colour] if self.colour else []), self.noun()])


def _groups(scene: Scene) -> list[list[Thing]]:
    """The scene's objects grouped by class, in order of first appearance."""
    groups: dict[str, list[Thing]] = {}
    for thing in scene.things:
        groups.setdefault(thing.label, []).append(thing)
    return list(groups.values())


def _mention(things: list[Thing], rng: np.random.Generator, partial: bool) -> Mention:
    colour = str(rng.choice(COLOURS[things[0].colour][1]))
    shape = str(rng.choice(SHAPES[things[0].shape]))
    if partial and rng.random() < ONE_ATTRIBUTE:
        return Mention(things, colour, None) if rng.random() < 0.5 else Mention(things, None, shape)
    return Mention(things, colour, shape)


def _mentions(scene: Scene, rng: np.random.Generator, some: bool) -> list[Mention]:
    """Every class of the scene, or (``some``) one or two classes, never all of several."""
    groups = _groups(scene)
    if some and len(groups) > 1:
        keep = int(rng.integers(1, min(2, len(groups) - 1) + 1))
        groups = [groups[int(i)] for i in sorted(rng.permutation(len(groups))[:keep])]
    mentions = [_mention(group, rng, some) for group in groups]
    for mention in mentions:
        if len(mention.things) == 1:
            mention.size = bool(rng.random() < SIZE_WORD)
            mention.place = bool(rng.random() < PLACE_WORD)
    return mentions


def _listing(mentions: list[Mention]) -> str:
    phrases = [m.phrase() for m in mentions]
    return phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " and " + phrases[-1]


def _head(opener: str, mentions: list[Mention], all_named: bool) -> str:
    return opener + (": " if all_named else ", among them ") + _listing(mentions)


def _fit(opener: str, mentions: list[Mention], all_named: bool, budget: int) -> str:
    """The opener and object list, dropping positions, then sizes, until it has <= ``budget``
    words (or has neither)."""
    for attribute in ("place", "size"):
        for mention in reversed(mentions):
            if len(_head(opener, mentions, all_named).split()) <= budget:
                break
            setattr(mention, attribute, False)
    return _head(opener, mentions, all_named)


def _relation_clause(scene: Scene, mentions: list[Mention], rng: np.random.Generator) -> str:
    """Where a named object lies relative to another named one ("the crimson disc is to the
    left of the box") or, when only one is named, to an unnamed one ("... of a smaller shape");
    empty when no object of the scene is named alone in its class."""
    single = [m for m in mentions if len(m.things) == 1]
    if not single:
        return ""
    if len(single) > 1:
        first, second = (single[int(i)] for i in rng.permutation(len(single))[:2])
        return f"{first.reference()} is {_relation(first.things[0], second.things[0])} " + (second.reference())
    first = single[0]
    others = [t for t in scene.things if t is not first.things[0]]
    if not others:
        return ""
    other = others[int(rng.integers(len(others)))]
    side, other_side = first.things[0].box[2] - first.things[0].box[0], other.box[2] - other.box[0]
    kind = "another" if side == other_side else ("a smaller" if other_side < side else "a larger")
    noun = str(rng.choice(NOUNS))[:-1]
    return f"{first.reference()} is {_relation(first.things[0], other)} {kind} {noun}"


def _clauses(scene: Scene, mentions: list[Mention], rng: np.random.Generator) -> list[str]:
    """True statements about the scene that name nothing new: background, relations between
    named objects, where and how big named objects are, where the largest and smallest lie."""
    clauses = ["the background is " + str(rng.choice(BACKGROUND_WORDS[scene.background]))]
    if len(scene.things) > 1:
        sides = [t.box[2] - t.box[0] for t in scene.things]
        largest, smallest = scene.things[int(np.argmax(sides))], scene.things[int(np.argmin(sides))]
        noun = str(rng.choice(NOUNS))
        clauses += [
            f"the largest one is {PLACES[largest.position]}",
            f"the smallest one is {PLACES[smallest.position]}",
            f"none of the {noun} overlap",
        ]
    for mention in (m for m in mentions if len(m.things) == 1):
        if not mention.place:
            clauses.append(f"{mention.reference()} is {PLACES[mention.things[0].position]}")
        if not mention.size:
            clauses.append(f"{mention.reference()} is {mention.things[0].size}")
    return [clauses[int(i)] for i in rng.permutation(len(clauses))]


def describe_long(
    scene: Scene, rng: np.random.Generator, template: int | None = None, some: bool = False
) -> tuple[str, list[Thing], list[Thing]]:
    """A long caption of the scene; also the objects it names by colour and shape (one per
    class, in order of mention) and those it names by colour or shape alone."""
    index = int(rng.integers(len(OPENERS))) if template is None else template % len(OPENERS)
    count = number(len(scene.things), str(rng.choice(NOUNS)))
    bg = str(rng.choice(BACKGROUND_WORDS[scene.background]))
    mentions = _mentions(scene, rng, some)
    all_named = len(mentions) == len(_groups(scene))
    relation = _relation_clause(scene, mentions, rng) if rng.random() < RELATION else ""
    budget = MAX_WORDS - len(relation.split())
    text = _fit(OPENERS[index].format(count=count, bg=bg), mentions, all_named, budget)
    if relation and len(text.split()) <= budget:
        text = f"{text}; {relation}"
    words = len(text.split())
    for clause in _clauses(scene, mentions, rng):
        extra = len(clause.split())
        if words + extra <= MAX_WORDS and (words < MIN_WORDS or rng.random() < EXTRA_CLAUSE):
            text, words = f"{text}; {clause}", words + extra
    named = [m.things[0] for m in mentions if m.full]
    partial = [m.things[0] for m in mentions if not m.full]
    return text, named, partial
