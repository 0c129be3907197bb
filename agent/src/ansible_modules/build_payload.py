"""Builds ansible-core's AnsiballZ payload for one module, for etcd-agent.

Usage: python build_payload.py MODULE_NAME [COLLECTION ...]
   or: python build_payload.py --serve   (one JSON request per stdin line, one answer per line:
       {"name": ..., "collections": [...], "path": optional file} -> the object below, or
       {"error": "..."})

Resolves MODULE_NAME as ansible-playbook's module loader does (the collections listed first),
then asks ansible-core's own ``modify_module`` for the wrapper ansible-playbook would send.
The only change: the wrapper reads its ``{"ANSIBLE_MODULE_ARGS": ...}`` JSON from stdin instead
of carrying it inline, so one payload serves every task of the module (cached, uploaded once per
host) and arguments never appear in a command line or in the uploaded file.

Prints one JSON object: {"found": false} when no module has that name, otherwise
{"found": true, "version", "fqcn", "path", "style", "action_plugin", "payload"}; "payload" is only present
for new-style Python modules (style "new").
"""

from __future__ import annotations

import json
import sys


def build(name: str, collections: list[str] | None, path: str | None = None) -> dict:
    """The answer for one module name; with ``path``, the module in that file (a playbook's or
    role's ``library/``, which ansible-playbook names ``ansible.legacy.<name>``)."""
    from ansible import constants as C
    from ansible.executor import module_common
    from ansible.plugins.loader import action_loader, init_plugin_loader, module_loader
    from ansible.template import Templar
    from ansible.parsing.dataloader import DataLoader

    if path is not None:
        fqcn = "ansible.legacy." + name
    else:
        ctx = module_loader.find_plugin_with_context(name, collection_list=collections)
        if not ctx.resolved:
            return {"found": False}
        fqcn = ctx.resolved_fqcn
        path = ctx.plugin_resolved_path
    # a module whose action plugin is not the generic one does controller-side work first
    action = action_loader.find_plugin_with_context(fqcn, collection_list=collections)
    action_plugin = bool(action.resolved) and action.resolved_fqcn not in (
        "ansible.builtin.normal",
        "ansible.legacy.normal",
    )

    # the interpreter is chosen by etcd-agent at run time; this only fills the shebang line
    task_vars = {"ansible_python_interpreter": "/usr/bin/python3"}
    built = module_common.modify_module(
        module_name=fqcn.rsplit(".", 1)[-1],
        module_path=path,
        module_args={},
        templar=Templar(loader=DataLoader()),
        task_vars=task_vars,
        module_compression=C.config.get_config_value("DEFAULT_MODULE_COMPRESSION"),
    )
    from ansible.release import __version__

    out = {
        "found": True,
        "version": __version__,
        "fqcn": fqcn,
        "path": path,
        "style": built.module_style,
        "action_plugin": action_plugin,
    }
    if built.module_style == "new":
        text = built.b_module_data.decode("utf-8")
        inline = "params=" + repr(json.dumps({"ANSIBLE_MODULE_ARGS": {}})) + ","
        if text.count(inline) != 1 or "def _ansiballz_main(" not in text:
            raise SystemExit(f"unexpected AnsiballZ wrapper for {fqcn}: no single inline params line")
        out["payload"] = text.replace(inline, "params=__import__('sys').stdin.read(),")
    return out


def main() -> int:
    from ansible.plugins.loader import init_plugin_loader

    # anything ansible prints goes to stderr; stdout carries only answers
    answers = sys.stdout
    sys.stdout = sys.stderr
    init_plugin_loader()
    if sys.argv[1:] != ["--serve"]:
        json.dump(build(sys.argv[1], sys.argv[2:] or None), answers)
        answers.write("\n")
        return 0
    answers.write(json.dumps({"ready": True}) + "\n")
    answers.flush()
    for line in sys.stdin:
        try:
            req = json.loads(line)
            out = build(req["name"], req.get("collections") or None, req.get("path"))
        except BaseException as ex:  # one bad module must not end the helper
            out = {"error": f"{type(ex).__name__}: {ex}"}
        answers.write(json.dumps(out) + "\n")
        answers.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
