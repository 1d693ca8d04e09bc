"""``python -m scalar_ml.models``: list the network presets.

    python -m scalar_ml.models                  # table: name, family, task, input size, params
    python -m scalar_ml.models --json           # JSON list of {name, family, task, params, input_size}
    python -m scalar_ml.models counting/eq_1    # one preset: its spec and the built module
    python -m scalar_ml.models --dims 3         # the presets lifted to 3D lattices (lift_spec)

``input_size`` is ``[nt, nx]`` for fl presets and ``null`` where any lattice size works.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from scalar_ml.models.builder import count_parameters
from scalar_ml.models.presets import build_preset, format_preset_table, preset_spec, preset_table


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m scalar_ml.models", description=__doc__.split("\n")[0]
    )
    parser.add_argument("preset", nargs="?", help="show one preset (e.g. counting/eq_1)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--dims",
        type=int,
        choices=(2, 3, 4),
        default=2,
        help="lattice dimension: 3 or 4 lists the presets lifted to d dimensions",
    )
    args = parser.parse_args(argv)
    dims = None if args.dims == 2 else args.dims
    if args.preset:
        try:
            spec = preset_spec(args.preset, dims=dims)
        except ValueError as error:
            print(error, file=sys.stderr)
            return 2
        model = build_preset(args.preset, dims=dims)
        if args.json:
            print(json.dumps({**model.spec, "params": count_parameters(model)}, indent=2))
        else:
            print(spec.get("description", args.preset))
            print(model)
            print(f"parameters: {count_parameters(model)}")
        return 0
    rows = preset_table(args.dims)
    print(json.dumps(rows, indent=2) if args.json else format_preset_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
