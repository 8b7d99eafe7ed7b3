#!/usr/bin/env bash
# brownfield-vm.sh: add the MSP extension to an existing VM in stages, or
# roll it back. Stage audit first (every request is forwarded; would-be denies
# are logged as audit-deny), read the audit log or the queries/ in Log
# Analytics, then stage enforce. Publisher, type and version come from
# extension.json.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

usage() {
	cat <<'USAGE'
usage: brownfield-vm.sh [--dry-run] -g RG -n VM --settings FILE audit|enforce
       brownfield-vm.sh [--dry-run] -g RG -n VM --settings FILE rollback [--to-version X.Y]
       brownfield-vm.sh [--dry-run] -g RG -n VM rollback --remove

  audit      install or update the extension with every item's mode forced to audit
  enforce    apply the settings file as written
  rollback   back to audit mode (metadata access as without MSP, still
             logged), optionally pinned to an earlier handler version X.Y;
             --remove deletes the extension (the agent's --cleanup detaches it)
USAGE
}

rg="" vm="" settings="" stage="" to_version="" remove=0
while [ $# -gt 0 ]; do
	case $1 in
	--dry-run) DRY_RUN=1 ;;
	-g | --resource-group) need_value "$@" && rg=$2 && shift ;;
	-n | --name) need_value "$@" && vm=$2 && shift ;;
	--settings) need_value "$@" && settings=$2 && shift ;;
	--to-version) need_value "$@" && to_version=$2 && shift ;;
	--remove) remove=1 ;;
	audit | enforce | rollback) stage=$1 ;;
	-h | --help) usage && exit 0 ;;
	*) usage >&2 && die "unknown argument '$1'" ;;
	esac
	shift
done
[ -n "$rg" ] || die "-g RESOURCE_GROUP is required"
[ -n "$vm" ] || die "-n VM is required"
[ -n "$stage" ] || die "a stage is required: audit, enforce or rollback"
[ -z "$to_version" ] || [[ $to_version =~ ^[0-9]+\.[0-9]+$ ]] || die "--to-version '$to_version': want major.minor, e.g. 0.1"
need_az
load_identity

show_status() {
	note "check: the extension reports success and the agent's substatuses"
	run az vm get-instance-view --resource-group "$rg" --name "$vm" \
		--query "instanceView.extensions[?name=='$EXT_TYPE']"
}

case $stage in
audit | enforce)
	mode=as-is
	[ "$stage" = audit ] && mode=audit
	settings_line=$(settings_json "$settings" "$mode")
	note "stage $stage: $EXT_PUBLISHER.$EXT_TYPE $EXT_VERSION on $vm"
	run az vm extension set --resource-group "$rg" --vm-name "$vm" \
		--publisher "$EXT_PUBLISHER" --name "$EXT_TYPE" --version "$EXT_VERSION" \
		--settings "$settings_line"
	show_status
	;;
rollback)
	if [ "$remove" = 1 ]; then
		note "rollback: remove the extension; its uninstall stops the agent and detaches the eBPF programs"
		run az vm extension delete --resource-group "$rg" --vm-name "$vm" --name "$EXT_TYPE"
		exit 0
	fi
	version=${to_version:-$EXT_VERSION}
	settings_line=$(settings_json "$settings" audit)
	note "rollback: audit mode (requests forwarded, would-be denies logged), version $version"
	args=(--resource-group "$rg" --vm-name "$vm" --publisher "$EXT_PUBLISHER" --name "$EXT_TYPE"
		--version "$version" --settings "$settings_line" --force-update)
	# An explicit earlier version must not be upgraded again automatically.
	[ -z "$to_version" ] || args+=(--no-auto-upgrade-minor-version)
	run az vm extension set "${args[@]}"
	show_status
	;;
esac
