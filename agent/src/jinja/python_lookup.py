"""Runs one lookup plugin through ansible-core's plugin loader, for etcd-agent.

Reads one JSON request on stdin:
  {"name", "terms", "kwargs", "undefined": [positions of terms that are undefined],
   "variables", "dirs": [lookup_plugins directories], "basedir"}
and prints one JSON object:
  {"result": [...]}, {"not_found": true}, {"load_error": "..."}, {"undefined": true}
  (the plugin does not accept undefined arguments: the lookup's value is undefined), or
  {"error": "..."} (the plugin failed).
The lookup is found as ansible-playbook finds it: the directories given (the playbook's and
the role's lookup_plugins/), the configured lookup plugin path, collections, ansible.builtin.
"""

from __future__ import annotations

import json
import sys


def answer(req: dict) -> dict:
    from ansible.parsing.dataloader import DataLoader
    from ansible.plugins.loader import init_plugin_loader, lookup_loader
    from ansible.template import Templar

    init_plugin_loader()
    for d in req.get("dirs") or []:
        lookup_loader.add_directory(d)
    loader = DataLoader()
    loader.set_basedir(req.get("basedir") or ".")
    variables = req.get("variables") or {}
    name = req["name"]
    try:
        plugin = lookup_loader.get(name, loader=loader, templar=Templar(loader=loader, variables=variables))
    except Exception as ex:  # the plugin's own import failed
        return {"load_error": str(ex) or type(ex).__name__}
    if plugin is None:
        return {"not_found": True}
    terms = req.get("terms") or []
    if req.get("undefined"):
        if not getattr(plugin, "accept_args_markers", False):
            return {"undefined": True}
    try:
        result = plugin.run(terms, variables=variables, **(req.get("kwargs") or {}))
    except Exception as ex:
        return {"error": str(ex) or type(ex).__name__}
    if isinstance(result, (str, bytes)) or not hasattr(result, "__iter__"):
        return {"error": f"returned {type(result)} instead of {list}"}
    return {"result": list(result)}


def main() -> None:
    req = json.load(sys.stdin)
    # the answer is the only thing on stdout: what ansible-core or the plugin prints goes to
    # stderr
    real_stdout, sys.stdout = sys.stdout, sys.stderr
    try:
        out = answer(req)
    except Exception as ex:
        out = {"error": f"{type(ex).__name__}: {ex}"}
    real_stdout.write(json.dumps(out, default=str))
    real_stdout.flush()


if __name__ == "__main__":
    main()
