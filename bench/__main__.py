"""``python -m bench compare [--quick]``: tinyml-gateway beside the peer gateway
(bench/compare/). The other benchmarks are scripts: ``python bench/bench_<name>.py``."""

from __future__ import annotations

import sys


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] != "compare":
        sys.exit("usage: python -m bench compare [--quick] [--out DIR]  (see --help)")
    from bench.compare.cli import main as compare

    compare(sys.argv[2:])


if __name__ == "__main__":
    main()
