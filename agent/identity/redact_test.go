package identity

import (
	"strings"
	"testing"
)

func TestRedact(t *testing.T) {
	const key88 = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
	const jwt = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJodHRwcyJ9.c2lnbmF0dXJl"
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"Plain", []string{"curl", "-H", "Metadata:true", "http://169.254.169.254/metadata/instance?api-version=2021-02-01"},
			"curl -H Metadata:true http://169.254.169.254/metadata/instance?api-version=2021-02-01"},
		{"SASSig", []string{"azcopy", "copy", "https://a.blob.core.windows.net/c?sv=2020-08-04&se=2026&sig=abc%2Bdef%3D&sp=r"},
			"azcopy copy https://a.blob.core.windows.net/c?sv=2020-08-04&se=2026&sig=[REDACTED]&sp=r"},
		{"BearerHeaderArg", []string{"curl", "-H", "Authorization: Bearer " + jwt}, "curl -H Authorization: [REDACTED]"},
		{"BasicHeaderArgLowercase", []string{"curl", "-H", "authorization:basic dXNlcjpwYXNz"}, "curl -H authorization: [REDACTED]"},
		{"BearerInText", []string{"sh", "-c", "curl -H 'Authorization: Bearer tok123' x"}, "sh -c curl -H 'Authorization: Bearer [REDACTED]' x"},
		{"JWTAlone", []string{"tool", "--id", jwt}, "tool --id [REDACTED]"},
		{"AccountKeyConnString", []string{"az", "storage", "--connection-string", "DefaultEndpointsProtocol=https;AccountName=a;AccountKey=" + key88 + ";EndpointSuffix=core.windows.net"},
			"az storage --connection-string [REDACTED]"},
		{"AccountKeyInText", []string{"app", "AccountName=a;AccountKey=" + key88 + ";EndpointSuffix=x"},
			"app AccountName=a;AccountKey=[REDACTED];EndpointSuffix=x"},
		{"BareStorageKey", []string{"az", "storage", "--account-name", key88}, "az storage --account-name [REDACTED]"},
		{"PasswordEquals", []string{"mysql", "--password=hunter2", "-u", "root"}, "mysql --password=[REDACTED] -u root"},
		{"PasswordSeparate", []string{"app", "--password", "hunter2", "--verbose"}, "app --password [REDACTED] --verbose"},
		{"ClientSecretSeparate", []string{"az", "login", "--client-secret", "s3cr3t"}, "az login --client-secret [REDACTED]"},
		{"ShortP", []string{"sshpass", "-p", "hunter2", "ssh"}, "sshpass -p [REDACTED] ssh"},
		{"EnvStylePassword", []string{"env", "DB_PASSWORD=hunter2", "APP_TOKEN=t0k", "run"}, "env DB_PASSWORD=[REDACTED] APP_TOKEN=[REDACTED] run"},
		{"CurlUser", []string{"curl", "-u", "alice:hunter2", "http://x"}, "curl -u alice:[REDACTED] http://x"},
		{"CurlUserAttached", []string{"curl", "-ualice:hunter2", "http://x"}, "curl -ualice:[REDACTED] http://x"},
		{"CurlUserNoPassword", []string{"curl", "-u", "alice", "http://x"}, "curl -u alice http://x"},
		{"URLUserinfo", []string{"git", "clone", "https://bob:ghp_abc@github.com/x/y"}, "git clone https://bob:[REDACTED]@github.com/x/y"},
		{"URLUserOnly", []string{"git", "clone", "https://bob@github.com/x/y"}, "git clone https://bob@github.com/x/y"},
		{"JSONBody", []string{"curl", "-d", `{"user":"a","password": "p\"w","client_secret":"s"}`},
			`curl -d {"user":"a","password": "[REDACTED]","client_secret":"[REDACTED]"}`},
		{"PEMBlock", []string{"tool", "--key-data", "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----"},
			"tool --key-data [REDACTED]"},
		{"PEMInText", []string{"tool", "data=x -----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY----- tail"}, "tool data=x [REDACTED] tail"},
		{"PEMUnterminated", []string{"tool", "-----BEGIN PRIVATE KEY-----\nMIIE"}, "tool [REDACTED]"},
		{"XAPIKeyHeader", []string{"curl", "-H", "X-Api-Key: abc", "u"}, "curl -H X-Api-Key: [REDACTED] u"},
		{"CookieHeader", []string{"curl", "-H", "Cookie: session=abc", "u"}, "curl -H Cookie: [REDACTED] u"},
		{"QuotedValue", []string{"sh", "-c", `export SECRET="a b c"; run`}, `sh -c export SECRET=[REDACTED]; run`},
		{"FlagPairInText", []string{"postgres: --password hunter2 idle"}, "postgres: --password [REDACTED] idle"},
		{"NotASecretKey", []string{"python3", "-m", "keyring", "monkey=1"}, "python3 -m keyring monkey=1"},
		{"ShortBase64Kept", []string{"echo", "aGVsbG8=", "/usr/lib/python3/dist-packages"}, "echo aGVsbG8= /usr/lib/python3/dist-packages"},
		{"Empty", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Redact(tt.args); got != tt.want {
				t.Errorf("Redact(%q)\n got %q\nwant %q", tt.args, got, tt.want)
			}
		})
	}
}

// TestRedactNeverShowsPlantedSecret puts one secret in every recognised
// position and checks that no part of it survives.
func TestRedactNeverShowsPlantedSecret(t *testing.T) {
	const secret = "Zq7SECRETvalueXyZ"
	forms := []string{
		"sig=" + secret, "?a=b&sig=" + secret, "password=" + secret, "--token=" + secret,
		"Authorization: Bearer " + secret, "Bearer " + secret, "basic " + secret,
		"https://u:" + secret + "@h/", `{"secret":"` + secret + `"}`, "Cookie: " + secret,
		"-----BEGIN X-----" + secret + "-----END X-----",
	}
	for _, f := range forms {
		if got := Redact([]string{"cmd", f}); strings.Contains(got, "SECRET") {
			t.Errorf("Redact(%q) = %q: secret kept", f, got)
		}
	}
	for _, flag := range []string{"--password", "-p", "--client-secret", "--sas-token", "--account-key", "--connection-string"} {
		if got := Redact([]string{"cmd", flag, secret}); strings.Contains(got, "SECRET") {
			t.Errorf("Redact(%s x) = %q: secret kept", flag, got)
		}
	}
}

func TestSplitCmdline(t *testing.T) {
	tests := []struct {
		name      string
		in        string
		truncated bool
		want      []string
	}{
		{"FirstFour", "a\x00b\x00c\x00d\x00e\x00", false, []string{"a", "b", "c", "d"}},
		{"Fewer", "curl\x00-s\x00", false, []string{"curl", "-s"}},
		{"SetproctitleUnterminated", "nginx: worker process", false, []string{"nginx: worker process"}},
		{"TruncatedDropsPartial", "a\x00b\x00cut-in-the-mid", true, []string{"a", "b"}},
		{"EmptyArgKept", "a\x00\x00b\x00", false, []string{"a", "", "b"}},
		{"Empty", "", false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, a := range splitCmdline([]byte(tt.in), tt.truncated, nil) {
				got = append(got, string(a))
			}
			if strings.Join(got, "|") != strings.Join(tt.want, "|") || len(got) != len(tt.want) {
				t.Errorf("splitCmdline(%q) = %q; want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestRedactText(t *testing.T) {
	plain := "/metadata/instance?api-version=2021-02-01"
	if got := RedactText(plain); got != plain {
		t.Errorf("RedactText(%q) = %q; want it unchanged", plain, got)
	}
	if got, want := RedactText("/x?a=1&sig=abc&token=t"), "/x?a=1&sig=[REDACTED]&token=[REDACTED]"; got != want {
		t.Errorf("RedactText = %q; want %q", got, want)
	}
}
