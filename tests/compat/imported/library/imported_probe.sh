#!/bin/sh
# WANT_JSON
# A script module in the library/ of an imported playbook's directory (106_parse_time_names.yml).
printf '{"changed": false, "from": "imported library"}\n'
