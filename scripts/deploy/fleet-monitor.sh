#!/usr/bin/env bash
# fleet-monitor.sh: fleet visibility through Azure Monitor. Deploys the
# audit table and Data Collection Rule (monitor/audit-dcr.json) into a Log
# Analytics workspace, installs the Azure Monitor Agent on a scale set or VM
# (with a system-assigned identity, which it authenticates with) and
# associates the rule with it. The KQL in queries/ then reads MspAudit_CL.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

usage() {
	cat <<'USAGE'
usage: fleet-monitor.sh [--dry-run] --subscription ID -g RG --workspace NAME
                        (--vmss NAME | --vm NAME) [--target-group RG]

  -g RG            resource group of the workspace; the rule is created there
  --workspace      Log Analytics workspace name
  --vmss / --vm    the machines whose audit log to collect
  --target-group   their resource group (default: -g)
  --rule NAME      Data Collection Rule name (default msp-audit)
USAGE
}

sub="" rg="" workspace="" target_rg="" kind="" target="" rule=msp-audit
while [ $# -gt 0 ]; do
	case $1 in
	--dry-run) DRY_RUN=1 ;;
	--subscription) need_value "$@" && sub=$2 && shift ;;
	-g | --resource-group) need_value "$@" && rg=$2 && shift ;;
	--workspace) need_value "$@" && workspace=$2 && shift ;;
	--target-group) need_value "$@" && target_rg=$2 && shift ;;
	--rule) need_value "$@" && rule=$2 && shift ;;
	--vmss) need_value "$@" && kind=vmss && target=$2 && shift ;;
	--vm) need_value "$@" && kind=vm && target=$2 && shift ;;
	-h | --help) usage && exit 0 ;;
	*) usage >&2 && die "unknown argument '$1'" ;;
	esac
	shift
done
[ -n "$sub" ] || die "--subscription ID is required (az account show --query id -o tsv)"
[ -n "$rg" ] || die "-g RESOURCE_GROUP (of the workspace) is required"
[ -n "$workspace" ] || die "--workspace NAME is required"
[ -n "$kind" ] || die "--vmss NAME or --vm NAME is required"
target_rg=${target_rg:-$rg}
need_az

rule_id="/subscriptions/$sub/resourceGroups/$rg/providers/Microsoft.Insights/dataCollectionRules/$rule"
ama=(--publisher Microsoft.Azure.Monitor --name AzureMonitorLinuxAgent --version 1.0 --enable-auto-upgrade true)

note "1. the MspAudit_CL table and the rule that fills it from /var/log/msp-agent/audit.jsonl"
run az deployment group create --subscription "$sub" --resource-group "$rg" --name "msp-audit-dcr" \
	--template-file "$MSP_DEPLOY_DIR/monitor/audit-dcr.json" \
	--parameters workspaceName="$workspace" dataCollectionRuleName="$rule"
note "2. the Azure Monitor Agent, which authenticates with the machine's managed identity"
if [ "$kind" = vmss ]; then
	resource_id="/subscriptions/$sub/resourceGroups/$target_rg/providers/Microsoft.Compute/virtualMachineScaleSets/$target"
	run az vmss identity assign --subscription "$sub" --resource-group "$target_rg" --name "$target"
	# Under a rolling upgrade policy this model change rolls out in batches.
	run az vmss extension set --subscription "$sub" --resource-group "$target_rg" --vmss-name "$target" "${ama[@]}"
else
	resource_id="/subscriptions/$sub/resourceGroups/$target_rg/providers/Microsoft.Compute/virtualMachines/$target"
	run az vm identity assign --subscription "$sub" --resource-group "$target_rg" --name "$target"
	run az vm extension set --subscription "$sub" --resource-group "$target_rg" --vm-name "$target" "${ama[@]}"
fi
note "3. associate the rule with the machines (the DCR association)"
run az monitor data-collection rule association create --name "$rule-$target" \
	--rule-id "$rule_id" --resource "$resource_id"
