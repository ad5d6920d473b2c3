"""Render the offline shop catalog and the source-domain corpus into the cache.

Usage: python data_scripts/prepare_data.py [--force]
(`ecmm prepare` does this and also builds the pretrained assets.)
"""

import argparse

from ecmm.data.store import prepare_catalog, prepare_source_corpus


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="rebuild even when cached")
    args = parser.parse_args()
    print("catalog:", prepare_catalog(force=args.force))
    print("source corpus:", prepare_source_corpus(force=args.force))


if __name__ == "__main__":
    main()
