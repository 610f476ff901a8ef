"""The real `flatted` npm package (the one n8n uses, installed beside the pinned n8n)."""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any

from services.demo.n8n.local import flatted_module

_SCRIPT = """
const Flatted = require(process.argv[1]);
let input = '';
process.stdin.on('data', c => input += c);
process.stdin.on('end', () => {
  const request = JSON.parse(input);
  const out = {stringified: request.values.map(v => Flatted.stringify(v)),
               parsed: request.texts.map(t => { try { return {ok: Flatted.parse(t)}; }
                                                catch (e) { return {error: String(e)}; } })};
  // A cycle and a shared object, as n8n's error objects have.
  const shared = {name: 'shared'}; const cyclic = {a: shared, b: shared, label: 'x'};
  cyclic.self = cyclic;
  out.cyclic = Flatted.stringify(cyclic);
  process.stdout.write(JSON.stringify(out));
});
"""


def run_flatted(values: list[Any], texts: list[str] = ()) -> dict[str, Any]:  # type: ignore[assignment]
    node = shutil.which("node")
    assert node, "node is needed (n8n runs on it)"
    result = subprocess.run(
        [node, "-e", _SCRIPT, str(flatted_module())],
        input=json.dumps({"values": values, "texts": list(texts)}),
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    out: dict[str, Any] = json.loads(result.stdout)
    return out
