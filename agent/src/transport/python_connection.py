"""Serves one host's connection through an ansible-core connection plugin, for etcd-agent.

Usage: python python_connection.py   (requests on stdin, one JSON object a line)

The first line names the plugin and the host's variables:
  {"plugin": NAME, "host": INVENTORY_NAME, "vars": {...}, "dirs": [connection_plugins dirs]}
and is answered {"ready": true} or {"error": "..."} (the plugin cannot be loaded).
Then each line is one operation, answered with one line:
  {"op": "exec", "cmd": SH_COMMAND_LINE, "stdin": HEX or null}
      -> {"rc": N, "stdout": HEX, "stderr": HEX}
  {"op": "put", "path": REMOTE_PATH, "data": HEX}   -> {"ok": true}
  {"op": "close"}                                      -> {"ok": true}, then it exits
A failure is {"unreachable": MSG} when the plugin raised AnsibleConnectionFailure (ansible-core
treats the host as unreachable), else {"failed": MSG}.

The plugin is found as ansible-playbook finds it (the directories given, the configured
connection plugin path such as ANSIBLE_CONNECTION_PLUGINS, collections, ansible.builtin) and given the host's variables as
its options, as ansible-playbook's task executor does.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile


# replies are the only thing on stdout: what ansible-core or the plugin prints goes to stderr
REPLIES = sys.stdout
sys.stdout = sys.stderr


def reply(obj: dict) -> None:
    REPLIES.write(json.dumps(obj) + "\n")
    REPLIES.flush()


def main() -> None:
    from ansible.errors import AnsibleConnectionFailure
    from ansible.playbook.play_context import PlayContext
    from ansible.plugins.loader import connection_loader, init_plugin_loader

    first = json.loads(sys.stdin.readline())
    try:
        init_plugin_loader()
        for d in first.get("dirs") or []:
            connection_loader.add_directory(d)
        variables = first.get("vars") or {}
        pc = PlayContext()
        pc.remote_addr = variables.get("ansible_host") or first.get("host")
        conn = connection_loader.get(first["plugin"], pc)
        if conn is None:
            reply({"error": f"the connection plugin {first['plugin']!r} was not found"})
            return
        conn.set_options(var_options=variables)
    except Exception as ex:
        reply({"error": f"{type(ex).__name__}: {ex}"})
        return
    reply({"ready": True})

    for line in sys.stdin:
        req = json.loads(line)
        op = req.get("op")
        try:
            if op == "exec":
                data = bytes.fromhex(req["stdin"]) if req.get("stdin") is not None else None
                rc, out, err = conn.exec_command(req["cmd"], in_data=data, sudoable=False)
                reply({
                    "rc": rc,
                    "stdout": (out or b"").hex(),
                    "stderr": (err or b"").hex(),
                })
            elif op == "put":
                fd, local = tempfile.mkstemp(prefix="etcd-agent-put-")
                try:
                    with os.fdopen(fd, "wb") as f:
                        f.write(bytes.fromhex(req["data"]))
                    conn.put_file(local, req["path"])
                finally:
                    os.unlink(local)
                reply({"ok": True})
            elif op == "close":
                conn.close()
                reply({"ok": True})
                return
            else:
                reply({"failed": f"unknown operation {op!r}"})
        except AnsibleConnectionFailure as ex:
            reply({"unreachable": str(ex)})
        except Exception as ex:
            reply({"failed": f"{type(ex).__name__}: {ex}"})


if __name__ == "__main__":
    main()
