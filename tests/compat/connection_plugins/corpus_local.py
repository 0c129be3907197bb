# A connection plugin of the corpus's own (tests/compat/110_connection_plugins.yml): the local
# connection, except that a command naming "corpus-unreachable" cannot connect.
from __future__ import annotations

import ansible.plugins.connection.local as ansible_local
from ansible.errors import AnsibleConnectionFailure


class Connection(ansible_local.Connection):
    transport = "corpus_local"

    def exec_command(self, cmd, in_data=None, sudoable=True):
        if self._play_context.remote_addr == "corpus-unreachable":
            raise AnsibleConnectionFailure("corpus_local: corpus-unreachable cannot be reached")
        return super().exec_command(cmd, in_data=in_data, sudoable=sudoable)
