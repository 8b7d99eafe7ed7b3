// Package targettest holds the request-target corpus of authorization.md
// I-24 that the tests of authz, policycli, signcli and the proxy share:
// spellings that aim at /metadata/identity, each of which the strict
// reading (authz.CheckTarget) refuses or the matcher denies, and the
// legitimate targets of real clients (waagent, azidentity, the Azure
// documentation) that must keep working. It is imported by tests only.
package targettest
