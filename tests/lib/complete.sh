#!/bin/bash
# complete.sh: what bash completion offers at the end of a command line, one a line, as
# a person's TAB would: complete.sh BASH_COMPLETION COMPLETION_SCRIPT LINE [FUNCTION].
# COMPLETE_PATH, if set, is the PATH the completion runs with (/nonexistent: no daemon).
source "$1" >/dev/null 2>&1
source "$2"
COMP_LINE="$3"; COMP_POINT=${#COMP_LINE}
read -ra COMP_WORDS <<< "$3"
[[ "$3" == *" " ]] && COMP_WORDS+=("")
COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
[[ -n ${COMPLETE_PATH:-} ]] && PATH=$COMPLETE_PATH
"_${4:-osmosectl}"
printf '%s\n' "${COMPREPLY[@]}"
