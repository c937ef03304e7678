// Command verifyd is the verifyd phone-verification server and its admin
// tool. With no arguments it serves the Telnyx-compatible Verify API on
// 127.0.0.1:8080 with an SQLite file in the working directory and the
// console sender.
//
//	verifyd [serve] [flags]           run the server
//	verifyd migrate [flags]           apply database migrations and exit
//	verifyd apikey create --name N    issue an API key (printed alone on the last line)
//	verifyd apikey list               list API keys (never their secrets)
//	verifyd apikey revoke ID|PREFIX   revoke a key
//	verifyd account create --name N   create an account (prints its ID)
//	verifyd account list              list accounts
//	verifyd keys rotate               add a new server key, keeping the old ones for reading
//	verifyd webhook-key               print the account's webhook public key (add/promote/delete rotate it)
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
)

func main() {
	// verifyd's live heap is small and its garbage is per-request: trade a
	// little memory for less GC CPU unless the operator set GOGC.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "verifyd:", err)
		os.Exit(1)
	}
}

// run is main without the process: tests call it directly.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cmd := "serve"
	if len(args) > 0 && args[0] != "" && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return serve(ctx, args, getenv, stdout, stderr)
	case "migrate":
		return migrate(ctx, args, getenv, stdout, stderr)
	case "apikey":
		return apikey(ctx, args, getenv, stdout, stderr)
	case "account":
		return account(ctx, args, getenv, stdout, stderr)
	case "keys":
		return keysCmd(ctx, args, getenv, stdout, stderr)
	case "webhook-key":
		return webhookKey(ctx, args, getenv, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	return fmt.Errorf("unknown command %q\n%s", cmd, usage)
}

const usage = `usage:
  verifyd [serve] [--addr 127.0.0.1:8080] [--db verifyd.db] [--console-out FILE]
  verifyd migrate [--db ...]
  verifyd apikey create --name NAME [--account ID]
  verifyd apikey list [--account ID]
  verifyd apikey revoke ID|PREFIX
  verifyd account create --name NAME
  verifyd account list
  verifyd keys rotate
  verifyd webhook-key [show|list|add|promote KEY_ID|delete KEY_ID] [--account ID]
Every command takes --db (VERIFYD_DB) and --keys (VERIFYD_KEYS_FILE).
`
