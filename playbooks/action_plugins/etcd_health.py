# -*- coding: utf-8 -*-
"""Action plugin for the etcd-agent binary modules: runs the build for the host's CPU.

Every etcd_* module file has this plugin under its name (the other files are links
to this one). A module NAME may have builds for other CPUs beside it, named
NAME_<arch> with <arch> as `uname -m` prints it (etcd_health_aarch64). The host gets
the file whose ELF machine matches its architecture (ansible_facts.architecture when
facts were gathered for it, else `uname -m`); a script runs anywhere. A host with no
matching build fails the task with the builds there are, before anything is uploaded.
etcd-agent applies the same rule natively (agent/src/module_arch.rs).
"""

from __future__ import annotations

import os

from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.action import ActionBase
from ansible.utils.vars import merge_hash

# uname -m names of Linux CPUs looked for beside a module (NAME_<suffix>).
ARCH_SUFFIXES = ("x86_64", "aarch64", "riscv64", "ppc64le", "s390x", "armv7l", "i686")

# ELF e_machine numbers and the canonical CPU names they stand for.
ELF_MACHINES = {62: "x86_64", 183: "aarch64", 243: "riscv64", 22: "s390x", 40: "arm", 3: "i386"}


def canonical_arch(uname):
    """The canonical name of a `uname -m` value (amd64, arm64, armv*, i?86 folded)."""
    u = uname.strip()
    if u == "amd64":
        return "x86_64"
    if u == "arm64":
        return "aarch64"
    if u.startswith("armv"):
        return "arm"
    if len(u) == 4 and u.startswith("i") and u.endswith("86"):
        return "i386"
    return u


def elf_arch(path):
    """The canonical CPU of an ELF file, or None when the file is not ELF (a script)."""
    with open(path, "rb") as f:
        head = f.read(20)
    if len(head) < 20 or not head.startswith(b"\x7fELF"):
        return None
    order = "little" if head[5] == 1 else "big"
    machine = int.from_bytes(head[18:20], order)
    if machine == 21:
        return "ppc64le" if order == "little" else "ppc64"
    return ELF_MACHINES.get(machine, "elf-machine-%d" % machine)


class ActionModule(ActionBase):
    """Runs the module build that matches the target's CPU."""

    _supports_check_mode = True
    _supports_async = True

    def _host_arch(self, task_vars):
        facts = task_vars.get("ansible_facts") or {}
        arch = facts.get("architecture")
        # facts describe the inventory host, not a delegate
        if arch and not self._task.delegate_to:
            return to_text(arch)
        res = self._low_level_execute_command("uname -m", sudoable=False)
        arch = to_text(res.get("stdout", "")).strip()
        if res.get("rc") != 0 or not arch or any(c.isspace() for c in arch):
            raise AnsibleActionFail(
                "cannot learn the host's architecture with uname -m (rc %s): %s"
                % (res.get("rc"), to_text(res.get("stderr", "")).strip())
            )
        return arch

    def _builds(self):
        loader = self._shared_loader_obj.module_loader
        name = self._task.action
        found = loader.find_plugin_with_context(name, collection_list=self._task.collections)
        if not found.resolved:
            raise AnsibleActionFail("module %s not found" % name)
        base = found.plugin_resolved_path
        builds = [(name, base, elf_arch(base))]
        for suffix in ARCH_SUFFIXES:
            path = "%s_%s" % (base, suffix)
            if not os.path.isfile(path):
                continue
            arch = elf_arch(path)
            if arch != canonical_arch(suffix):
                raise AnsibleActionFail(
                    "module %s: %s is named for %s but is %s; refusing to use it"
                    % (name, path, suffix, "an ELF binary for %s" % arch if arch else "not an ELF binary")
                )
            variant = "%s_%s" % (name, suffix)
            # the name must lead Ansible to this very file, or the check above means nothing
            again = loader.find_plugin_with_context(variant, collection_list=self._task.collections)
            if not again.resolved or os.path.realpath(again.plugin_resolved_path) != os.path.realpath(path):
                raise AnsibleActionFail(
                    "module %s: %s resolves to %s, not to %s beside the module"
                    % (name, variant, again.plugin_resolved_path if again.resolved else "nothing", path)
                )
            builds.append((variant, path, arch))
        return builds

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp  # tmp no longer has any effect
        task_vars = task_vars or {}

        host_arch = self._host_arch(task_vars)
        want = canonical_arch(host_arch)
        builds = self._builds()
        chosen = [b for b in builds if b[2] is None or b[2] == want]
        if not chosen:
            raise AnsibleActionFail(
                "module %s: the host reports architecture '%s' (uname -m) and no build of this "
                "module runs there; builds found: %s. Nothing was uploaded. Build the module for "
                "%s (scripts/build-modules, MODULE_ARCHES) or leave the host out"
                % (
                    self._task.action,
                    host_arch,
                    ", ".join("%s (%s)" % (b[2] or "any", b[1]) for b in builds),
                    host_arch,
                )
            )
        module_name = chosen[0][0]

        wrap_async = self._task.async_val and not self._connection.has_native_async
        result = merge_hash(
            result,
            self._execute_module(module_name=module_name, task_vars=task_vars, wrap_async=wrap_async),
        )
        if not wrap_async:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        return result
