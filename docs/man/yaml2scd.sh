#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Make vmhostd.yaml.5.scd from its template: the line @DEFAULT_CONFIG@
# becomes etc/vmhostd.yaml, and @PLUGIN_KEYS@ one section per
# etc/plugins/<plugin>.yaml, each file shown whole as a literal block, so
# that the man page and the shipped config references are one source.
#
#   yaml2scd.sh TEMPLATE DEFAULT-CONFIG PLUGIN.yaml... > vmhostd.yaml.5.scd
#   yaml2scd.sh agent.yaml.5.scd.in agent/agent.yaml > agent.yaml.5.scd
set -eu

if [ $# -lt 2 ]; then
  echo "usage: $0 TEMPLATE DEFAULT-CONFIG [PLUGIN.yaml...]" >&2
  exit 2
fi
template=$1 default=$2
shift 2

# A YAML file as an scdoc literal block: the SPDX line dropped (it is the
# file's, not the page's); a backslash doubled (scdoc's escape).
literal ()
{
  echo '```'
  grep -v '^# SPDX-License-Identifier:' "$1" | sed 's/\\/\\\\/g'
  echo '```'
}

plugin_keys ()
{
  for f in "$@"; do
    name=${f##*/}
    name=${name%.yaml}
    printf '## %s\n\n' "$name"
    printf 'Installed as _@docdir@/plugins/%s.yaml_.\n\n' "$name"
    literal "$f"
    echo
  done
}

while IFS= read -r line; do
  case $line in
    @DEFAULT_CONFIG@) literal "$default" ;;
    @PLUGIN_KEYS@) plugin_keys "$@" ;;
    *) printf '%s\n' "$line" ;;
  esac
done <"$template"
