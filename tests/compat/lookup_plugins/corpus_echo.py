# A lookup plugin of the corpus's own (tests/compat/109_trust_and_python_plugins.yml): its
# terms back, then its keyword arguments as "key=value", sorted.
from __future__ import annotations

from ansible.plugins.lookup import LookupBase


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        return list(terms) + [f"{k}={kwargs[k]}" for k in sorted(kwargs)]
