package bpf

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func TestOptionsConfig(t *testing.T) {
	cfg, err := Options{}.config()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ProxyIp4 != ip4Key(DefaultProxy.Addr()) || cfg.ProxyPort != portKey(3080) {
		t.Errorf("default proxy %x:%x; want 127.0.0.1:3080", cfg.ProxyIp4, cfg.ProxyPort)
	}
	if cfg.Flags != flagListenerCheck|flagNetnsGuard {
		t.Errorf("default flags %b; want listener check and netns guard", cfg.Flags)
	}
	deny, _ := Options{OtherNetns: NetnsDeny}.config()
	open, _ := Options{OtherNetns: NetnsRedirect}.config()
	if deny.Flags&flagDenyOtherNetns == 0 || open.Flags&flagNetnsGuard != 0 {
		t.Errorf("flags deny %b, redirect %b", deny.Flags, open.Flags)
	}
	for _, bad := range []Options{{OtherNetns: 9}, {Proxy: netip.MustParseAddrPort("[::1]:3080")}} {
		if _, err := bad.config(); err == nil {
			t.Errorf("%+v: want an error", bad)
		}
	}
}

func TestUnsupportedError(t *testing.T) {
	err := error(&UnsupportedError{Feature: "helper x", MinKernel: "5.7", Err: errors.New("probe failed")})
	if !isNotSupported(err) {
		t.Error("UnsupportedError does not match ebpf.ErrNotSupported")
	}
	if !strings.Contains(err.Error(), "helper x") || !strings.Contains(err.Error(), "5.7") {
		t.Errorf("message %q does not name the feature and kernel", err)
	}
}
