// Package deploy holds no code: it is the home of the deployment scripts
// (greenfield.sh, brownfield-vm.sh, brownfield-vmss.sh, fleet-monitor.sh and
// their lib.sh), the ARM and Bicep templates (greenfield.json/.bicep,
// monitor/audit-dcr.json) and the tests that check what can be checked
// without az or a Bicep compiler: golden --dry-run output, template
// parameters, Bicep/ARM parity, shellcheck, and the Data Collection Rule's
// columns against audit.Entry.
package deploy
