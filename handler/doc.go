// Package handler implements msp-handler, the VM extension handler that
// installs, configures, supervises and removes msp-agent according to the
// waagent contract.
//
// Specification: ../shared/spec/handler-contract.md.
package handler
