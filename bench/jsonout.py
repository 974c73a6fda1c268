"""Writing a benchmark part's JSON result, shared by bench/e2e.py, bench/peers.py and
bench/machine.py."""

import json


def write_json(obj, out):
    """Writes obj as indented JSON to the file `out`, or to stdout when out is '-'."""
    text = json.dumps(obj, indent=1)
    if out == "-":
        print(text)
    else:
        with open(out, "w") as f:
            f.write(text + "\n")
