# A test plugin of the compatibility corpus (112_python_filter_plugins).
from __future__ import annotations


def quorate(members, total):
    return len(members) > total // 2


class TestModule:
    def tests(self):
        return {"quorate": quorate}
