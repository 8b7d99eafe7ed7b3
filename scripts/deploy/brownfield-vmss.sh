#!/usr/bin/env bash
# brownfield-vmss.sh: roll the MSP extension out to an existing scale set with
# Azure's own engine: a rolling upgrade policy gated on the Application Health
# extension moves the model change across the instances in batches and stops
# when too many become unhealthy. The rollout is staged: prepare, audit
# (every request forwarded, would-be denies logged), enforce; rollback returns
# to audit mode or removes the extension. Publisher, type and version come
# from extension.json.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

usage() {
	cat <<'USAGE'
usage: brownfield-vmss.sh [--dry-run] -g RG -n VMSS [options] STAGE

stages, in order:
  prepare    add ApplicationHealthLinux (--health-settings FILE, default a TCP
             probe of port 22), apply it to every instance and switch the
             scale set to rolling upgrades
  audit      add or update the MSP extension after ApplicationHealthLinux
             (provisionAfterExtensions) with every item's mode forced to audit
  enforce    apply --settings FILE as written
  status     show the latest rolling upgrade and the extension's instance states
  rollback   cancel the running rolling upgrade, then back to audit mode
             (--to-version X.Y pins an earlier handler version) or, with
             --remove, delete the extension

options:
  --settings FILE          the extension's public settings (audit, enforce, rollback)
  --batch-percent N        instances per batch, percent (default 20)
  --pause ISO8601          pause between batches (default PT5M)
  --max-unhealthy N        stop when more than N% of all instances are unhealthy (default 20)
  --max-unhealthy-upgraded N
                           stop when more than N% of upgraded instances are unhealthy (default 20)
USAGE
}

rg="" vmss="" settings="" stage="" to_version="" remove=0 health_file=""
batch=20 pause=PT5M max_unhealthy=20 max_unhealthy_upgraded=20
while [ $# -gt 0 ]; do
	case $1 in
	--dry-run) DRY_RUN=1 ;;
	-g | --resource-group) need_value "$@" && rg=$2 && shift ;;
	-n | --name) need_value "$@" && vmss=$2 && shift ;;
	--settings) need_value "$@" && settings=$2 && shift ;;
	--health-settings) need_value "$@" && health_file=$2 && shift ;;
	--batch-percent) need_value "$@" && batch=$2 && shift ;;
	--pause) need_value "$@" && pause=$2 && shift ;;
	--max-unhealthy) need_value "$@" && max_unhealthy=$2 && shift ;;
	--max-unhealthy-upgraded) need_value "$@" && max_unhealthy_upgraded=$2 && shift ;;
	--to-version) need_value "$@" && to_version=$2 && shift ;;
	--remove) remove=1 ;;
	prepare | audit | enforce | status | rollback) stage=$1 ;;
	-h | --help) usage && exit 0 ;;
	*) usage >&2 && die "unknown argument '$1'" ;;
	esac
	shift
done
[ -n "$rg" ] || die "-g RESOURCE_GROUP is required"
[ -n "$vmss" ] || die "-n VMSS is required"
[ -n "$stage" ] || die "a stage is required: prepare, audit, enforce, status or rollback"
for pct in "batch-percent:$batch" "max-unhealthy:$max_unhealthy" "max-unhealthy-upgraded:$max_unhealthy_upgraded"; do
	if ! [[ ${pct#*:} =~ ^[0-9]+$ ]] || [ "${pct#*:}" -gt 100 ]; then
		die "--${pct%%:*} '${pct#*:}': want a percentage 0-100"
	fi
done
[[ $pause =~ ^PT([0-9]+H)?([0-9]+M)?([0-9]+S)?$ ]] || die "--pause '$pause': want an ISO 8601 duration such as PT5M"
[ -z "$to_version" ] || [[ $to_version =~ ^[0-9]+\.[0-9]+$ ]] || die "--to-version '$to_version': want major.minor, e.g. 0.1"
need_az
load_identity

# set_msp applies the MSP extension to the scale set model; the rolling
# upgrade policy then carries it to the instances batch by batch.
set_msp() {
	run az vmss extension set --resource-group "$rg" --vmss-name "$vmss" \
		--publisher "$EXT_PUBLISHER" --name "$EXT_TYPE" "$@" \
		--provision-after-extensions ApplicationHealthLinux
}

watch_rollout() {
	note "watch: the rolling upgrade stops by itself when the health limits are exceeded"
	run az vmss rolling-upgrade get-latest --resource-group "$rg" --name "$vmss" \
		--query "{status:runningStatus.code, progress:progress}"
}

case $stage in
prepare)
	health='{"protocol":"tcp","port":22,"intervalInSeconds":5,"numberOfProbes":1}'
	if [ -n "$health_file" ]; then
		need_jq
		health=$(jq -ce 'select(type == "object")' "$health_file") ||
			die "--health-settings $health_file: not a JSON object of ApplicationHealthLinux settings"
	fi
	note "prepare: health signal first, then rolling upgrades gated on it"
	run az vmss extension set --resource-group "$rg" --vmss-name "$vmss" \
		--publisher Microsoft.ManagedServices --name ApplicationHealthLinux --version 2.0 \
		--settings "$health"
	run az vmss update-instances --resource-group "$rg" --name "$vmss" --instance-ids '*'
	rolling_policy "$rg" "$vmss" "$batch" "$pause" "$max_unhealthy" "$max_unhealthy_upgraded"
	;;
audit | enforce)
	mode=as-is
	[ "$stage" = audit ] && mode=audit
	settings_line=$(settings_json "$settings" "$mode")
	note "stage $stage: $EXT_PUBLISHER.$EXT_TYPE $EXT_VERSION on $vmss, in health-gated batches"
	set_msp --version "$EXT_VERSION" --settings "$settings_line"
	watch_rollout
	;;
status)
	watch_rollout
	run az vmss get-instance-view --resource-group "$rg" --name "$vmss" \
		--query "extensions[?name=='$EXT_TYPE'].statusesSummary"
	;;
rollback)
	note "rollback: stop the batches still to come (fails harmlessly when none runs)"
	try az vmss rolling-upgrade cancel --resource-group "$rg" --name "$vmss"
	if [ "$remove" = 1 ]; then
		note "rollback: remove the extension from the model; its uninstall detaches the agent"
		run az vmss extension delete --resource-group "$rg" --vmss-name "$vmss" --name "$EXT_TYPE"
	else
		version=${to_version:-$EXT_VERSION}
		settings_line=$(settings_json "$settings" audit)
		note "rollback: audit mode (requests forwarded, would-be denies logged), version $version"
		args=(--version "$version" --settings "$settings_line" --force-update)
		[ -z "$to_version" ] || args+=(--no-auto-upgrade-minor-version)
		set_msp "${args[@]}"
	fi
	watch_rollout
	;;
esac
