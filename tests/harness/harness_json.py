# Aggregate callback of the test harness (tests/harness/ansible.rs).
#
# ansible-core 2.19 ships no JSON stdout callback (ansible.posix is not
# installed), so the harness enables this one next to the default stdout
# callback. It writes, after every event, the whole run so far to the file
# named by $HARNESS_JSON_OUT, in the layout of ansible.posix.json:
#   {"plays": [{"play": {"name", "id"},
#               "tasks": [{"task": {"name", "id", "action"},
#                          "hosts": {HOST: RESULT}}]}],
#    "stats": {HOST: {"ok", "changed", "failures", "unreachable",
#                     "skipped", "rescued", "ignored"}}}
# RESULT is the module result plus "action", "changed", "failed" and, when
# they apply, "skipped", "unreachable", "warnings", "exception".
import json
import os

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
    name: harness_json
    type: aggregate
    short_description: write all task results as JSON to $HARNESS_JSON_OUT
    description: test-harness helper, see tests/harness/ansible.rs
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "harness_json"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.out_path = os.environ.get("HARNESS_JSON_OUT")
        self.doc = {"plays": [], "stats": {}}

    def _flush(self):
        if not self.out_path:
            return
        tmp = self.out_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.doc, f, default=str, indent=1)
        os.replace(tmp, self.out_path)

    def v2_playbook_on_play_start(self, play):
        self.doc["plays"].append(
            {"play": {"name": str(play.get_name()), "id": str(play._uuid)}, "tasks": []}
        )
        self._flush()

    def _task_start(self, task):
        if not self.doc["plays"]:
            self.doc["plays"].append({"play": {"name": "", "id": ""}, "tasks": []})
        self.doc["plays"][-1]["tasks"].append(
            {
                "task": {
                    "name": str(task.get_name()),
                    "id": str(task._uuid),
                    "action": str(task.action),
                },
                "hosts": {},
            }
        )

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._task_start(task)

    def v2_playbook_on_handler_task_start(self, task):
        self._task_start(task)

    def _record(self, result, **flags):
        raw = result.result if hasattr(result, "result") else result._result
        try:
            data = json.loads(self._dump_results(raw, keep_invocation=True))
        except Exception as e:  # never break the run because of the recorder
            data = {"harness_json_error": str(e)}
        for key in ("warnings", "exception"):
            if raw.get(key):
                data[key] = raw[key] if key == "exception" else [str(w) for w in raw[key]]
        data["action"] = str(result.task.action)
        data.setdefault("changed", False)
        data["failed"] = bool(flags.pop("failed", False) or data.get("failed", False))
        data.update(flags)
        host = result.host.get_name()
        tasks = self.doc["plays"][-1]["tasks"] if self.doc["plays"] else []
        uuid = str(result.task._uuid)
        for t in reversed(tasks):
            if t["task"]["id"] == uuid:
                t["hosts"][host] = data
                break
        else:
            self._task_start(result.task)
            self.doc["plays"][-1]["tasks"][-1]["hosts"][host] = data
        self._flush()

    def v2_runner_on_ok(self, result):
        self._record(result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._record(result, failed=True, ignore_errors=bool(ignore_errors))

    def v2_runner_on_skipped(self, result):
        self._record(result, skipped=True)

    def v2_runner_on_unreachable(self, result):
        self._record(result, unreachable=True)

    def v2_playbook_on_stats(self, stats):
        for h in sorted(stats.processed.keys()):
            s = stats.summarize(h)
            self.doc["stats"][h] = {
                k: s.get(k, 0)
                for k in ("ok", "changed", "failures", "unreachable", "skipped", "rescued", "ignored")
            }
        self._flush()
