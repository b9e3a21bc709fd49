package kafkaconn

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/twmb/franz-go/pkg/sasl/aws"
	"github.com/twmb/franz-go/pkg/sasl/oauth"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// tokens returns what franz-go calls for a token at every connection and
// re-authentication: the token file read again (a rotated Secret reaches a running
// consumer), the token in memory, or a token of the client credentials grant, which
// x/oauth2 caches until shortly before it expires.
func (o OAuth) tokens() func(context.Context) (oauth.Auth, error) {
	switch {
	case o.TokenURL != "":
		cc := clientcredentials.Config{ClientID: o.ClientID, ClientSecret: o.ClientSecret, TokenURL: o.TokenURL, Scopes: o.Scopes}
		var once sync.Once
		var src oauth2.TokenSource
		return func(ctx context.Context) (oauth.Auth, error) {
			// The source outlives this call's ctx (it refreshes later), so it is built
			// on a context that is never cancelled.
			once.Do(func() { src = cc.TokenSource(context.WithoutCancel(ctx)) })
			tok, err := src.Token()
			if err != nil {
				return oauth.Auth{}, fmt.Errorf("OAUTHBEARER: client credentials token from %s: %w", o.TokenURL, err)
			}
			return oauth.Auth{Token: tok.AccessToken}, nil
		}
	case o.TokenFile != "":
		return func(context.Context) (oauth.Auth, error) {
			b, err := os.ReadFile(o.TokenFile)
			if err != nil {
				return oauth.Auth{}, fmt.Errorf("OAUTHBEARER: read the token file: %w", err)
			}
			token := strings.TrimSpace(string(b))
			if token == "" {
				return oauth.Auth{}, fmt.Errorf("OAUTHBEARER: the token file %s is empty", o.TokenFile)
			}
			return oauth.Auth{Token: token}, nil
		}
	default:
		token := strings.TrimSpace(o.Token)
		return func(context.Context) (oauth.Auth, error) {
			if token == "" {
				return oauth.Auth{}, errors.New("OAUTHBEARER: the token is empty")
			}
			return oauth.Auth{Token: token}, nil
		}
	}
}

// awsCredentials returns what franz-go calls at every connection for AWS_MSK_IAM: the
// credentials of the AWS SDK's default chain, loaded once and cached (and refreshed) by
// the SDK.
func awsCredentials() func(context.Context) (aws.Auth, error) {
	var once sync.Once
	var cfgErr error
	var load func(context.Context) (aws.Auth, error)
	return func(ctx context.Context) (aws.Auth, error) {
		once.Do(func() {
			cfg, err := awsconfig.LoadDefaultConfig(context.WithoutCancel(ctx))
			if err != nil {
				cfgErr = fmt.Errorf("AWS_MSK_IAM: load the AWS configuration: %w", err)
				return
			}
			load = func(ctx context.Context) (aws.Auth, error) {
				c, err := cfg.Credentials.Retrieve(ctx)
				if err != nil {
					return aws.Auth{}, fmt.Errorf("AWS_MSK_IAM: AWS credentials: %w", err)
				}
				return aws.Auth{AccessKey: c.AccessKeyID, SecretKey: c.SecretAccessKey, SessionToken: c.SessionToken}, nil
			}
		})
		if cfgErr != nil {
			return aws.Auth{}, cfgErr
		}
		return load(ctx)
	}
}
