# osmosectl.bash: bash completion for osmosectl and osmosed (installed as completions/osmosectl
# and completions/osmosed). The tables below are the CLI contract (osmosectl(1)); the test
# tests/deploy/test-contract.sh checks them against `osmosectl --help` and the manual page.

# Top-level commands, and the subcommands of command groups.
_osmosectl_commands="status reload call put query collections retention delete object peers peer services
keygen bundle channel trust install workloads remove enable disable grant revoke run ps logs stop stats
follow unfollow pin unpin upgrade import rollout
federation remote share unshare audit building ingest tenant usage"
declare -A _osmosectl_subcommands=(
        [object]="put get ls rm gc"
        [peer]="trust untrust"
        [bundle]="build inspect"
        [channel]="publish inspect"
        [rollout]="status hold release"
        [trust]="add ls rm"
        [federation]="enable disable status"
        [remote]="add ls rm set-url fetch"
        [building]="create invite join status leave remove recover trust share unshare query"
        [ingest]="add ls rm"
        [tenant]="add ls set rm"
)
# Options of each command ("group sub" for subcommands); every command also takes --help.
declare -A _osmosectl_options=(
        [status]=""
        [reload]=""
        [call]="--more"
        [put]="--batch -b --time -t"
        [query]="--since --until --limit --reverse --follow -s -u -n -r -f"
        [collections]=""
        [retention]="--max-age --max-records --max-bytes --create"
        [delete]="--until --where-writer"
        [object put]=""
        [object get]="-o --output"
        [object ls]=""
        [object rm]=""
        [object gc]=""
        [peers]="--watch"
        [peer trust]=""
        [peer untrust]=""
        [services]="--type --watch"
        [keygen]="-o"
        [bundle build]="-o --key"
        [bundle inspect]=""
        [channel publish]="--channel --key -o --notes --expires --sequence"
        [channel inspect]=""
        [trust add]=""
        [trust ls]=""
        [trust rm]=""
        [install]="--tenant --grant --allow-unsigned --allow-downgrade"
        [workloads]=""
        [remove]="--keep-data"
        [enable]="--now"
        [disable]="--now"
        [grant]=""
        [revoke]=""
        [run]="--wait -w --no-attach --restart --allow-untrusted"
        [follow]="--building --canary --batch"
        [rollout status]=""
        [rollout hold]=""
        [rollout release]=""
        [unfollow]=""
        [pin]=""
        [unpin]=""
        [upgrade]="--check"
        [import]=""
        [ps]="--all -a --limit -n --workload -w --state -s"
        [logs]="-f --follow -n --lines --since -t --timestamps"
        [stop]="--all -a"
        [stats]=""
        [federation enable]="--listen"
        [federation disable]=""
        [federation status]=""
        [remote add]="--key"
        [remote ls]=""
        [remote rm]=""
        [remote fetch]=""
        [remote set-url]=""
        [building create]="--name --address -n -a"
        [building invite]="--expires -e"
        [building join]="--address -a"
        [building status]=""
        [building leave]=""
        [building remove]=""
        [building recover]=""
        [building trust]="--comment"
        [building share]=""
        [building unshare]=""
        [building query]="--since --until --limit --room -s -u -l -r"
        [share]="--with --object --since --channel"
        [unshare]="--with --object --since --channel"
        [audit]="--since --limit -s -n"
        [ingest add]="--topic --into --qos --username --password-file --ca-file --max-payload"
        [ingest ls]="--discovered"
        [ingest rm]=""
        [tenant add]="--group --cpu --memory --pids --disk --store --instances --until --network"
        [tenant ls]=""
        [tenant set]="--group --cpu --memory --pids --disk --store --instances --until --network"
        [tenant rm]=""
        [usage]="--tenant --since --csv -t -s -c"
)
_osmosectl_global_options="--socket --json --help --version"
_osmosed_options="--config --state-dir --socket --name --check-config --dump-config --version --help"

# Names the running daemon knows, for arguments that are names. Quietly nothing when no
# daemon answers. $1: the listing command; prints the first column of its table.
_osmosectl_names()
{
        local -a sock=()
        [[ -n $_osmosectl_socket ]] && sock=(--socket "$_osmosectl_socket")
        osmosectl "${sock[@]}" "$@" 2>/dev/null | awk 'NR > 1 { print $1 }'
}

# Instances that can be stopped: running, starting or in backoff (ps's STATE column).
_osmosectl_running()
{
        local -a sock=()
        [[ -n $_osmosectl_socket ]] && sock=(--socket "$_osmosectl_socket")
        osmosectl "${sock[@]}" ps 2>/dev/null |
                awk 'NR > 1 && ($4 == "running" || $4 == "starting" || $4 == "backoff") { print $1 }'
}

# The capabilities workload $1 requests ($2 = requested) or holds ($2 = granted), read
# from 'osmosectl --json workloads' (one string a line inside the array; no jq needed).
_osmosectl_caps()
{
        local -a sock=()
        [[ -n $_osmosectl_socket ]] && sock=(--socket "$_osmosectl_socket")
        osmosectl "${sock[@]}" --json workloads 2>/dev/null | awk -v w="$1" -v k="$2" '
                /^ *"name": "/ { v = $0; sub(/^ *"name": "/, "", v); sub(/",?$/, "", v); cur = v; next }
                $0 ~ "^ *\"" k "\": \\[$" { inarr = (cur == w); next }
                inarr && /^ *\]/ { inarr = 0; next }
                inarr { v = $0; sub(/^ *"/, "", v); sub(/",?$/, "", v); print v }'
}

_osmosectl()
{
        local cur prev words cword
        _init_completion -n =: || return

        # Find the command (and subcommand) among the words, skipping global options.
        local i cmd="" sub="" _osmosectl_socket=""
        for ((i = 1; i < cword; i++)); do
                case ${words[i]} in
                --socket) _osmosectl_socket=${words[i + 1]}; ((i++)); continue ;;
                --socket=*) _osmosectl_socket=${words[i]#--socket=}; continue ;;
                -*) continue ;;
                esac
                if [[ -z $cmd ]]; then
                        cmd=${words[i]}
                        [[ -n ${_osmosectl_subcommands[$cmd]+x} ]] || break
                elif [[ -z $sub ]]; then
                        sub=${words[i]}
                        break
                fi
        done

        # Values of options.
        case $prev in
        --socket) _filedir sock; [[ ${#COMPREPLY[@]} -gt 0 ]] || _filedir; return ;;
        -o | --key) _filedir; return ;;
        --type)
                COMPREPLY=($(compgen -W "_osmose._tcp _http._tcp _ipp._tcp _mqtt._tcp
                        _printer._tcp _raop._tcp _airplay._tcp _googlecast._tcp
                        _hap._tcp _coap._udp" -- "$cur"))
                return ;;
        --grant)
                COMPREPLY=($(compgen -W "network discovery:read store:read: store:write: publish: device:/dev/" -- "$cur"))
                compopt -o nospace
                return ;;
        --since | --until | --time | --notes | --expires | --sequence | --channel | --canary | --batch | --max-age | --max-records | --max-bytes | --limit | --listen | --name | --address | --room | --comment)
                return ;;
        --with) COMPREPLY=($(compgen -W "$(_osmosectl_names remote ls)" -- "$cur")); return ;;
        --group) COMPREPLY=($(compgen -g -- "$cur")); return ;;
        --network) COMPREPLY=($(compgen -W "allowed denied" -- "$cur")); return ;;
        --tenant) COMPREPLY=($(compgen -W "$(_osmosectl_names tenant ls)" -- "$cur")); return ;;
        --cpu | --memory | --pids | --disk | --store | --instances) return ;;
        esac

        if [[ -z $cmd ]]; then
                if [[ $cur == -* ]]; then
                        COMPREPLY=($(compgen -W "$_osmosectl_global_options" -- "$cur"))
                else
                        COMPREPLY=($(compgen -W "$_osmosectl_commands" -- "$cur"))
                fi
                return
        fi
        if [[ -n ${_osmosectl_subcommands[$cmd]+x} && -z $sub ]]; then
                COMPREPLY=($(compgen -W "${_osmosectl_subcommands[$cmd]} --help" -- "$cur"))
                return
        fi

        local key=$cmd${sub:+ $sub}
        if [[ $cur == -* ]]; then
                COMPREPLY=($(compgen -W "${_osmosectl_options[$key]} --help" -- "$cur"))
                return
        fi
        # Positional arguments.
        case $key in
        "object put" | install | "bundle inspect" | "channel publish" | "channel inspect") _filedir ;;
        "bundle build") _filedir -d ;;
        grant | revoke)
                # NAME, then a capability: one it requests and lacks (grant), or holds (revoke)
                local name="" j
                for ((j = i + 1; j < cword; j++)); do
                        [[ ${words[j]} == -* ]] || { name=${words[j]}; break; }
                done
                if [[ -z $name ]]; then
                        COMPREPLY=($(compgen -W "$(_osmosectl_names workloads)" -- "$cur"))
                elif [[ $key == grant ]]; then
                        local held c want=()
                        held=" $(_osmosectl_caps "$name" granted | tr '\n' ' ') "
                        while read -r c; do
                                [[ -n $c && $held != *" $c "* ]] && want+=("$c")
                        done < <(_osmosectl_caps "$name" requested)
                        COMPREPLY=($(compgen -W "${want[*]}" -- "$cur"))
                else
                        COMPREPLY=($(compgen -W "$(_osmosectl_caps "$name" granted)" -- "$cur"))
                fi ;;
        remove | enable | disable | run | follow | unfollow | pin | unpin | upgrade) COMPREPLY=($(compgen -W "$(_osmosectl_names workloads)" -- "$cur")) ;;
        stop) COMPREPLY=($(compgen -W "$(_osmosectl_running)" -- "$cur")) ;;
        logs | stats) COMPREPLY=($(compgen -W "$(_osmosectl_names ps --all)" -- "$cur")) ;;
        "trust rm") COMPREPLY=($(compgen -W "$(_osmosectl_names trust ls)" -- "$cur")) ;;
        "tenant set" | "tenant rm") COMPREPLY=($(compgen -W "$(_osmosectl_names tenant ls)" -- "$cur")) ;;
        import) _filedir -d ;;
        put | query | retention | delete | share | unshare | "building share" | "building unshare" | "building query") COMPREPLY=($(compgen -W "$(_osmosectl_names collections)" -- "$cur")) ;;
        "object get" | "object rm") COMPREPLY=($(compgen -W "$(_osmosectl_names object ls)" -- "$cur")) ;;
        "peer trust" | "peer untrust") COMPREPLY=($(compgen -W "$(_osmosectl_names peers)" -- "$cur")) ;;
        "remote rm" | "remote fetch") COMPREPLY=($(compgen -W "$(_osmosectl_names remote ls)" -- "$cur")) ;;
        "ingest rm") COMPREPLY=($(compgen -W "$(_osmosectl_names ingest ls)" -- "$cur")) ;;
        esac
} && complete -F _osmosectl osmosectl

_osmosed()
{
        local cur prev words cword
        _init_completion || return
        case $prev in
        --config) _filedir conf; [[ ${#COMPREPLY[@]} -gt 0 ]] || _filedir; return ;;
        --state-dir) _filedir -d; return ;;
        --socket) _filedir; return ;;
        --name) return ;;
        esac
        COMPREPLY=($(compgen -W "$_osmosed_options" -- "$cur"))
} && complete -F _osmosed osmosed
