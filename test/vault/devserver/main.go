// Command devserver runs an in-memory, unsealed Vault server for tests, built from Vault's own
// packages: there is no Vault package or download here, and the go-installable command pulls in
// every builtin plugin. It offers transit, kv and approle (nothing mounted: tests mount what they
// need), listens on 127.0.0.1 (or -listen unix:/path) and prints one line,
// "VAULT_ADDR=http://127.0.0.1:PORT" (or unix:///path), once it serves. The root token is
// -token. It stops when stdin closes or on SIGTERM/SIGINT.
package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"

	hclog "github.com/hashicorp/go-hclog"
	kv "github.com/hashicorp/vault-plugin-secrets-kv"
	"github.com/hashicorp/vault/builtin/credential/approle"
	"github.com/hashicorp/vault/builtin/logical/transit"
	"github.com/hashicorp/vault/helper/namespace"
	vaulthttp "github.com/hashicorp/vault/http"
	"github.com/hashicorp/vault/internalshared/configutil"
	"github.com/hashicorp/vault/sdk/helper/consts"
	"github.com/hashicorp/vault/sdk/logical"
	"github.com/hashicorp/vault/sdk/physical/inmem"
	"github.com/hashicorp/vault/vault"
)

func main() {
	token := flag.String("token", "root", "root token id to create")
	logLevel := flag.String("log-level", "warn", "server log level")
	listen := flag.String("listen", "127.0.0.1:0", "TCP address, or unix:/path for a unix socket")
	tlsCert := flag.String("tls-cert", "", "PEM certificate (chain) to serve HTTPS with")
	tlsKey := flag.String("tls-key", "", "PEM private key of -tls-cert")
	flag.Parse()
	if err := run(*token, *logLevel, *listen, *tlsCert, *tlsKey); err != nil {
		fmt.Fprintln(os.Stderr, "devserver:", err)
		os.Exit(1)
	}
}

func run(token, logLevel, listen, tlsCert, tlsKey string) error {
	logger := hclog.New(&hclog.LoggerOptions{Name: "vault", Level: hclog.LevelFromString(logLevel), Output: os.Stderr})
	backend, err := inmem.NewInmem(nil, logger)
	if err != nil {
		return err
	}
	secrets := map[string]logical.Factory{"transit": transit.Factory, "kv": kv.Factory}
	credential := map[string]logical.Factory{"approle": approle.Factory}
	core, err := vault.NewCore(&vault.CoreConfig{
		Physical:           backend,
		Logger:             logger,
		LogicalBackends:    secrets,
		CredentialBackends: credential,
		BuiltinRegistry:    registry{logical: secrets, credential: credential},
		DisableMlock:       true,
	})
	if err != nil {
		return err
	}
	ctx := namespace.ContextWithNamespace(context.Background(), namespace.RootNamespace)
	init, err := core.Initialize(ctx, &vault.InitParams{
		BarrierConfig:    &vault.SealConfig{SecretShares: 1, SecretThreshold: 1},
		LegacyShamirSeal: true,
	})
	if err != nil {
		return fmt.Errorf("initialize: %w", err)
	}
	if unsealed, err := core.Unseal(init.SecretShares[0]); err != nil || !unsealed {
		return fmt.Errorf("unseal: %v", err)
	}
	resp, err := core.HandleRequest(ctx, &logical.Request{
		Operation:   logical.UpdateOperation,
		ClientToken: init.RootToken,
		Path:        "auth/token/create",
		Data: map[string]interface{}{
			"id":                token,
			"policies":          []string{"root"},
			"no_parent":         true,
			"no_default_policy": true,
		},
	})
	if err != nil {
		return fmt.Errorf("create root token: %w", err)
	}
	if resp != nil && resp.IsError() {
		return fmt.Errorf("create root token: %v", resp.Error())
	}

	network, addr, url := "tcp", listen, "http://"
	if path, ok := strings.CutPrefix(listen, "unix:"); ok {
		network, addr, url = "unix", path, "unix://"
	}
	ln, err := net.Listen(network, addr)
	if err != nil {
		return err
	}
	if tlsCert != "" {
		cert, err := tls.LoadX509KeyPair(tlsCert, tlsKey)
		if err != nil {
			return err
		}
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}})
		url = "https://"
	}
	srv := &http.Server{Handler: vaulthttp.Handler.Handler(&vault.HandlerProperties{Core: core, ListenerConfig: &configutil.Listener{}})}
	go srv.Serve(ln)
	fmt.Printf("VAULT_ADDR=%s%s\n", url, ln.Addr())

	done := make(chan struct{})
	go func() { io.Copy(io.Discard, os.Stdin); close(done) }()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	select {
	case <-done:
	case <-sig:
	}
	srv.Close()
	return core.Shutdown()
}

// registry is the builtin plugin registry: only what the server was built with.
type registry struct {
	logical, credential map[string]logical.Factory
}

func (r registry) factories(t consts.PluginType) map[string]logical.Factory {
	switch t {
	case consts.PluginTypeSecrets:
		return r.logical
	case consts.PluginTypeCredential:
		return r.credential
	}
	return nil
}

func (r registry) Contains(name string, t consts.PluginType) bool {
	_, ok := r.factories(t)[name]
	return ok
}

func (r registry) Get(name string, t consts.PluginType) (func() (interface{}, error), bool) {
	f, ok := r.factories(t)[name]
	if !ok {
		return nil, false
	}
	return func() (interface{}, error) { return f, nil }, true
}

func (r registry) Keys(t consts.PluginType) []string {
	var keys []string
	for k := range r.factories(t) {
		keys = append(keys, k)
	}
	return keys
}

func (r registry) DeprecationStatus(name string, t consts.PluginType) (consts.DeprecationStatus, bool) {
	if r.Contains(name, t) {
		return consts.Supported, true
	}
	return consts.Unknown, false
}

func (r registry) IsBuiltinEntPlugin(string, consts.PluginType) bool { return false }
