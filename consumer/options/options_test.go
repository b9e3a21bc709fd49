package options

import (
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

func TestSearchTLSFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string // "" when valid
	}{
		{nil, ""},
		{[]string{"--elasticsearch-tls-ca-file=ca.crt"}, ""},
		{[]string{"--elasticsearch-tls-cert-file=c.crt", "--elasticsearch-tls-key-file=c.key"}, ""},
		{[]string{"--elasticsearch-tls-insecure-skip-verify"}, ""},
		{[]string{"--elasticsearch-tls-cert-file=c.crt"}, "--elasticsearch-tls-cert-file and --elasticsearch-tls-key-file go together"},
		{[]string{"--elasticsearch-tls-insecure-skip-verify", "--elasticsearch-tls-ca-file=ca.crt"}, "contradict each other"},
	} {
		var s Search
		fs := pflag.NewFlagSet("indexer", pflag.ContinueOnError)
		s.AddFlags(fs)
		if err := fs.Parse(tc.args); err != nil {
			t.Fatal(err)
		}
		err := s.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%v: %v", tc.args, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%v: %v, want %q", tc.args, err, tc.want)
		}
	}
	var s Search
	if cfg, err := s.TLSConfig(); cfg != nil || err != nil {
		t.Errorf("no TLS flag: %v, %v; want the default transport", cfg, err)
	}
	s.TLSInsecureSkipVerify = true
	if cfg, err := s.TLSConfig(); err != nil || cfg == nil || !cfg.InsecureSkipVerify {
		t.Errorf("insecure: %+v, %v", cfg, err)
	}
}
