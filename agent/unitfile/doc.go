// Package unitfile holds msp-agent.service, the systemd unit that runs the
// agent (agent.md §10), so that the extension handler and the packages
// install the same bytes and tests check the file that ships.
package unitfile
