#!/bin/sh
# prints its arguments one a line, its working directory, and a line on stderr
for a in "$@"; do echo "arg: $a"; done
echo "pwd: $(pwd)"
echo "to stderr" >&2
exit "${SCRIPT_EXIT:-0}"
