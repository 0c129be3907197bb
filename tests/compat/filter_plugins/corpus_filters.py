# A filter plugin of the compatibility corpus (112_python_filter_plugins): run by ansible-core
# under both engines.
from __future__ import annotations


def member_urls(hosts, port=2379, scheme="https"):
    return ",".join(f"{scheme}://{h}:{port}" for h in hosts)


def halves(value):
    return {"first": value[: len(value) // 2], "second": value[len(value) // 2 :]}


def fails(value):
    raise ValueError(f"cannot use {value!r}")


class FilterModule:
    def filters(self):
        return {"member_urls": member_urls, "halves": halves, "corpus_fails": fails}
