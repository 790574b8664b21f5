"""Find or provision the WordNet data that nlpaug's synonym replacement needs, without hanging.

Order: an existing ``$NLTK_DATA/corpora/wordnet``; the Debian WordNet 3.0 files
(``/usr/share/wordnet``, installed with apt when possible) copied into ``$NLTK_DATA``;
``nltk.download`` as the last resort. Dask workers only *find* the data: they never download.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from functools import lru_cache
from pathlib import Path

from pipeline.base.errors import UserError

DEBIAN_WORDNET_DIR = Path("/usr/share/wordnet")
DEBIAN_PACKAGES = ("wordnet-base", "wordnet-sense-index")
REQUIRED_FILES = ("data.noun", "index.noun", "index.sense", "lexnames")

# WordNet 3.0's lexicographer files in their fixed order (Debian does not ship `lexnames`).
LEXNAMES = (
    "adj.all adj.pert adv.all noun.Tops noun.act noun.animal noun.artifact noun.attribute "
    "noun.body noun.cognition noun.communication noun.event noun.feeling noun.food noun.group "
    "noun.location noun.motive noun.object noun.person noun.phenomenon noun.plant "
    "noun.possession noun.process noun.quantity noun.relation noun.shape noun.state "
    "noun.substance noun.time verb.body verb.change verb.cognition verb.communication "
    "verb.competition verb.consumption verb.contact verb.creation verb.emotion verb.motion "
    "verb.perception verb.possession verb.social verb.stative verb.weather adj.ppl"
).split()
# Files NLTK's reader reads start to end when it loads; the data files stay seekable streams.
SEQUENTIAL_FILES = re.compile(r"lexnames|index\.(noun|verb|adj|adv)|(noun|verb|adj|adv)\.exc")
_CATEGORY = {"noun": 1, "verb": 2, "adj": 3, "adv": 4}

HOW_TO_PROVIDE = (
    "WordNet data for synonym variants was not found under {root}/corpora/wordnet: provide it with "
    '`python -c "from pipeline.wordnet_data import provision_wordnet; provision_wordnet()"` '
    "(copies Debian's wordnet-base files, or downloads them with NLTK) or "
    "`python -c \"import nltk; nltk.download('wordnet', download_dir='{root}')\"`, with NLTK_DATA "
    "pointing at {root}; or leave synonym out of augment.methods"
)


class WordNetMissingError(UserError, RuntimeError):
    """Raised when the WordNet corpus is not available locally."""


def nltk_data_root() -> Path:
    """The first folder of ``$NLTK_DATA`` (default ``~/nltk_data``)."""
    env = os.environ.get("NLTK_DATA", "")
    first = env.split(os.pathsep)[0] if env else ""
    return Path(first) if first else Path.home() / "nltk_data"


def wordnet_dir(root: Path | None = None) -> Path:
    return (root or nltk_data_root()) / "corpora" / "wordnet"


def has_wordnet(root: Path | None = None) -> bool:
    folder = wordnet_dir(root)
    return all((folder / name).is_file() for name in REQUIRED_FILES)


def require_wordnet(root: Path | None = None) -> Path:
    """Return the WordNet folder or raise :class:`WordNetMissingError` saying how to provide it."""
    root = root or nltk_data_root()
    if not has_wordnet(root):
        raise WordNetMissingError(HOW_TO_PROVIDE.format(root=root))
    return wordnet_dir(root)


def lexnames_text() -> str:
    """The 45-line ``lexnames`` file: ``NN<TAB>name<TAB>category``."""
    lines = [f"{i:02d}\t{name}\t{_CATEGORY[name.split('.')[0]]}" for i, name in enumerate(LEXNAMES)]
    return "\n".join(lines) + "\n"


def copy_debian_wordnet(root: Path, source: Path = DEBIAN_WORDNET_DIR) -> bool:
    """Copy Debian's dictionary files into ``root/corpora/wordnet`` (copies, not symlinks)."""
    if not (source / "data.noun").is_file():
        return False
    target = wordnet_dir(root)
    target.mkdir(parents=True, exist_ok=True)
    for path in source.iterdir():
        if path.is_file():
            shutil.copyfile(path, target / path.name)
    if not (target / "lexnames").is_file():
        (target / "lexnames").write_text(lexnames_text())
    return has_wordnet(root)


def apt_install_wordnet(timeout_s: float = 300) -> bool:
    """Install Debian's WordNet packages when running as root with apt; never raises."""
    if not shutil.which("apt-get") or os.geteuid() != 0:
        return False
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *DEBIAN_PACKAGES]
    try:
        done = subprocess.run(cmd, env=env, capture_output=True, timeout=timeout_s)
        if done.returncode != 0:
            subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, timeout=timeout_s)
            done = subprocess.run(cmd, env=env, capture_output=True, timeout=timeout_s)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def nltk_download_wordnet(root: Path) -> bool:
    """Last resort for machines with internet access."""
    try:
        import nltk

        return bool(nltk.download("wordnet", download_dir=str(root), quiet=True)) and has_wordnet(root)
    except Exception:  # noqa: BLE001 - any failure means "not provided"
        return False


def provision_wordnet(root: Path | None = None) -> Path:
    """Make WordNet available under ``root`` by the cheapest route that works, or raise."""
    root = root or nltk_data_root()
    if has_wordnet(root) or copy_debian_wordnet(root):
        return wordnet_dir(root)
    if apt_install_wordnet() and copy_debian_wordnet(root):
        return wordnet_dir(root)
    if nltk_download_wordnet(root):
        return wordnet_dir(root)
    raise WordNetMissingError(HOW_TO_PROVIDE.format(root=root))


@lru_cache(maxsize=1)
def english_wordnet():
    """NLTK's WordNet reader for English only, built once per process.

    NLTK's stock reader also maps every synset to WordNet 3.0 ids for the multilingual (OMW)
    functions, reading ``index.sense`` twice: more than half of its load time, never used for
    English. This reader skips that mapping, and reads the files it loads whole at start-up
    (:data:`SEQUENTIAL_FILES`) as plain text files rather than through NLTK's seekable
    pure-Python decoder (several times faster); lookups are the same. nlpaug's WordNet model is
    pointed at it too, so a process loads WordNet once.
    """
    import warnings

    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    class EnglishWordNetReader(WordNetCorpusReader):
        def map_wn(self, version="wordnet"):
            return None

        def open(self, file):
            if SEQUENTIAL_FILES.fullmatch(file):  # read once, line by line: a plain text file
                return open(os.path.join(folder, file), encoding="utf8")
            return super().open(file)

    folder = require_wordnet()
    with warnings.catch_warnings():  # "multilingual functions are not available": as intended
        warnings.simplefilter("ignore")
        reader = EnglishWordNetReader(str(folder), None)
    import importlib

    # the module itself: its package re-exports the name ``wordnet`` (NLTK's loader) over it
    importlib.import_module("nlpaug.model.word_dict.wordnet").wordnet = reader
    return reader
