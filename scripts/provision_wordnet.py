"""`make setup` step: provide WordNet for nlpaug under $NLTK_DATA (offline where possible)."""

import sys

from pipeline.wordnet_data import WordNetMissingError, provision_wordnet

if __name__ == "__main__":
    try:
        print(f"WordNet ready at {provision_wordnet()}")
    except WordNetMissingError as err:
        print(err, file=sys.stderr)
        sys.exit(1)
