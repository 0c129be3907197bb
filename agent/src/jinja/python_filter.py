"""Filter and test plugins of a playbook's (or role's) filter_plugins/ and test_plugins/,
run through ansible-core for etcd-agent.

Reads one JSON request on stdin and prints one JSON object:
  {"op": "list", "filter_dirs": [...], "test_dirs": [...]}
    -> {"filters": [names], "tests": [names]}: the names the plugin files there declare
       (FilterModule().filters(), TestModule().tests()); a file that does not import is left out.
  {"op": "call", "kind": "filter"|"test", "name", "dirs", "value", "args", "kwargs"}
    -> {"result": value}, {"not_found": true}, {"load_error": "..."} or {"error": "..."}.
The plugin is found as ansible-playbook finds it (ansible-core's filter/test loader with the
directories added), so its own failures read as ansible-core's.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys


def names(dirs: list, class_name: str, method: str) -> list:
    found = []
    for d in dirs:
        try:
            files = sorted(f for f in os.listdir(d) if f.endswith(".py") and not f.startswith("_"))
        except OSError:
            continue
        for f in files:
            try:
                spec = importlib.util.spec_from_file_location(f"etcd_agent_plugin_{len(found)}_{f[:-3]}", os.path.join(d, f))
                mod = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(mod)
                cls = getattr(mod, class_name, None)
                if cls is None:
                    continue
                for n in getattr(cls(), method)().keys():
                    if n not in found:
                        found.append(n)
            except Exception:
                continue
    return found


def call(req: dict) -> dict:
    from ansible.plugins.loader import filter_loader, init_plugin_loader, test_loader

    init_plugin_loader()
    kind = req["kind"]
    loader = filter_loader if kind == "filter" else test_loader
    for d in req.get("dirs") or []:
        loader.add_directory(d)
    name = req["name"]
    try:
        plugin = loader.get(name)
    except Exception as ex:
        return {"load_error": f"{kind} plugin {name!r} failed to load: {ex}"}
    if plugin is None:
        return {"not_found": True}
    try:
        result = plugin.j2_function(req.get("value"), *(req.get("args") or []), **(req.get("kwargs") or {}))
    except Exception as ex:
        return {"error": str(ex) or type(ex).__name__}
    if isinstance(result, (set, frozenset, tuple)):
        result = list(result)
    return {"result": result}


def main() -> None:
    req = json.load(sys.stdin)
    # the answer is the only thing on stdout: what ansible-core or the plugin prints goes to
    # stderr
    real_stdout, sys.stdout = sys.stdout, sys.stderr
    try:
        if req.get("op") == "list":
            out = {
                "filters": names(req.get("filter_dirs") or [], "FilterModule", "filters"),
                "tests": names(req.get("test_dirs") or [], "TestModule", "tests"),
            }
        else:
            out = call(req)
    except Exception as ex:
        out = {"error": f"{type(ex).__name__}: {ex}"}
    real_stdout.write(json.dumps(out, default=str))
    real_stdout.flush()


if __name__ == "__main__":
    main()
