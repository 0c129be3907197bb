#!/usr/bin/python
# A Python module in a role's library/: usable once the role is loaded (corpus 100).
from __future__ import annotations

from ansible.module_utils.basic import AnsibleModule


def main() -> None:
    module = AnsibleModule({"note": {"type": "str"}})
    module.warn("py_noisy warns")
    module.deprecate("py_noisy deprecates.", version="9999.9")
    module.exit_json(note=module.params["note"])


if __name__ == "__main__":
    main()
