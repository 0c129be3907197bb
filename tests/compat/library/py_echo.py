#!/usr/bin/python
# A Python module in the playbook's library/ (corpus 100_python_library_modules).
from __future__ import annotations

from ansible.module_utils.basic import AnsibleModule


def main() -> None:
    module = AnsibleModule(
        {"word": {"type": "str", "required": True}, "times": {"type": "int", "default": 1}},
        supports_check_mode=True,
    )
    word = module.params["word"]
    if word == "fail":
        module.fail_json(msg="asked to fail", word=word)
    module.exit_json(changed=not module.check_mode, said=" ".join([word] * module.params["times"]))


if __name__ == "__main__":
    main()
