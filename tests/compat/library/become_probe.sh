#!/bin/sh
# WANT_JSON
# A script module for 41_become.yml: which user runs it, and can it read its args file.
if [ -r "$1" ]; then readable=true; else readable=false; fi
printf '{"changed": false, "user": "%s", "args_readable": %s}\n' "$(id -un)" "$readable"
