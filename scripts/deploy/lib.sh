# shellcheck shell=bash
# lib.sh: what every deploy script shares, sourced by them (not run):
# --dry-run, the az runner, the extension's identity from extension.json and
# the settings file. Requires bash and jq.

MSP_DEPLOY_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
MSP_REPO_ROOT=$(cd -- "$MSP_DEPLOY_DIR/../.." && pwd)
MSP_EXTENSION_JSON=${MSP_EXTENSION_JSON:-$MSP_REPO_ROOT/extension.json}
DRY_RUN=0

die() {
	echo "${0##*/}: $*" >&2
	exit 2
}

# quote prints one argument so that a shell reads it back unchanged: bare
# when it is made of safe characters, else single-quoted, else double-quoted
# when that needs no escapes, else single-quoted with '\'' for each quote.
quote() {
	if [[ $1 =~ ^[A-Za-z0-9_./:=@,+%-]+$ ]]; then
		printf '%s' "$1"
	elif [[ $1 != *\'* ]]; then
		printf "'%s'" "$1"
	elif [[ $1 != *[\"\$\`\\!]* ]]; then
		printf '"%s"' "$1"
	else
		printf "'%s'" "${1//\'/\'\\\'\'}"
	fi
}

# run prints the command under --dry-run, else runs it.
run() {
	if [ "$DRY_RUN" = 1 ]; then
		local out="" arg
		for arg in "$@"; do
			out+="${out:+ }$(quote "$arg")"
		done
		printf '%s\n' "$out"
	else
		echo "+ $*" >&2
		"$@"
	fi
}

# try is run for a step allowed to fail (e.g. cancel when nothing runs).
try() {
	if [ "$DRY_RUN" = 1 ]; then
		run "$@"
	elif ! run "$@"; then
		echo "${0##*/}: '$*' failed; continuing" >&2
	fi
}

# note prints an operator-facing line: a comment under --dry-run.
note() {
	printf '# %s\n' "$*"
}

need_jq() {
	command -v jq >/dev/null 2>&1 || die "jq not found: install it (apt-get install jq)"
}

# need_az fails early when az is missing, except under --dry-run.
need_az() {
	[ "$DRY_RUN" = 1 ] || command -v az >/dev/null 2>&1 ||
		die "az not found: install the Azure CLI, or use --dry-run to print the commands"
}

# ext_field prints one field of extension.json.
ext_field() {
	need_jq
	[ -r "$MSP_EXTENSION_JSON" ] || die "cannot read $MSP_EXTENSION_JSON (set MSP_EXTENSION_JSON)"
	local v
	v=$(jq -er --arg f "$1" '.[$f] | strings' "$MSP_EXTENSION_JSON") ||
		die "$MSP_EXTENSION_JSON: field '$1' missing or not a string"
	printf '%s\n' "$v"
}

# load_identity sets EXT_PUBLISHER, EXT_TYPE and EXT_VERSION (major.minor,
# what az and ARM take as typeHandlerVersion) from extension.json.
load_identity() {
	EXT_PUBLISHER=$(ext_field publisher)
	EXT_TYPE=$(ext_field type)
	local full
	full=$(ext_field version)
	[[ $full =~ ^([0-9]+)\.([0-9]+)(\.[0-9]+){0,2}$ ]] ||
		die "$MSP_EXTENSION_JSON: version '$full' is not major.minor[.build[.revision]]"
	EXT_VERSION="${BASH_REMATCH[1]}.${BASH_REMATCH[2]}"
	export EXT_PUBLISHER EXT_TYPE EXT_VERSION
}

# settings_json prints the settings file as one line of JSON; mode "audit"
# forces every authorization item (imds, wireServer) into audit mode.
settings_json() {
	local file=$1 mode=${2:-as-is}
	need_jq
	[ -n "$file" ] || die "--settings FILE is required (the extension's public settings, a JSON object)"
	[ -r "$file" ] || die "--settings $file: cannot read it"
	jq -e 'type == "object"' "$file" >/dev/null 2>&1 ||
		die "--settings $file: not a JSON object; see README \"Deploying\" for an example"
	case $mode in
	as-is) jq -c . "$file" ;;
	audit) jq -c 'with_entries(if (.key == "imds" or .key == "wireServer") and (.value | type) == "object" then .value.mode = "audit" else . end)' "$file" ;;
	*) die "settings mode '$mode': want as-is or audit" ;;
	esac
}

# need_value fails when an option's value is missing.
need_value() {
	if [ $# -lt 2 ] || [ -z "$2" ]; then
		die "$1 needs a value"
	fi
}

# rolling_policy RG VMSS BATCH% PAUSE MAX_UNHEALTHY% MAX_UNHEALTHY_UPGRADED%
# switches a scale set to health-gated rolling upgrades (handler-contract.md
# §6.5): at most BATCH% of the instances at a time, PAUSE (ISO 8601) between
# batches, stop when more than MAX_UNHEALTHY% of all or
# MAX_UNHEALTHY_UPGRADED% of the upgraded instances are unhealthy, unhealthy
# instances first, failed instances rolled back when the policy is breached.
rolling_policy() {
	run az vmss update --resource-group "$1" --name "$2" --set \
		upgradePolicy.mode=Rolling \
		upgradePolicy.rollingUpgradePolicy.maxBatchInstancePercent="$3" \
		upgradePolicy.rollingUpgradePolicy.pauseTimeBetweenBatches="$4" \
		upgradePolicy.rollingUpgradePolicy.maxUnhealthyInstancePercent="$5" \
		upgradePolicy.rollingUpgradePolicy.maxUnhealthyUpgradedInstancePercent="$6" \
		upgradePolicy.rollingUpgradePolicy.prioritizeUnhealthyInstances=true \
		upgradePolicy.rollingUpgradePolicy.rollbackFailedInstancesOnPolicyBreach=true
}
