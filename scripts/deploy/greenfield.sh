#!/usr/bin/env bash
# greenfield.sh: create a Linux VM or a VM scale set with the MSP extension and
# its settings, with the az CLI directly or through greenfield.json/.bicep.
# Publisher, type and version come from extension.json.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

usage() {
	cat <<'USAGE'
usage: greenfield.sh [--dry-run] -g RG -l LOCATION -n NAME --settings FILE
                     [--kind vm|vmss] [--template arm|bicep]
                     [--ssh-key FILE] [--admin-username USER] [--image URN]
                     [--size SKU] [--instance-count N]

  --dry-run         print the az commands instead of running them
  --kind            vm (default) or vmss: a scale set with ApplicationHealthLinux,
                    the MSP extension after it and a rolling upgrade policy
  --template        deploy greenfield.json (arm) or greenfield.bicep (bicep)
                    instead of az vm/vmss create
  --settings FILE   the extension's public settings (JSON object)
  --ssh-key FILE    OpenSSH public key (default ~/.ssh/id_rsa.pub)
USAGE
}

rg="" location="" name="" settings="" kind=vm template="" ssh_key="$HOME/.ssh/id_rsa.pub"
admin=azureuser image=Debian:debian-12:12-gen2:latest size=Standard_B2s count=3
while [ $# -gt 0 ]; do
	case $1 in
	--dry-run) DRY_RUN=1 ;;
	-g | --resource-group) need_value "$@" && rg=$2 && shift ;;
	-l | --location) need_value "$@" && location=$2 && shift ;;
	-n | --name) need_value "$@" && name=$2 && shift ;;
	--settings) need_value "$@" && settings=$2 && shift ;;
	--kind) need_value "$@" && kind=$2 && shift ;;
	--template) need_value "$@" && template=$2 && shift ;;
	--ssh-key) need_value "$@" && ssh_key=$2 && shift ;;
	--admin-username) need_value "$@" && admin=$2 && shift ;;
	--image) need_value "$@" && image=$2 && shift ;;
	--size) need_value "$@" && size=$2 && shift ;;
	--instance-count) need_value "$@" && count=$2 && shift ;;
	-h | --help) usage && exit 0 ;;
	*) usage >&2 && die "unknown argument '$1'" ;;
	esac
	shift
done
[ -n "$rg" ] || die "-g RESOURCE_GROUP is required"
[ -n "$location" ] || die "-l LOCATION is required"
[ -n "$name" ] || die "-n NAME is required"
case $kind in vm | vmss) ;; *) die "--kind '$kind': want vm or vmss" ;; esac
case $template in "" | arm | bicep) ;; *) die "--template '$template': want arm or bicep" ;; esac
[[ $count =~ ^[1-9][0-9]*$ ]] || die "--instance-count '$count': want a positive number"
[ -r "$ssh_key" ] || die "--ssh-key $ssh_key: cannot read it (generate one with ssh-keygen)"
need_az
load_identity
settings_line=$(settings_json "$settings")
health='{"protocol":"tcp","port":22,"intervalInSeconds":5,"numberOfProbes":1}'

run az group create --name "$rg" --location "$location"

if [ -n "$template" ]; then
	file=$MSP_DEPLOY_DIR/greenfield.json
	[ "$template" = bicep ] && file=$MSP_DEPLOY_DIR/greenfield.bicep
	run az deployment group create --resource-group "$rg" --name "msp-greenfield-$name" \
		--template-file "$file" \
		--parameters kind="$kind" name="$name" location="$location" vmSize="$size" \
		instanceCount="$count" adminUsername="$admin" sshPublicKey="$(cat -- "$ssh_key")" \
		extensionPublisher="$EXT_PUBLISHER" extensionType="$EXT_TYPE" \
		typeHandlerVersion="$EXT_VERSION" extensionSettings="$settings_line"
	exit 0
fi

if [ "$kind" = vm ]; then
	run az vm create --resource-group "$rg" --name "$name" --image "$image" --size "$size" \
		--admin-username "$admin" --ssh-key-values "$ssh_key" --public-ip-address ""
	run az vm extension set --resource-group "$rg" --vm-name "$name" \
		--publisher "$EXT_PUBLISHER" --name "$EXT_TYPE" --version "$EXT_VERSION" \
		--settings "$settings_line"
	exit 0
fi

# A scale set cannot be created in Rolling mode before it has a health
# signal: create it Manual, add the health extension and the MSP extension
# ordered after it, apply both to every instance, then switch to Rolling so
# that later changes roll out in health-gated batches.
run az vmss create --resource-group "$rg" --name "$name" --image "$image" --vm-sku "$size" \
	--instance-count "$count" --admin-username "$admin" --ssh-key-values "$ssh_key" \
	--orchestration-mode Uniform --upgrade-policy-mode Manual --lb "" --public-ip-address ""
run az vmss extension set --resource-group "$rg" --vmss-name "$name" \
	--publisher Microsoft.ManagedServices --name ApplicationHealthLinux --version 2.0 \
	--settings "$health"
run az vmss extension set --resource-group "$rg" --vmss-name "$name" \
	--publisher "$EXT_PUBLISHER" --name "$EXT_TYPE" --version "$EXT_VERSION" \
	--settings "$settings_line" --provision-after-extensions ApplicationHealthLinux
run az vmss update-instances --resource-group "$rg" --name "$name" --instance-ids '*'
rolling_policy "$rg" "$name" 20 PT5M 20 20
